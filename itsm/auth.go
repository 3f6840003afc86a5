package itsm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// tokenRefreshMargin is how long before expiry a token is replaced, as the
// Ansible collection does, so a call never starts with a token about to die.
const tokenRefreshMargin = 60 * time.Second

// tokenSource caches the OAuth access token of one client.
type tokenSource struct {
	c *Client

	mu      sync.Mutex
	access  string
	refresh string
	expiry  time.Time
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    Value  `json:"expires_in"`
}

// get returns a valid access token, fetching or refreshing it if needed.
// Concurrent callers wait for one token request.
func (ts *tokenSource) get(ctx context.Context) (string, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.access != "" && ts.c.now().Before(ts.expiry.Add(-tokenRefreshMargin)) {
		return ts.access, nil
	}
	if ts.refresh != "" {
		err := ts.grant(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ts.refresh}})
		if err == nil {
			return ts.access, nil
		}
		if errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			return "", err
		}
		// Refresh token expired or revoked: fall back to a full grant.
		ts.c.log.Info("servicenow oauth refresh failed; requesting a new grant", "error", err)
		ts.refresh = ""
	}
	form := url.Values{"grant_type": {ts.c.cfg.Auth.Grant}}
	if ts.c.cfg.Auth.Grant == "password" {
		form.Set("username", ts.c.cfg.Auth.Username)
		form.Set("password", ts.c.cfg.Auth.Password)
	}
	if err := ts.grant(ctx, form); err != nil {
		return "", err
	}
	return ts.access, nil
}

// grant posts a form to /oauth_token.do (form-encoded, as the endpoint
// requires) and stores the result. Must hold ts.mu.
func (ts *tokenSource) grant(ctx context.Context, form url.Values) error {
	form.Set("client_id", ts.c.cfg.Auth.ClientID)
	form.Set("client_secret", ts.c.cfg.Auth.ClientSecret)
	grantType := form.Get("grant_type")
	resp, err := ts.c.do(ctx, request{
		method: http.MethodPost, path: "/oauth_token.do", form: form,
		// Asking for a token twice is harmless: retry like a GET.
		idempotent: true, noAuth: true,
	})
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Status == http.StatusBadRequest {
			// Some releases answer a bad grant with 400; it is still a
			// credentials problem for the operator.
			e.Status = http.StatusUnauthorized
		}
		return fmt.Errorf("itsm: oauth %s grant: %w", grantType, err)
	}
	var tr tokenResponse
	if err := json.Unmarshal(resp.body, &tr); err != nil || tr.AccessToken == "" {
		return fmt.Errorf("itsm: oauth %s grant: %w", grantType, &Error{
			Status: resp.status, Method: http.MethodPost, Path: "/oauth_token.do",
			Message: "token response without access_token",
		})
	}
	secs, ok := tr.ExpiresIn.Int()
	if !ok || secs <= 0 {
		secs = 1800 // ServiceNow's default lifetime
	}
	ts.access = tr.AccessToken
	if tr.RefreshToken != "" {
		ts.refresh = tr.RefreshToken
	}
	ts.expiry = ts.c.now().Add(time.Duration(secs) * time.Second)
	ts.c.tokenSecrets.Store(&[]string{ts.access, ts.refresh})
	return nil
}

// invalidate drops the cached access token after a 401, unless another
// goroutine already replaced it.
func (ts *tokenSource) invalidate(used string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if used == "" || ts.access == used {
		ts.access = ""
	}
}
