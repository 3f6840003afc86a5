package exec

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// fleet serves what a deployed target would, on loopback.
func fleet(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok version=1.2.3")
	})
	mux.HandleFunc("HEAD /healthz", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"version":"1.2.3","build":{"version":"1.2.3","number":42,"ok":true},"items":[{"v":"a"}]}`)
	})
	mux.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<html>hello</html>")
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/healthz", http.StatusFound)
	})
	mux.HandleFunc("/offhost", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.1:"+strings.Split(r.Host, ":")[1]+"/healthz", http.StatusFound)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func healthReq(url string) ops.StepRequest {
	req := stepReq()
	req.Target.Vars = map[string]string{"url": url}
	return req
}

func TestHealthHTTP(t *testing.T) {
	srv := fleet(t)
	tests := map[string]struct {
		check   ops.HTTPCheck
		wantEv  string
		wantErr string
	}{
		"status ok": {
			check:  ops.HTTPCheck{URL: "{{ .Target.Vars.url }}/healthz", ExpectStatus: 200},
			wantEv: "http GET " + srv.URL + "/healthz → 200 in 0s",
		},
		"default status": {
			check:  ops.HTTPCheck{URL: srv.URL + "/healthz"},
			wantEv: "→ 200",
		},
		"method": {
			check:  ops.HTTPCheck{URL: srv.URL + "/healthz", Method: "post", ExpectStatus: 202},
			wantEv: "http POST ",
		},
		"status mismatch": {
			check:   ops.HTTPCheck{URL: srv.URL + "/down", ExpectStatus: 200},
			wantErr: "/down → 503 in 0s, want 200",
		},
		"body match": {
			check:  ops.HTTPCheck{URL: srv.URL + "/healthz", ExpectBody: "version={{ .Version }}"},
			wantEv: "→ 200",
		},
		"body mismatch": {
			check:   ops.HTTPCheck{URL: srv.URL + "/healthz", ExpectBody: "version={{ .PreviousVersion }}"},
			wantErr: `body does not contain "version=1.2.2" (body: "ok version=1.2.3\n")`,
		},
		"json match": {
			check: ops.HTTPCheck{URL: srv.URL + "/json", ExpectJSON: map[string]string{
				"version": "{{ .Version }}", "build.version": "{{ .Version }}",
				"build.number": "42", "build.ok": "true", "items.0.v": "a",
			}},
			wantEv: "/json → 200",
		},
		"json mismatch": {
			check:   ops.HTTPCheck{URL: srv.URL + "/json", ExpectJSON: map[string]string{"build.version": "{{ .PreviousVersion }}"}},
			wantErr: `json build.version = "1.2.3", want "1.2.2"`,
		},
		"json missing": {
			check:   ops.HTTPCheck{URL: srv.URL + "/json", ExpectJSON: map[string]string{"build.commit": "abc"}},
			wantErr: `json build.commit is missing, want "abc"`,
		},
		"not json": {
			check:   ops.HTTPCheck{URL: srv.URL + "/html", ExpectJSON: map[string]string{"version": "1"}},
			wantErr: `body is not JSON`,
		},
		"redirect followed and reported": {
			check:  ops.HTTPCheck{URL: srv.URL + "/redirect"},
			wantEv: "→ 200 in 0s (redirected to " + srv.URL + "/healthz)",
		},
		"redirect off-host reported": {
			check:  ops.HTTPCheck{URL: strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/offhost"},
			wantEv: "→ 200 in 0s (redirected off-host to " + srv.URL + "/healthz)",
		},
		"password redacted": {
			check:  ops.HTTPCheck{URL: strings.Replace(srv.URL, "http://", "http://probe:s3cret@", 1) + "/healthz"},
			wantEv: "http://probe:xxxxx@",
		},
		"missing var": {
			check:   ops.HTTPCheck{URL: "{{ .Target.Vars.nope }}/healthz"},
			wantErr: `map has no entry for key "nope"`,
		},
		"not a URL": {
			check:   ops.HTTPCheck{URL: "127.0.0.1:1/healthz"},
			wantErr: "want an absolute http:// or https:// URL",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			clock := newFakeClock()
			h, err := NewHealth("staging", []ops.HealthCheck{{HTTP: &tt.check}},
				WithHTTPClient(srv.Client()), WithClock(clock.now), WithSleep(clock.sleep))
			if err != nil {
				t.Fatal(err)
			}
			var rec recorder
			ev, err := h.Check(t.Context(), healthReq(srv.URL), rec.sink)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "exec: health of stg-1: ") {
					t.Errorf("err = %v, want it to name the target", err)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("err = %v leaks a password", err)
				}
				if got := rec.stream("daytwo"); len(got) != 1 {
					t.Errorf("logged %q, want the failed attempt", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(ev, tt.wantEv) {
				t.Errorf("evidence %q, want it to contain %q", ev, tt.wantEv)
			}
			if strings.Contains(ev, "s3cret") {
				t.Errorf("evidence %q leaks a password", ev)
			}
		})
	}
}

func TestHealthRetries(t *testing.T) {
	var hits atomic.Int32
	failFirst := int32(2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) <= failFirst {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()

	tests := map[string]struct {
		retries int
		wantErr string
		wantEv  string
	}{
		"recovers on the third attempt": {retries: 3, wantEv: "→ 200 in 0s (attempt 3 of 4)"},
		"gives up after the last":       {retries: 1, wantErr: "→ 503 in 0s, want 200 (attempt 2 of 2)"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			hits.Store(0)
			clock := newFakeClock()
			h, err := NewHealth("staging", []ops.HealthCheck{{
				HTTP: &ops.HTTPCheck{URL: srv.URL}, Retries: tt.retries, Interval: 7 * time.Second,
			}}, WithHTTPClient(srv.Client()), WithClock(clock.now), WithSleep(clock.sleep))
			if err != nil {
				t.Fatal(err)
			}
			var rec recorder
			ev, err := h.Check(t.Context(), healthReq(srv.URL), rec.sink)
			attempts := min(tt.retries+1, int(failFirst)+1)
			if int(hits.Load()) != attempts {
				t.Errorf("%d requests, want %d", hits.Load(), attempts)
			}
			if want := slices.Repeat([]time.Duration{7 * time.Second}, attempts-1); !slices.Equal(clock.slept(), want) {
				t.Errorf("slept %v, want %v", clock.slept(), want)
			}
			if got := rec.stream("daytwo"); len(got) != min(attempts, int(failFirst)) {
				t.Errorf("logged %q, want one line per failed attempt", got)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !strings.HasSuffix(ev, tt.wantEv) {
				t.Fatalf("evidence %q, err %v, want %q", ev, err, tt.wantEv)
			}
		})
	}
}

func TestHealthTimeout(t *testing.T) {
	srv := fleet(t)
	h, err := NewHealth("staging", []ops.HealthCheck{{
		HTTP: &ops.HTTPCheck{URL: srv.URL + "/slow"}, Timeout: 100 * time.Millisecond,
	}}, WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Check(t.Context(), healthReq(srv.URL), nil)
	if err == nil || !strings.HasSuffix(err.Error(), "/slow: timed out after 100ms") {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
}

func TestHealthTCPAndCommand(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := closed.Addr().String()
	closed.Close()

	tests := map[string]struct {
		check   ops.HealthCheck
		wantEv  string
		wantErr string
	}{
		"tcp ok": {
			check:  ops.HealthCheck{TCP: &ops.TCPCheck{Address: "{{ .Target.Vars.addr }}"}},
			wantEv: "tcp " + ln.Addr().String() + " ok in 0s",
		},
		"tcp refused": {
			check:   ops.HealthCheck{TCP: &ops.TCPCheck{Address: refused}},
			wantErr: "tcp " + refused + ": connect: connection refused",
		},
		"command ok": {
			check:  ops.HealthCheck{Command: []string{"sh", "-c", `test "$DAYTWO_VERSION" = "$1" && test "$DAYTWO_TARGET_ADDR" = "$2"`, "sh", "{{ .Version }}", "{{ .Target.Vars.addr }}"}},
			wantEv: "command sh ok in 0s",
		},
		"command fails": {
			check:   ops.HealthCheck{Command: []string{"sh", "-c", "echo not ready >&2; exit 4"}},
			wantErr: `command sh exited with code 4; stderr: "not ready"`,
		},
		"command times out": {
			check:   ops.HealthCheck{Command: []string{"sleep", "10"}, Timeout: 100 * time.Millisecond},
			wantErr: "command sleep: timed out after 100ms",
		},
		"named": {
			check:  ops.HealthCheck{Name: "port", TCP: &ops.TCPCheck{Address: ln.Addr().String()}},
			wantEv: "port: tcp ",
		},
		"named failure": {
			check:   ops.HealthCheck{Name: "port", TCP: &ops.TCPCheck{Address: refused}},
			wantErr: `check "port": tcp `,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			clock := newFakeClock()
			h, err := NewHealth("staging", []ops.HealthCheck{tt.check}, WithClock(clock.now), WithSleep(clock.sleep))
			if err != nil {
				t.Fatal(err)
			}
			req := stepReq()
			req.Target.Vars = map[string]string{"addr": ln.Addr().String()}
			ev, err := h.Check(t.Context(), req, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !strings.HasPrefix(ev, tt.wantEv) {
				t.Fatalf("evidence %q, err %v, want %q", ev, err, tt.wantEv)
			}
		})
	}
}

func TestHealthEvidenceJoinsChecks(t *testing.T) {
	srv := fleet(t)
	addr := strings.TrimPrefix(srv.URL, "http://")
	clock := newFakeClock()
	h, err := NewHealth("staging", []ops.HealthCheck{
		{HTTP: &ops.HTTPCheck{URL: srv.URL + "/healthz", ExpectStatus: 200}},
		{TCP: &ops.TCPCheck{Address: addr}},
	}, WithHTTPClient(srv.Client()), WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := h.Check(t.Context(), healthReq(srv.URL), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "http GET " + srv.URL + "/healthz → 200 in 0s; tcp " + addr + " ok in 0s"; ev != want {
		t.Errorf("evidence %q, want %q", ev, want)
	}
}

func TestNewHealthErrors(t *testing.T) {
	tests := map[string]struct {
		check ops.HealthCheck
		want  string
	}{
		"nothing":          {ops.HealthCheck{}, "health[0]: set exactly one of http, tcp and command"},
		"two kinds":        {ops.HealthCheck{TCP: &ops.TCPCheck{Address: "x"}, Command: []string{"true"}}, "exactly one"},
		"negative retries": {ops.HealthCheck{TCP: &ops.TCPCheck{Address: "x"}, Retries: -1}, "health[0].retries"},
		"bad url":          {ops.HealthCheck{HTTP: &ops.HTTPCheck{URL: "{{ .Target"}}, "health[0].http.url"},
		"bad body":         {ops.HealthCheck{HTTP: &ops.HTTPCheck{URL: "http://x", ExpectBody: "{{"}}, "health[0].http.expect_body"},
		"bad json value":   {ops.HealthCheck{HTTP: &ops.HTTPCheck{URL: "http://x", ExpectJSON: map[string]string{"v": "{{ .X "}}}, "health[0].http.expect_json.v"},
		"bad json path":    {ops.HealthCheck{HTTP: &ops.HTTPCheck{URL: "http://x", ExpectJSON: map[string]string{"a..b": "1"}}}, "not a dotted path"},
		"bad address":      {ops.HealthCheck{TCP: &ops.TCPCheck{Address: "{{ }}"}}, "health[0].tcp.address"},
		"bad command":      {ops.HealthCheck{Command: []string{"x", "{{ .Version"}}, "health[0].command[1]"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := NewHealth("staging", []ops.HealthCheck{tt.check})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestHealthRefusesBadVersion(t *testing.T) {
	h, err := NewHealth("staging", []ops.HealthCheck{{Command: []string{"true"}}})
	if err != nil {
		t.Fatal(err)
	}
	req := stepReq()
	req.Version = "$(reboot)"
	if _, err := h.Check(t.Context(), req, nil); err == nil {
		t.Fatal("a bad version was checked")
	}
}

func TestBake(t *testing.T) {
	var hits atomic.Int32
	var failAt atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := hits.Add(1); failAt.Load() > 0 && n >= failAt.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()

	tests := map[string]struct {
		failAt   int32
		bake     time.Duration
		interval time.Duration
		wantEv   string
		wantErr  string
		rounds   int32
		slept    []time.Duration
	}{
		"passes every round": {
			bake: 3 * time.Second, interval: time.Second, rounds: 4,
			wantEv: "bake 3s: 4 rounds ok; last: http GET ",
			slept:  []time.Duration{time.Second, time.Second, time.Second},
		},
		"last round at the end": {
			bake: 2500 * time.Millisecond, interval: time.Second, rounds: 4,
			wantEv: "bake 2.5s: 4 rounds ok",
			slept:  []time.Duration{time.Second, time.Second, 500 * time.Millisecond},
		},
		"fails mid-bake": {
			failAt: 4, bake: 10 * time.Second, interval: time.Second, rounds: 4,
			wantErr: "exec: bake of stg-1: round 4, 3s into 10s: http GET " + srv.URL + " → 500 in 0s, want 200",
			slept:   []time.Duration{time.Second, time.Second, time.Second},
		},
		"zero length checks once": {
			bake: 0, interval: time.Second, rounds: 1, wantEv: "bake 0s: 1 rounds ok",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			hits.Store(0)
			failAt.Store(tt.failAt)
			clock := newFakeClock()
			h, err := NewHealth("staging", []ops.HealthCheck{{HTTP: &ops.HTTPCheck{URL: srv.URL}, Interval: tt.interval}},
				WithHTTPClient(srv.Client()), WithClock(clock.now), WithSleep(clock.sleep))
			if err != nil {
				t.Fatal(err)
			}
			ev, err := h.Bake(t.Context(), healthReq(srv.URL), tt.bake, nil)
			if hits.Load() != tt.rounds {
				t.Errorf("%d rounds, want %d", hits.Load(), tt.rounds)
			}
			if !slices.Equal(clock.slept(), tt.slept) {
				t.Errorf("slept %v, want %v", clock.slept(), tt.slept)
			}
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err:\n%v\nwant:\n%s", err, tt.wantErr)
				}
				return
			}
			if err != nil || !strings.HasPrefix(ev, tt.wantEv) {
				t.Fatalf("evidence %q, err %v, want %q", ev, err, tt.wantEv)
			}
		})
	}
}

func TestBakeCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	clock := newFakeClock()
	h, err := NewHealth("staging", []ops.HealthCheck{{Command: []string{"true"}}}, WithClock(clock.now),
		WithSleep(func(ctx context.Context, d time.Duration) error {
			cancel()
			return clock.sleep(ctx, d)
		}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Bake(ctx, stepReq(), time.Minute, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want canceled", err)
	}
}
