package snowsim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fixed seed sys_ids (see fixtures/servicenow).
const (
	idDaytwo      = "d2000000000000000000000000000001"
	idCABManager  = "d2000000000000000000000000000002"
	idOpsLead     = "d2000000000000000000000000000003"
	idPlatformOps = "d2100000000000000000000000000001"
	idCABGroup    = "d2100000000000000000000000000002"
	idCheckout    = "d2300000000000000000000000000001"
	idPayments    = "d2300000000000000000000000000002"
	idRoutineTpl  = "d2400000000000000000000000000001"
)

// fakeClock is a settable clock for tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a simulator served over real HTTP on loopback.
type env struct {
	t   *testing.T
	sim *Sim
	url string
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	sim, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() {
		srv.Close()
		if err := sim.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &env{t: t, sim: sim, url: srv.URL}
}

// resp is a decoded answer.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
	return m
}

// result returns result as an object (or the only element of an array).
func (r resp) result(t *testing.T) map[string]any {
	t.Helper()
	switch v := r.json(t)["result"].(type) {
	case map[string]any:
		return v
	case []any:
		if len(v) != 1 {
			t.Fatalf("result has %d elements, want 1: %s", len(v), r.body)
		}
		return v[0].(map[string]any)
	}
	t.Fatalf("no result in %s", r.body)
	return nil
}

func (r resp) list(t *testing.T) []map[string]any {
	t.Helper()
	arr, ok := r.json(t)["result"].([]any)
	if !ok {
		t.Fatalf("result is not an array: %s", r.body)
	}
	out := make([]map[string]any, len(arr))
	for i, e := range arr {
		out[i] = e.(map[string]any)
	}
	return out
}

// call sends a request as user (password = user name; "" = anonymous).
func (e *env) call(user, method, path string, body any, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	if user != "" {
		req.SetBasicAuth(user, user)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: data}
}

// must asserts the status.
func (r resp) must(t *testing.T, status int) resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

// errorOf returns message and detail of an error envelope.
func (r resp) errorOf(t *testing.T) (string, any) {
	t.Helper()
	m := r.json(t)
	if m["status"] != "failure" {
		t.Fatalf("not an error envelope: %s", r.body)
	}
	e := m["error"].(map[string]any)
	return e["message"].(string), e["detail"]
}

// createChange creates a normal change via the Table API as daytwo.
func (e *env) createChange(fields map[string]any) map[string]any {
	e.t.Helper()
	body := map[string]any{"short_description": "Roll out app", "assignment_group": idPlatformOps, "cmdb_ci": idCheckout}
	for k, v := range fields {
		body[k] = v
	}
	return e.call("daytwo", "POST", "/api/now/table/change_request?sysparm_exclude_reference_link=true", body).
		must(e.t, http.StatusCreated).result(e.t)
}

func (e *env) getChange(id string) map[string]any {
	e.t.Helper()
	return e.call("daytwo", "GET", "/api/now/table/change_request/"+id+"?sysparm_exclude_reference_link=true", nil).
		must(e.t, http.StatusOK).result(e.t)
}

func (e *env) patchChange(id string, fields map[string]any) resp {
	e.t.Helper()
	return e.call("daytwo", "PATCH", "/api/now/table/change_request/"+id+"?sysparm_exclude_reference_link=true", fields)
}

// approvals lists the change's approvals as raw values.
func (e *env) approvals(id string) []map[string]any {
	e.t.Helper()
	return e.call("daytwo", "GET", "/api/now/table/sysapproval_approver?sysparm_exclude_reference_link=true&sysparm_query=sysapproval="+id+"^ORDERBYsys_created_on", nil).
		must(e.t, http.StatusOK).list(e.t)
}

func jsonReader(b []byte) io.Reader { return bytes.NewReader(b) }
