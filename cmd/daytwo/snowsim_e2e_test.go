package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// snowsimProcess starts `daytwo snowsim` as a user would and waits for its
// "listening" line.
func snowsimProcess(t *testing.T, args ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(daytwoBin, append([]string{"snowsim", "--addr", addr}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var banner []string
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("snowsim exited early: %s\n%s", strings.Join(banner, "\n"), stderr.String())
			}
			banner = append(banner, l)
			if l == "snowsim listening on http://"+addr {
				t.Cleanup(func() {
					_ = cmd.Process.Signal(syscall.SIGINT)
					done := make(chan error, 1)
					go func() { done <- cmd.Wait() }()
					select {
					case err := <-done:
						if err != nil {
							t.Errorf("snowsim did not stop cleanly on SIGINT: %v", err)
						}
					case <-time.After(10 * time.Second):
						cmd.Process.Kill()
						t.Error("snowsim ignored SIGINT")
					}
				})
				joined := strings.Join(banner, "\n")
				for _, u := range []string{"daytwo / daytwo", "cab.manager / cab.manager", "ops.lead / ops.lead", "auditor / auditor"} {
					if !strings.Contains(joined, u) {
						t.Errorf("banner lacks seed user %q:\n%s", u, joined)
					}
				}
				return "http://" + addr
			}
		case <-timeout:
			t.Fatalf("no listening line in 10s: %s", strings.Join(banner, "\n"))
		}
	}
}

type curlResult struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// curl does what `curl -u user:pass -H 'Accept: application/json'` does.
func curl(t *testing.T, method, url, user string, body any) curlResult {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, user)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	res := curlResult{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &res.body)
	return res
}

// field reads result.<name> whether result is an object, a one-element
// array, or a {value, display_value} pair.
func field(t *testing.T, r curlResult, name string) string {
	t.Helper()
	res := r.body["result"]
	if l, ok := res.([]any); ok && len(l) == 1 {
		res = l[0]
	}
	m, ok := res.(map[string]any)
	if !ok {
		t.Fatalf("no result object in %s", r.raw)
	}
	switch v := m[name].(type) {
	case string:
		return v
	case map[string]any:
		s, _ := v["value"].(string)
		return s
	}
	return ""
}

