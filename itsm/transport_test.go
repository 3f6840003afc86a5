package itsm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	changePath = "/api/now/table/change_request/1c87925347c12200e0ef563dbb9a7177"
	changeID   = "1c87925347c12200e0ef563dbb9a7177"
)

// Traps 9, 10, 18 and the §2.2 table: every error body maps to the right
// sentinels, and business-rule aborts are not ACL denials.
func TestErrorClassification(t *testing.T) {
	htmlHandler := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=UTF-8")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, fixture(t, "hibernating.html"))
		}
	}
	tests := map[string]struct {
		h        http.HandlerFunc
		is       []error
		isNot    []error
		contains string
	}{
		"401 envelope": {
			h: respond(401, fixture(t, "err_401.json")), is: []error{ErrUnauthorized},
			isNot: []error{ErrForbidden, ErrUnavailable}, contains: "User Not Authenticated",
		},
		"403 ACL list, null detail": {
			h: respond(403, fixture(t, "err_403_acl_list.json")), is: []error{ErrForbidden},
			isNot: []error{ErrBusinessRule, ErrUnauthorized}, contains: "Insufficient rights",
		},
		"403 ACL write": {
			h: respond(403, fixture(t, "err_403_acl_write.json")), is: []error{ErrForbidden},
			isNot: []error{ErrBusinessRule}, contains: "ACL Exception",
		},
		"403 business rule": {
			h: respond(403, fixture(t, "err_403_business_rule.json")), is: []error{ErrBusinessRule},
			isNot: []error{ErrForbidden, ErrUnauthorized}, contains: "aborted by Business Rule",
		},
		"400 change api business rule": {
			h: respond(400, fixture(t, "err_chgapi_business_rule.json")), is: []error{ErrBusinessRule},
			isNot: []error{ErrBadRequest, ErrForbidden},
		},
		"404 missing or hidden": {
			h: respond(404, fixture(t, "err_404.json")), is: []error{ErrNotFound},
			contains: "No Record found",
		},
		"400 invalid table": {
			h: respond(400, fixture(t, "err_400_table.json")), is: []error{ErrBadRequest},
			contains: "Invalid table",
		},
		"500 envelope": {
			h:     respond(500, `{"error":{"message":"boom","detail":null},"status":"failure"}`),
			isNot: []error{ErrUnavailable, ErrOutcomeUnknown}, contains: "boom",
		},
		"503 HTML": {
			h: htmlHandler(503), is: []error{ErrUnavailable},
			isNot: []error{ErrNotFound}, contains: "instance unavailable (HTML answer",
		},
		"200 HTML hibernation": {
			h: htmlHandler(200), is: []error{ErrUnavailable},
			contains: "Instance Hibernating page",
		},
		"200 HTML without content type": {h: func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(200)
			_, _ = io.WriteString(w, "  <html><body>login</body></html>")
		}, is: []error{ErrUnavailable}},
		"302 SSO redirect": {h: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://sso.example.com/login", http.StatusFound)
		}, is: []error{ErrUnavailable}, contains: "sso.example.com"},
		"non-json garbage": {h: respond(502, "Bad Gateway"), is: []error{ErrUnavailable}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			env := newEnv(t, func(c *Config) { c.Retry.MaxAttempts = 2 })
			env.f.handle("GET "+changePath, tc.h)
			_, err := env.c.GetChange(context.Background(), changeID)
			if err == nil {
				t.Fatal("no error")
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("not an *Error: %T %v", err, err)
			}
			for _, s := range tc.is {
				if !errors.Is(err, s) {
					t.Errorf("errors.Is(%v) false for %v", s, err)
				}
			}
			for _, s := range tc.isNot {
				if errors.Is(err, s) {
					t.Errorf("errors.Is(%v) true for %v", s, err)
				}
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q does not contain %q", err, tc.contains)
			}
			if !strings.HasPrefix(err.Error(), "itsm: get change") {
				t.Errorf("error lacks operation context: %q", err)
			}
		})
	}
}

