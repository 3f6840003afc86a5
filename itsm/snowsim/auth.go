package snowsim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// OAuth lifetimes (§3.2): tokens live 1800 s and report expires_in 1799.
const (
	accessTTL  = 1800 * time.Second
	refreshTTL = 8640000 * time.Second
)

// token is an issued OAuth token.
type token struct {
	value    string
	userName string
	clientID string
	expires  time.Time
}

func newToken() string {
	var b [48]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// authenticate resolves the caller from Basic or Bearer credentials.
func (s *Sim) authenticate(r *http.Request) (*user, *apiError) {
	h := r.Header.Get("Authorization")
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case strings.HasPrefix(h, "Basic "):
		name, pass, ok := r.BasicAuth()
		if !ok {
			return nil, errUnauthenticated()
		}
		return s.checkPassword(name, pass)
	case strings.HasPrefix(h, "Bearer "):
		tok := s.d.tokens[strings.TrimSpace(h[len("Bearer "):])]
		if tok == nil || !s.now().Before(tok.expires) {
			return nil, errUnauthenticated()
		}
		return s.userInfo(tok.userName)
	}
	return nil, errUnauthenticated()
}

// checkPassword must be called with s.mu held.
func (s *Sim) checkPassword(name, pass string) (*user, *apiError) {
	t := s.d.tables["sys_user"]
	r := t.find("user_name", name)
	if r == nil || t.get(r, "user_password") != pass || t.get(r, "active") == "false" || t.get(r, "locked_out") == "true" {
		return nil, errUnauthenticated()
	}
	return s.userInfo(name)
}

// userInfo must be called with s.mu held.
func (s *Sim) userInfo(name string) (*user, *apiError) {
	t := s.d.tables["sys_user"]
	r := t.find("user_name", name)
	if r == nil || t.get(r, "active") == "false" || t.get(r, "locked_out") == "true" {
		return nil, errUnauthenticated()
	}
	u := &user{id: t.get(r, "sys_id"), userName: name, name: t.get(r, "name")}
	for _, role := range strings.Split(t.get(r, "roles"), ",") {
		if role = strings.TrimSpace(role); role != "" {
			u.roles = append(u.roles, role)
		}
	}
	return u, nil
}

// serveOAuth implements POST /oauth_token.do (§3.2).
func (s *Sim) serveOAuth(w http.ResponseWriter, r *http.Request) {
	fail := func() {
		writeJSON(w, http.StatusUnauthorized, []byte(`{"error_description":"access_denied","error":"server_error"}`))
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.Method != http.MethodPost || mt != "application/x-www-form-urlencoded" {
		fail()
		return
	}
	if err := r.ParseForm(); err != nil {
		fail()
		return
	}
	f := r.PostForm
	s.mu.Lock()
	defer s.mu.Unlock()
	client := s.d.clients[f.Get("client_id")]
	if client == nil || client["client_secret"] != f.Get("client_secret") {
		fail()
		return
	}
	now := s.now()
	var userName, refresh string
	switch f.Get("grant_type") {
	case "password":
		if _, err := s.checkPassword(f.Get("username"), f.Get("password")); err != nil {
			fail()
			return
		}
		userName = f.Get("username")
		rt := &token{value: newToken(), userName: userName, clientID: f.Get("client_id"), expires: now.Add(lifespan(client, "refresh_token_lifespan", refreshTTL))}
		s.d.refresh[rt.value] = rt
		refresh = rt.value
	case "refresh_token":
		rt := s.d.refresh[f.Get("refresh_token")]
		if rt == nil || rt.clientID != f.Get("client_id") || !now.Before(rt.expires) {
			fail()
			return
		}
		userName = rt.userName
	case "client_credentials":
		if client["client_credentials_enabled"] != "true" || client["client_credentials_user"] == "" {
			fail()
			return
		}
		userName = client["client_credentials_user"]
	default:
		fail()
		return
	}
	if _, err := s.userInfo(userName); err != nil {
		fail()
		return
	}
	key := f.Get("client_id") + "\x00" + userName
	tok := s.d.current[key]
	if tok == nil || !now.Before(tok.expires) {
		tok = &token{value: newToken(), userName: userName, clientID: f.Get("client_id"), expires: now.Add(lifespan(client, "access_token_lifespan", accessTTL))}
		s.d.current[key] = tok
		s.d.tokens[tok.value] = tok
	}
	resp := map[string]any{
		"access_token": tok.value,
		"scope":        "useraccount",
		"token_type":   "Bearer",
		"expires_in":   max(int(tok.expires.Sub(now).Seconds())-1, 0),
	}
	if refresh != "" {
		resp["refresh_token"] = refresh
	}
	body, _ := json.Marshal(resp)
	writeJSON(w, http.StatusOK, body)
}

func lifespan(client map[string]string, key string, def time.Duration) time.Duration {
	if n, err := strconv.Atoi(client[key]); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return def
}