func TestSnowsimServesACurlSession(t *testing.T) {
	base := snowsimProcess(t)
	table := base + "/api/now/table/change_request"

	// Unauthenticated: the real 401 envelope.
	req, _ := http.NewRequest(http.MethodGet, table, nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated: %d", resp.StatusCode)
	}

	// Create via the Table API: 201 + Location, an object result.
	r := curl(t, http.MethodPost, table, "daytwo", map[string]string{"short_description": "via table api", "type": "normal"})
	if r.status != http.StatusCreated || r.header.Get("Location") == "" || !strings.HasPrefix(field(t, r, "number"), "CHG") {
		t.Fatalf("table create: %d %s", r.status, r.raw)
	}
	if _, isObj := r.body["result"].(map[string]any); !isObj {
		t.Fatalf("table create result must be an object: %s", r.raw)
	}
	// Look up references by name, as a script would.
	lookup := func(table, name string) string {
		t.Helper()
		r := curl(t, http.MethodGet, base+"/api/now/table/"+table+"?sysparm_fields=sys_id&sysparm_query=name="+strings.ReplaceAll(name, " ", "%20"), "daytwo", nil)
		rows, _ := r.body["result"].([]any)
		if len(rows) != 1 {
			t.Fatalf("lookup %s %q: %s", table, name, r.raw)
		}
		return rows[0].(map[string]any)["sys_id"].(string)
	}
	group, ci := lookup("sys_user_group", "Platform Ops"), lookup("cmdb_ci", "checkout-service")
	// Create via the Change API: 200, a one-element array result.
	r = curl(t, http.MethodPost, base+"/api/sn_chg_rest/change/normal", "daytwo", map[string]string{
		"short_description": "via change api", "assignment_group": group, "cmdb_ci": ci,
	})
	if r.status != http.StatusOK {
		t.Fatalf("change api create: %d %s", r.status, r.raw)
	}
	if l, isList := r.body["result"].([]any); !isList || len(l) != 1 {
		t.Fatalf("change api create result must be a one-element array: %s", r.raw)
	}
	sysID, number := field(t, r, "sys_id"), field(t, r, "number")
	rec := table + "/" + sysID

	// An illegal jump (New → Implement) is refused with the business-rule 403.
	r = curl(t, http.MethodPatch, rec, "daytwo", map[string]string{"state": "-1"})
	if r.status != http.StatusForbidden || !strings.Contains(r.raw, "Operation Failed") || !strings.Contains(r.raw, "Business Rule") {
		t.Fatalf("illegal jump: %d %s", r.status, r.raw)
	}

	// Request approval (New → Assess), approve each stage as its approvers.
	if r = curl(t, http.MethodPatch, rec, "daytwo", map[string]string{"state": "-4"}); r.status != http.StatusOK || field(t, r, "state") != "-4" {
		t.Fatalf("to Assess: %d %s", r.status, r.raw)
	}
	approve := func(user string) {
		t.Helper()
		r := curl(t, http.MethodGet, base+"/api/now/table/sysapproval_approver?sysparm_query=sysapproval="+sysID+"^state=requested^approver.user_name="+user+"&sysparm_exclude_reference_link=true", user, nil)
		rows, _ := r.body["result"].([]any)
		if len(rows) != 1 {
			t.Fatalf("%s has %d pending approvals on %s: %s", user, len(rows), number, r.raw)
		}
		id := rows[0].(map[string]any)["sys_id"].(string)
		if r := curl(t, http.MethodPatch, base+"/api/now/table/sysapproval_approver/"+id, user, map[string]string{"state": "approved", "comments": "ok"}); r.status != http.StatusOK {
			t.Fatalf("approve as %s: %d %s", user, r.status, r.raw)
		}
	}
	approve("ops.lead")    // Assess: Platform Ops
	approve("cab.manager") // Authorize: CAB (risk moderate by default)
	r = curl(t, http.MethodGet, rec, "daytwo", nil)
	if field(t, r, "state") != "-2" || field(t, r, "approval") != "approved" {
		t.Fatalf("after approvals: state %s approval %s", field(t, r, "state"), field(t, r, "approval"))
	}
	for _, st := range []string{"-1", "0"} {
		if r = curl(t, http.MethodPatch, rec, "daytwo", map[string]string{"state": st}); r.status != http.StatusOK || field(t, r, "state") != st {
			t.Fatalf("to %s: %d %s", st, r.status, r.raw)
		}
	}
	r = curl(t, http.MethodPatch, rec, "daytwo", map[string]string{"state": "3", "close_code": "successful", "close_notes": "done"})
	if r.status != http.StatusOK || field(t, r, "state") != "3" || field(t, r, "active") != "false" || field(t, r, "work_start") == "" {
		t.Fatalf("close: %d %s", r.status, r.raw)
	}

	// A paginated list carries X-Total-Count and Link.
	r = curl(t, http.MethodGet, table+"?sysparm_limit=1&sysparm_fields=number", "auditor", nil)
	if r.status != http.StatusOK || r.header.Get("X-Total-Count") != "2" || !strings.Contains(r.header.Get("Link"), `rel="next"`) {
		t.Fatalf("pagination: %d %v %s", r.status, r.header, r.raw)
	}
	// The read-only user cannot write.
	if r = curl(t, http.MethodPatch, rec, "auditor", map[string]string{"short_description": "x"}); r.status != http.StatusForbidden {
		t.Fatalf("auditor write: %d %s", r.status, r.raw)
	}
}

func TestSnowsimFaultsFlag(t *testing.T) {
	base := snowsimProcess(t, "--faults", "429=1/2")
	var saw429 bool
	for range 4 {
		r := curl(t, http.MethodGet, base+"/api/now/table/change_request?sysparm_limit=1", "daytwo", nil)
		if r.status == http.StatusTooManyRequests {
			saw429 = true
			if r.header.Get("Retry-After") == "" || r.header.Get("X-RateLimit-Reset") == "" || !strings.Contains(r.raw, "Rate limit exceeded") {
				t.Fatalf("429 without its headers or envelope: %v %s", r.header, r.raw)
			}
		}
	}
	if !saw429 {
		t.Fatal("--faults 429=1/2 produced no 429 in 4 requests")
	}
	r := daytwo(t, nil, "snowsim", "--faults", "teapot=5%")
	if r.code != 2 || !strings.Contains(r.stderr, "teapot") {
		t.Fatalf("bad --faults: %+v", r)
	}
}