// Trap 17: 429 with Retry-After (seconds) is honoured through the sleep
// seam, no real waiting.
func TestRetryAfterSeconds(t *testing.T) {
	env := newEnv(t)
	tooMany := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.Header().Set("X-RateLimit-Limit", "100")
		writeJSON(w, 429, fixture(t, "err_429.json"))
	}
	env.f.handle("GET "+changePath, sequence(tooMany, respond(200, fixture(t, "table_change.json"))))
	start := time.Now()
	ch, err := env.c.GetChange(context.Background(), changeID)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Number != "CHG0030042" {
		t.Errorf("number %q", ch.Number)
	}
	if got := env.sleeps.all(); len(got) != 1 || got[0] != 7*time.Second {
		t.Errorf("sleeps = %v, want [7s]", got)
	}
	if time.Since(start) > 2*time.Second {
		t.Error("the test really waited")
	}
	if st := env.c.Stats(); st.Requests != 2 || st.Retries != 1 || st.ByStatus[429] != 1 || st.ByStatus[200] != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestRetryAfterDateAndRateLimitReset(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		header map[string]string
		want   time.Duration
	}{
		"http date":         {map[string]string{"Retry-After": now.Add(20 * time.Second).Format(http.TimeFormat)}, 20 * time.Second},
		"x-ratelimit-reset": {map[string]string{"X-RateLimit-Reset": fmt.Sprint(now.Add(45 * time.Second).Unix())}, 45 * time.Second},
		"no advice":         {nil, 500 * time.Millisecond}, // base backoff, full ceiling in tests
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFake(t)
			s := &sleeps{}
			c, err := New(Config{Instance: f.srv.URL, Auth: AuthConfig{Username: testUser, Password: testPassword}},
				WithSleep(s.sleep), WithClock(func() time.Time { return now }),
				withJitter(func(max time.Duration) time.Duration { return max }))
			if err != nil {
				t.Fatal(err)
			}
			f.handle("GET "+changePath, sequence(func(w http.ResponseWriter, _ *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.Header().Set("Date", now.Format(http.TimeFormat))
				writeJSON(w, 429, fixture(t, "err_429.json"))
			}, respond(200, fixture(t, "table_change.json"))))
			if _, err := c.GetChange(context.Background(), changeID); err != nil {
				t.Fatal(err)
			}
			if got := s.all(); len(got) != 1 || got[0] != tc.want {
				t.Errorf("sleeps = %v, want [%v]", got, tc.want)
			}
		})
	}
}

// An hourly rate limit asks for a wait far beyond the budget: fail fast with
// ErrRateLimited and the advice, instead of sleeping for an hour.
func TestRetryAfterBeyondBudget(t *testing.T) {
	env := newEnv(t)
	env.f.handle("GET "+changePath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "3600")
		writeJSON(w, 429, fixture(t, "err_429.json"))
	})
	_, err := env.c.GetChange(context.Background(), changeID)
	var e *Error
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &e) || e.RetryAfter != time.Hour {
		t.Fatalf("err = %v", err)
	}
	if len(env.sleeps.all()) != 0 || env.f.count("GET", changePath) != 1 {
		t.Errorf("slept %v, %d requests", env.sleeps.all(), env.f.count("GET", changePath))
	}
}

// Retries are bounded in count, grow exponentially (full jitter ceilings)
// and are bounded in total wait.
func TestRetryBounded(t *testing.T) {
	env := newEnv(t, func(c *Config) {
		c.Retry = RetryConfig{MaxAttempts: 4, BaseDelay: time.Second, MaxDelay: 3 * time.Second, MaxWait: time.Minute}
	})
	env.f.handle("GET "+changePath, respond(503, `{"error":{"message":"unavailable","detail":null},"status":"failure"}`))
	_, err := env.c.GetChange(context.Background(), changeID)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if n := env.f.count("GET", changePath); n != 4 {
		t.Errorf("%d attempts, want 4", n)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}
	if got := env.sleeps.all(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sleeps = %v, want %v", got, want)
	}

	env2 := newEnv(t, func(c *Config) {
		c.Retry = RetryConfig{MaxAttempts: 10, BaseDelay: time.Second, MaxDelay: 10 * time.Second, MaxWait: 4 * time.Second}
	})
	env2.f.handle("GET "+changePath, respond(504, `{}`))
	if _, err := env2.c.GetChange(context.Background(), changeID); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	var total time.Duration
	for _, d := range env2.sleeps.all() {
		total += d
	}
	if total > 4*time.Second {
		t.Errorf("waited %v in total, budget 4s", total)
	}
}

