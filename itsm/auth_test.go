package itsm

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func writeCert(path string, srv *httptest.Server) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
}

// oauthServer scripts /oauth_token.do: it checks form encoding and hands out
// numbered tokens; the API accepts only the current token.
type oauthServer struct {
	mu      sync.Mutex
	grants  []string
	current string
	n       int
	fail    bool
}

func (o *oauthServer) token(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
			t.Errorf("token request Content-Type %q", ct)
		}
		if err := r.ParseForm(); err != nil {
			t.Fatal(err)
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		g := r.PostForm.Get("grant_type")
		o.grants = append(o.grants, g)
		if r.PostForm.Get("client_id") != "daytwo-client" || r.PostForm.Get("client_secret") != testSecret || o.fail {
			writeJSON(w, 401, fixture(t, "oauth_fail.json"))
			return
		}
		switch g {
		case "password":
			if r.PostForm.Get("username") != testUser || r.PostForm.Get("password") != testPassword {
				writeJSON(w, 401, fixture(t, "oauth_fail.json"))
				return
			}
		case "refresh_token":
			if r.PostForm.Get("refresh_token") != "refresh-1" {
				writeJSON(w, 401, fixture(t, "oauth_fail.json"))
				return
			}
		case "client_credentials":
		default:
			t.Errorf("grant %q", g)
		}
		o.n++
		o.current = fmt.Sprintf("%s-%d", testToken, o.n)
		writeJSON(w, 200, fmt.Sprintf(`{"access_token":%q,"refresh_token":"refresh-1","scope":"useraccount","token_type":"Bearer","expires_in":1799}`, o.current))
	}
}

func (o *oauthServer) api(t *testing.T, ok http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		cur := o.current
		o.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+cur || cur == "" {
			writeJSON(w, 401, fixture(t, "err_401.json"))
			return
		}
		ok(w, r)
	}
}

func (o *oauthServer) expire() {
	o.mu.Lock()
	o.current = "revoked"
	o.mu.Unlock()
}

func TestOAuthPasswordGrantCachedAndRefreshed(t *testing.T) {
	f := newFake(t)
	o := &oauthServer{}
	f.handle("POST /oauth_token.do", o.token(t))
	f.handle("GET "+changePath, o.api(t, respond(200, fixture(t, "table_change.json"))))
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c, err := New(Config{Instance: f.srv.URL, Auth: AuthConfig{
		Method: "oauth", Username: testUser, Password: testPassword,
		ClientID: "daytwo-client", ClientSecret: testSecret,
	}}, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		if _, err := c.GetChange(ctx, changeID); err != nil {
			t.Fatal(err)
		}
	}
	if f.count("POST", "/oauth_token.do") != 1 {
		t.Errorf("token fetched %d times for 3 calls", f.count("POST", "/oauth_token.do"))
	}
	// 60 s before expiry the token is replaced, using the refresh token.
	mu.Lock()
	now = now.Add(1799*time.Second - 59*time.Second)
	mu.Unlock()
	if _, err := c.GetChange(ctx, changeID); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(o.grants); got != "[password refresh_token]" {
		t.Errorf("grants = %s", got)
	}
	// Revoked token: one 401, one refresh, one retry.
	o.expire()
	if _, err := c.GetChange(ctx, changeID); err != nil {
		t.Fatalf("after revoke: %v", err)
	}
	if got := fmt.Sprint(o.grants); got != "[password refresh_token refresh_token]" {
		t.Errorf("grants = %s", got)
	}
}

// A 401 that persists after the refresh is returned, not looped on.
func TestOAuth401Once(t *testing.T) {
	env := newEnv(t, oauthConfig("client_credentials"))
	o := &oauthServer{}
	env.f.handle("POST /oauth_token.do", o.token(t))
	env.f.handle("GET "+changePath, respond(401, fixture(t, "err_401.json")))
	_, err := env.c.GetChange(context.Background(), changeID)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err = %v", err)
	}
	if n := env.f.count("GET", changePath); n != 2 {
		t.Errorf("%d API attempts, want 2 (original + one retry)", n)
	}
	if got := fmt.Sprint(o.grants); got != "[client_credentials refresh_token]" {
		t.Errorf("grants = %s", got)
	}
}

// Trap 19: OAuth failures are 401 access_denied whatever the cause.
func TestOAuthFailure(t *testing.T) {
	env := newEnv(t, oauthConfig("password"))
	o := &oauthServer{fail: true}
	env.f.handle("POST /oauth_token.do", o.token(t))
	_, err := env.c.GetChange(context.Background(), changeID)
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "access_denied") {
		t.Fatalf("err = %v", err)
	}
	if env.f.count("GET", changePath) != 0 {
		t.Error("API called without a token")
	}
}

// Secrets never appear in errors, logs or printed config.
func TestSecretsNeverLeak(t *testing.T) {
	secrets := []string{testPassword, testSecret, testToken, "refresh-1"}
	check := func(t *testing.T, where, s string) {
		t.Helper()
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				t.Errorf("secret %q leaked in %s: %s", sec, where, s)
			}
		}
	}
	scenarios := map[string]func(*fake, *oauthServer){
		"oauth failure": func(f *fake, o *oauthServer) { o.fail = true; f.handle("POST /oauth_token.do", o.token(t)) },
		"api 401": func(f *fake, o *oauthServer) {
			f.handle("POST /oauth_token.do", o.token(t))
			f.handle("GET "+changePath, respond(401, fixture(t, "err_401.json")))
		},
		"html": func(f *fake, o *oauthServer) {
			f.handle("POST /oauth_token.do", o.token(t))
			f.handle("GET "+changePath, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				_, _ = w.Write([]byte("<html><title>Login " + testPassword + "?</title></html>"))
			})
		},
		"token endpoint html": func(f *fake, _ *oauthServer) {
			f.handle("POST /oauth_token.do", respond(503, "<html>down</html>"))
		},
		"error echoing the request": func(f *fake, o *oauthServer) {
			f.handle("POST /oauth_token.do", o.token(t))
			f.handle("GET "+changePath, func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 400, fmt.Sprintf(`{"error":{"message":"bad header %s","detail":null},"status":"failure"}`,
					strings.Repeat("x", 3)))
			})
		},
	}
	for name, setup := range scenarios {
		t.Run(name, func(t *testing.T) {
			env := newEnv(t, oauthConfig("password"), func(c *Config) { c.Retry.MaxAttempts = 2 })
			setup(env.f, &oauthServer{})
			_, err := env.c.GetChange(context.Background(), changeID)
			if err == nil {
				t.Fatal("no error")
			}
			check(t, "error", err.Error())
			check(t, "error %+v", fmt.Sprintf("%+v %#v", err, err))
			check(t, "logs", env.logs.String())
		})
	}
	cfg := Config{Instance: "https://x.service-now.com", Auth: AuthConfig{
		Method: "oauth", Username: testUser,
		Password: testPassword, ClientID: "id", ClientSecret: testSecret,
	}}
	check(t, "printed config", fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg.Auth, cfg.Auth))
	var buf strings.Builder
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "auth", cfg.Auth)
	check(t, "logged config", buf.String())
}
