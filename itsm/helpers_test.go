package itsm

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testUser     = "svc-daytwo"
	testPassword = "pw-Sup3rS3cret!"
	testSecret   = "cs-VeryS3cretClient"
	testToken    = "tok-AccessT0kenValue"
)

// call is one request the fake received.
type call struct {
	Method string
	Path   string
	Query  map[string][]string
	Header http.Header
	Body   string
}

func (c call) q(k string) string {
	if v := c.Query[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// fake is a scripted ServiceNow: handlers registered by "METHOD /path"
// (exact) or "METHOD /prefix*", every call recorded.
type fake struct {
	t        *testing.T
	srv      *httptest.Server
	mu       sync.Mutex
	calls    []call
	handlers map[string]http.HandlerFunc
	order    []string
}

func newFake(t *testing.T) *fake {
	t.Helper()
	f := &fake{t: t, handlers: map[string]http.HandlerFunc{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) handle(pattern string, h http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.handlers[pattern]; !ok {
		f.order = append(f.order, pattern)
	}
	f.handlers[pattern] = h
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	f.mu.Lock()
	f.calls = append(f.calls, call{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: string(body)})
	var h http.HandlerFunc
	key := r.Method + " " + r.URL.Path
	if hh, ok := f.handlers[key]; ok {
		h = hh
	} else {
		for _, p := range f.order {
			if strings.HasSuffix(p, "*") && strings.HasPrefix(key, strings.TrimSuffix(p, "*")) {
				h = f.handlers[p]
				break
			}
		}
	}
	f.mu.Unlock()
	if h == nil {
		f.t.Errorf("unexpected request %s %s?%s", r.Method, r.URL.Path, r.URL.RawQuery)
		writeJSON(w, 400, `{"error":{"message":"Requested URI does not represent any resource","detail":null},"status":"failure"}`)
		return
	}
	h(w, r)
}

func (f *fake) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

func (f *fake) count(method, path string) int {
	n := 0
	for _, c := range f.Calls() {
		if c.Method == method && (c.Path == path || strings.HasSuffix(path, "*") && strings.HasPrefix(c.Path, strings.TrimSuffix(path, "*"))) {
			n++
		}
	}
	return n
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func respond(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, status, body) }
}

// sequence answers with each handler in turn, repeating the last.
func sequence(hs ...http.HandlerFunc) http.HandlerFunc {
	var mu sync.Mutex
	i := 0
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		h := hs[min(i, len(hs)-1)]
		i++
		mu.Unlock()
		h(w, r)
	}
}

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sleeps records the waits the client asked for without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

type testEnv struct {
	f      *fake
	c      *Client
	sleeps *sleeps
	logs   *bytes.Buffer
}

// newEnv builds a client against a fresh fake, with recorded sleeps, a
// deterministic jitter (the full ceiling) and debug logs captured.
func newEnv(t *testing.T, mods ...func(*Config)) *testEnv {
	t.Helper()
	f := newFake(t)
	return newEnvFor(t, f, mods...)
}

func newEnvFor(t *testing.T, f *fake, mods ...func(*Config)) *testEnv {
	t.Helper()
	cfg := Config{
		Instance:  f.srv.URL,
		Auth:      AuthConfig{Method: "basic", Username: testUser, Password: testPassword},
		UserAgent: "daytwo/test",
		Timeout:   5 * time.Second,
	}
	for _, m := range mods {
		m(&cfg)
	}
	s := &sleeps{}
	logs := &bytes.Buffer{}
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&mu, logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := New(cfg, WithSleep(s.sleep), WithLogger(logger),
		withJitter(func(max time.Duration) time.Duration { return max }))
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{f: f, c: c, sleeps: s, logs: logs}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func oauthConfig(grant string) func(*Config) {
	return func(c *Config) {
		c.Auth = AuthConfig{
			Method: "oauth", Grant: grant, Username: testUser, Password: testPassword,
			ClientID: "daytwo-client", ClientSecret: testSecret,
		}
	}
}

// tableChange renders a Table API change record (all strings).
func tableChange(sysID, number string, state ChangeState, typ string, extra map[string]string) map[string]string {
	rec := map[string]string{
		"sys_id": sysID, "number": number, "state": state.Code(), "type": typ,
		"approval": "not requested", "active": "true", "sys_mod_count": "0",
		"sys_updated_on": "2026-05-01 10:00:00", "sys_created_on": "2026-05-01 10:00:00",
		"correlation_id": "", "assignment_group": "", "cmdb_ci": "",
	}
	for k, v := range extra {
		rec[k] = v
	}
	return rec
}

func resultJSON(v any) string {
	b, _ := json.Marshal(map[string]any{"result": v})
	return string(b)
}

func sid(n int) string {
	const hex = "0123456789abcdef"
	b := []byte(strings.Repeat("0", 32))
	for i := 31; n > 0 && i >= 0; i-- {
		b[i] = hex[n%16]
		n /= 16
	}
	return string(b)
}