// A cancelled context stops the retry loop.
func TestRetryHonoursContext(t *testing.T) {
	env := newEnv(t)
	env.f.handle("GET "+changePath, respond(503, `{}`))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := env.c.GetChange(ctx, changeID)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// Trap 18 on a write: a hibernating 200 HTML to a POST is unavailable and
// of unknown outcome, never a decode error.
func TestHTMLOnCreate(t *testing.T) {
	env := newEnv(t)
	env.f.handle("POST /api/sn_chg_rest/change/normal", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, fixture(t, "hibernating.html"))
	})
	_, err := env.c.CreateChange(context.Background(), ChangeInput{ShortDescription: "x", CorrelationID: "daytwo:1"})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("err = %v", err)
	}
	if env.f.count("POST", "/api/sn_chg_rest/change/normal") != 1 {
		t.Error("HTML answer was retried")
	}
}

// POSTs are never blindly retried: 503 and 500 are unknown outcomes; 429 is
// safe to retry.
func TestPostRetryPolicy(t *testing.T) {
	created := resultJSON([]map[string]string{tableChange(changeID, "CHG0030042", StateNew, "normal", nil)})
	tests := map[string]struct {
		first    http.HandlerFunc
		attempts int
		unknown  bool
		ok       bool
	}{
		"503 not retried": {first: respond(503, `{}`), attempts: 1, unknown: true},
		"500 not retried": {first: respond(500, `{"error":{"message":"x","detail":null},"status":"failure"}`), attempts: 1, unknown: true},
		"429 retried": {first: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, 429, fixture(t, "err_429.json"))
		}, attempts: 2, ok: true},
		"400 definite": {first: respond(400, `{"error":{"message":"Invalid value for risk","detail":null},"status":"failure"}`), attempts: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			env := newEnv(t)
			env.c.changeAPI.Store(changeAPIPresent)
			env.f.handle("POST /api/sn_chg_rest/change/normal", sequence(tc.first, respond(200, created)))
			_, err := env.c.CreateChange(context.Background(), ChangeInput{ShortDescription: "x", CorrelationID: "daytwo:1"})
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v", err)
			}
			if got := errors.Is(err, ErrOutcomeUnknown); got != tc.unknown {
				t.Errorf("ErrOutcomeUnknown = %v, want %v (%v)", got, tc.unknown, err)
			}
			if n := env.f.count("POST", "/api/sn_chg_rest/change/normal"); n != tc.attempts {
				t.Errorf("%d attempts, want %d", n, tc.attempts)
			}
		})
	}
}

// dropAfterRead reads the request, runs fn (which may "create" the record),
// then kills the connection without answering.
func dropAfterRead(t *testing.T, fn func()) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		fn()
		hj, ok := w.(http.Hijacker)
		if !ok {
			t.Fatal("no hijacker")
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.Close()
	}
}

