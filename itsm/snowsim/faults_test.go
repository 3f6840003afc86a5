package snowsim

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseFaults(t *testing.T) {
	tests := map[string]struct {
		spec    string
		want    Faults
		wantErr string
	}{
		"empty": {spec: "", want: Faults{}},
		"off":   {spec: "off", want: Faults{}},
		"all": {
			spec: "latency=50ms,429=10%,500=5%,503=1/20,html=2%,drop=2%,create-drop=5%,hibernate,retry-after=3",
			want: Faults{
				Latency: 50 * time.Millisecond, RateLimit: Rule{Percent: 10}, ServerError: Rule{Percent: 5},
				Unavailable: Rule{Every: 20}, HTML: Rule{Percent: 2}, Drop: Rule{Percent: 2}, CreateDrop: Rule{Percent: 5},
				Hibernate: true, RetryAfter: 3 * time.Second,
			},
		},
		"spaces":       {spec: " 429 = 1/3 , latency=1s ", want: Faults{RateLimit: Rule{Every: 3}, Latency: time.Second}},
		"unknown term": {spec: "429=1/3,teapot=5%", wantErr: `unknown term "teapot=5%"`},
		"bad rate":     {spec: "500=lots", wantErr: `term "500=lots"`},
		"bad percent":  {spec: "503=150%", wantErr: `term "503=150%"`},
		"bad nth":      {spec: "drop=1/0", wantErr: `term "drop=1/0"`},
		"bad latency":  {spec: "latency=fast", wantErr: `term "latency=fast"`},
		"bare word":    {spec: "429", wantErr: `term "429"`},
		"create delay": {
			spec: "create-delay=500ms-3s,create-empty=1/2",
			want: Faults{CreateDelayMin: 500 * time.Millisecond, CreateDelayMax: 3 * time.Second, CreateEmpty: Rule{Every: 2}},
		},
		"fixed create delay": {spec: "create-delay=2s", want: Faults{CreateDelayMin: 2 * time.Second, CreateDelayMax: 2 * time.Second}},
		"bad create delay":   {spec: "create-delay=3s-1s", wantErr: `term "create-delay=3s-1s"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseFaults(tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
			if again, err := ParseFaults(got.String()); err != nil || again != got {
				t.Fatalf("String() %q does not round-trip: %+v %v", got.String(), again, err)
			}
		})
	}
}

func TestFaultInjection(t *testing.T) {
	e := newEnv(t, Options{Faults: Faults{RateLimit: Rule{Every: 2}, RetryAfter: 2 * time.Second}})
	e.call("daytwo", "GET", "/api/now/table/cmdb_ci", nil).must(t, 200)
	r := e.call("daytwo", "GET", "/api/now/table/cmdb_ci", nil).must(t, http.StatusTooManyRequests)
	if msg, _ := r.errorOf(t); msg != "Rate limit exceeded" || r.header.Get("Retry-After") != "2" ||
		r.header.Get("X-RateLimit-Limit") == "" || r.header.Get("X-RateLimit-Reset") == "" || r.header.Get("X-RateLimit-Rule") == "" {
		t.Fatalf("429 = %v %s", r.header, r.body)
	}
	// OAuth and admin are never faulted.
	e.sim.SetFaults(Faults{Hibernate: true})
	r = e.call("daytwo", "GET", "/api/now/table/cmdb_ci", nil).must(t, http.StatusOK)
	if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !strings.Contains(string(r.body), "hibernating") {
		t.Fatalf("hibernation = %v %s", r.header, r.body)
	}
	e.call("", "GET", "/__admin/faults", nil).must(t, 200)

	e.sim.SetFaults(Faults{Unavailable: Rule{Every: 1}})
	r = e.call("daytwo", "GET", "/api/now/table/cmdb_ci", nil).must(t, http.StatusServiceUnavailable)
	if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("503 content type = %s", r.header.Get("Content-Type"))
	}
	e.sim.SetFaults(Faults{ServerError: Rule{Percent: 100}})
	r = e.call("daytwo", "GET", "/api/now/table/cmdb_ci", nil).must(t, http.StatusInternalServerError)
	r.errorOf(t)

	e.sim.SetFaults(Faults{Drop: Rule{Every: 1}})
	req, _ := http.NewRequest("GET", e.url+"/api/now/table/cmdb_ci", nil)
	req.SetBasicAuth("daytwo", "daytwo")
	req.Header.Set("Accept", "application/json")
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
		t.Fatalf("dropped request answered %d", res.StatusCode)
	}

	e.sim.SetFaults(Faults{Latency: 30 * time.Millisecond})
	start := time.Now()
	e.call("daytwo", "GET", "/api/now/table/cmdb_ci", nil).must(t, 200)
	if time.Since(start) < 30*time.Millisecond {
		t.Fatal("latency not applied")
	}
}

// TestCreateDrop proves the create happens although the client sees a
// dropped connection, so a client must look its correlation_id up.
func TestCreateDrop(t *testing.T) {
	e := newEnv(t, Options{Faults: Faults{CreateDrop: Rule{Every: 1}}})
	for _, path := range []string{"/api/now/table/change_request", "/api/sn_chg_rest/change/normal"} {
		req, _ := http.NewRequestWithContext(context.Background(), "POST", e.url+path, strings.NewReader(`{"correlation_id":"rollout-1","short_description":"x"}`))
		req.SetBasicAuth("daytwo", "daytwo")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			t.Fatalf("%s: create-drop answered %d", path, res.StatusCode)
		}
	}
	e.sim.SetFaults(Faults{})
	got := e.call("daytwo", "GET", "/api/now/table/change_request?correlation_id=rollout-1", nil).must(t, 200)
	if got.header.Get("X-Total-Count") != "2" {
		t.Fatalf("creates behind dropped responses = %s", got.header.Get("X-Total-Count"))
	}
	// The server logs a dropped request after closing the connection, so
	// the client may get here first: wait a little.
	var dropped int
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		dropped = 0
		for _, r := range e.sim.Requests() {
			if r.Fault == "create-drop" {
				dropped++
			}
		}
		if dropped == 2 {
			break
		}
	}
	if dropped != 2 {
		t.Fatalf("request log create-drop entries = %d", dropped)
	}
}

// A delayed create commits only after the delay, whether or not the client
// still waits, and is invisible to look-ups before.
func TestCreateDelayCommitsLate(t *testing.T) {
	e := newEnv(t, Options{Faults: Faults{CreateDelayMin: 300 * time.Millisecond, CreateDelayMax: 300 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", e.url+"/api/sn_chg_rest/change/normal",
		strings.NewReader(`{"short_description":"slow","correlation_id":"daytwo:slow-1"}`))
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("daytwo", "daytwo")
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
		t.Fatalf("the delayed create answered within 50ms: %d", res.StatusCode)
	}
	lookup := func() int {
		return len(e.call("daytwo", "GET", "/api/now/table/change_request?sysparm_query=correlation_id=daytwo:slow-1", nil).must(t, 200).list(t))
	}
	if n := lookup(); n != 0 {
		t.Fatalf("the record is visible before its commit: %d", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for lookup() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the create whose client gave up was never committed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An empty-result create is performed, and answered without a record.
func TestCreateEmptyAnswer(t *testing.T) {
	e := newEnv(t, Options{Faults: Faults{CreateEmpty: Rule{Every: 1}}})
	for i, want := range []string{`{"result":{}}`, `{"result":null}`} {
		r := e.call("daytwo", "POST", "/api/sn_chg_rest/change/normal", map[string]any{"short_description": "x", "correlation_id": "daytwo:e"}).must(t, 200)
		if strings.TrimSpace(string(r.body)) != want {
			t.Fatalf("answer %d = %s, want %s", i, r.body, want)
		}
	}
	r := e.call("daytwo", "POST", "/api/now/table/incident", map[string]any{"short_description": "x"}).must(t, http.StatusCreated)
	if strings.TrimSpace(string(r.body)) != `{"result":{}}` {
		t.Fatalf("table create answer = %s", r.body)
	}
	e.sim.SetFaults(Faults{})
	if n := len(e.call("daytwo", "GET", "/api/now/table/change_request?sysparm_query=correlation_id=daytwo:e", nil).must(t, 200).list(t)); n != 2 {
		t.Fatalf("%d changes stored, want the 2 created", n)
	}
}