// The simulator's "create then drop the response" fault: the POST is not
// retried, the error is ErrOutcomeUnknown, and the idempotent create finds
// the change by correlation id instead of creating a second one.
func TestCreateThenDropIsIdempotent(t *testing.T) {
	env := newEnv(t)
	var stored atomic.Value
	stored.Store("")
	rec := tableChange(changeID, "CHG0030042", StateNew, "normal", map[string]string{"correlation_id": "daytwo:upd-7"})
	env.f.handle("GET /api/now/table/change_request", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query().Get("sysparm_query")
		if !strings.Contains(q, "correlation_id=daytwo:upd-7") {
			t.Errorf("lookup query %q", q)
		}
		if stored.Load().(string) == "" {
			writeJSON(w, 200, `{"result":[]}`)
			return
		}
		writeJSON(w, 200, resultJSON([]map[string]string{rec}))
	})
	env.f.handle("POST /api/sn_chg_rest/change/normal", dropAfterRead(t, func() { stored.Store("yes") }))

	_, err := env.c.CreateChange(context.Background(), ChangeInput{ShortDescription: "x", CorrelationID: "daytwo:upd-7"})
	if !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("plain create: err = %v, want ErrOutcomeUnknown", err)
	}
	if n := env.f.count("POST", "/api/sn_chg_rest/change/normal"); n != 1 {
		t.Fatalf("POST sent %d times", n)
	}

	stored.Store("")
	ch, created, err := env.c.CreateChangeIdempotent(context.Background(),
		ChangeInput{ShortDescription: "x", CorrelationID: "daytwo:upd-7"})
	if err != nil || !created || ch.Number != "CHG0030042" {
		t.Fatalf("idempotent create: %v, %v, %v", ch, created, err)
	}
	if n := env.f.count("POST", "/api/sn_chg_rest/change/normal"); n != 2 {
		t.Errorf("POST sent %d times in total, want 2 (one per create call)", n)
	}
	// Now it exists: a further call creates nothing.
	_, created, err = env.c.CreateChangeIdempotent(context.Background(),
		ChangeInput{ShortDescription: "x", CorrelationID: "daytwo:upd-7"})
	if err != nil || created {
		t.Fatalf("third call: created=%v err=%v", created, err)
	}
	if n := env.f.count("POST", "/api/sn_chg_rest/change/normal"); n != 2 {
		t.Errorf("POST sent again for an existing change")
	}
}

// Connection refused: nothing was sent, so even a POST may be retried, and
// the outcome is known (not created).
func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	s := &sleeps{}
	c, err := New(Config{
		Instance: "http://" + addr, Auth: AuthConfig{Username: testUser, Password: testPassword},
		Retry: RetryConfig{MaxAttempts: 3},
	}, WithSleep(s.sleep))
	if err != nil {
		t.Fatal(err)
	}
	c.changeAPI.Store(changeAPIPresent)
	_, err = c.CreateChange(context.Background(), ChangeInput{ShortDescription: "x", CorrelationID: "daytwo:1"})
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("err = %v", err)
	}
	if st := c.Stats(); st.Requests != 3 || st.TransportErrors != 3 {
		t.Errorf("stats %+v", st)
	}
	if strings.Contains(err.Error(), testPassword) {
		t.Error("password in error")
	}
}

// A per-call timeout on a GET is retried; on a POST it is an unknown outcome.
func TestTimeout(t *testing.T) {
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	env := newEnv(t, func(c *Config) { c.Timeout = 50 * time.Millisecond; c.Retry.MaxAttempts = 2 })
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}
	env.f.handle("GET "+changePath, slow)
	env.f.handle("POST /api/sn_chg_rest/change/normal", slow)
	_, err := env.c.GetChange(context.Background(), changeID)
	if !errors.Is(err, ErrUnavailable) || env.f.count("GET", changePath) != 2 {
		t.Errorf("GET: %v after %d attempts", err, env.f.count("GET", changePath))
	}
	env.c.changeAPI.Store(changeAPIPresent)
	_, err = env.c.CreateChange(context.Background(), ChangeInput{ShortDescription: "x", CorrelationID: "daytwo:1"})
	if !errors.Is(err, ErrOutcomeUnknown) || env.f.count("POST", "/api/sn_chg_rest/change/normal") != 1 {
		t.Errorf("POST: %v", err)
	}
}

// Accept always, Content-Type on bodies, User-Agent, basic auth.
func TestHeaders(t *testing.T) {
	env := newEnv(t)
	env.f.handle("GET "+changePath, respond(200, fixture(t, "table_change.json")))
	env.f.handle("PATCH "+changePath, respond(200, fixture(t, "table_change.json")))
	if _, err := env.c.GetChange(context.Background(), changeID); err != nil {
		t.Fatal(err)
	}
	if err := env.c.AddWorkNote(context.Background(), changeID, "step 1 done"); err != nil {
		t.Fatal(err)
	}
	calls := env.f.Calls()
	for _, c := range calls {
		if c.Header.Get("Accept") != "application/json" {
			t.Errorf("%s Accept = %q", c.Method, c.Header.Get("Accept"))
		}
		if c.Header.Get("User-Agent") != "daytwo/test" {
			t.Errorf("User-Agent = %q", c.Header.Get("User-Agent"))
		}
		u, p, ok := (&http.Request{Header: c.Header}).BasicAuth()
		if !ok || u != testUser || p != testPassword {
			t.Error("basic auth missing")
		}
	}
	patch := calls[1]
	if !strings.HasPrefix(patch.Header.Get("Content-Type"), "application/json") {
		t.Errorf("Content-Type = %q", patch.Header.Get("Content-Type"))
	}
	if patch.Body != `{"work_notes":"step 1 done"}` {
		t.Errorf("body = %s", patch.Body)
	}
	if calls[0].q("sysparm_exclude_reference_link") != "true" {
		t.Error("reference links not excluded")
	}
}

// TLS verification is on; CAFile adds a private CA.
func TestTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, fixture(t, "table_change.json"))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	auth := AuthConfig{Username: testUser, Password: testPassword}
	c, err := New(Config{Instance: srv.URL, Auth: auth, Retry: RetryConfig{MaxAttempts: 3}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetChange(context.Background(), changeID)
	if err == nil || !strings.Contains(err.Error(), "TLS verification failed") {
		t.Fatalf("untrusted server: err = %v", err)
	}
	if c.Stats().Requests != 1 {
		t.Error("TLS failure was retried")
	}
	caFile := t.TempDir() + "/ca.pem"
	if err := writeCert(caFile, srv); err != nil {
		t.Fatal(err)
	}
	c, err = New(Config{Instance: srv.URL, Auth: auth, CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetChange(context.Background(), changeID); err != nil {
		t.Fatalf("with CA file: %v", err)
	}
	if _, err := New(Config{Instance: srv.URL, Auth: auth, CAFile: t.TempDir() + "/missing.pem"}); err == nil ||
		!strings.Contains(err.Error(), "servicenow.ca_file") {
		t.Errorf("missing CA file: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	tests := map[string]struct {
		cfg  Config
		want string
	}{
		"no instance":     {Config{Auth: AuthConfig{Username: "u", Password: "p"}}, "servicenow.instance: is required"},
		"plain http":      {Config{Instance: "http://example.service-now.com", Auth: AuthConfig{Username: "u", Password: "p"}}, "must use https"},
		"creds in url":    {Config{Instance: "https://u:" + testPassword + "@example.service-now.com", Auth: AuthConfig{Username: "u", Password: "p"}}, "must not contain credentials"},
		"no password":     {Config{Instance: "https://x.service-now.com", Auth: AuthConfig{Username: "u"}}, "servicenow.auth.password"},
		"bad method":      {Config{Instance: "https://x.service-now.com", Auth: AuthConfig{Method: "kerberos"}}, "servicenow.auth.method"},
		"oauth no secret": {Config{Instance: "https://x.service-now.com", Auth: AuthConfig{Method: "oauth", Grant: "client_credentials", ClientID: "id"}}, "servicenow.auth.client_secret"},
		"bad grant":       {Config{Instance: "https://x.service-now.com", Auth: AuthConfig{Method: "oauth", Grant: "implicit", ClientID: "id", ClientSecret: testSecret}}, "servicenow.auth.grant"},
		"page size":       {Config{Instance: "https://x.service-now.com", Auth: AuthConfig{Username: "u", Password: "p"}, PageSize: 20000}, "servicenow.page_size"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), testPassword) || strings.Contains(err.Error(), testSecret) {
				t.Errorf("secret in %q", err)
			}
		})
	}
	if _, err := New(Config{Instance: "http://127.0.0.1:8080", Auth: AuthConfig{Username: "u", Password: "p"}}); err != nil {
		t.Errorf("loopback http refused: %v", err)
	}
	if _, err := New(Config{Instance: "https://x.service-now.com", Auth: AuthConfig{Method: "oauth", Grant: "client_credentials", ClientID: "id", ClientSecret: "s"}}); err != nil {
		t.Errorf("client credentials refused: %v", err)
	}
	u, _ := url.Parse("http://localhost")
	if !isLoopback(u.Hostname()) {
		t.Error("localhost not loopback")
	}
}
