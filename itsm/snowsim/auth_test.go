package snowsim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestBasicAuth(t *testing.T) {
	e := newEnv(t, Options{})
	tests := map[string]struct {
		user, pass string
		want       int
	}{
		"integration user": {"daytwo", "daytwo", http.StatusOK},
		"approver":         {"cab.manager", "cab.manager", http.StatusOK},
		"read-only":        {"auditor", "auditor", http.StatusOK},
		"admin":            {"admin", "admin", http.StatusOK},
		"wrong password":   {"daytwo", "nope", http.StatusUnauthorized},
		"unknown user":     {"ghost", "ghost", http.StatusUnauthorized},
		"anonymous":        {"", "", http.StatusUnauthorized},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", e.url+"/api/now/table/cmdb_ci", nil)
			req.Header.Set("Accept", "application/json")
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.want)
			}
			if tc.want == http.StatusUnauthorized {
				var m map[string]any
				_ = json.NewDecoder(res.Body).Decode(&m)
				e := m["error"].(map[string]any)
				if e["message"] != "User Not Authenticated" || e["detail"] != "Required to provide Auth information" || m["status"] != "failure" {
					t.Fatalf("401 envelope = %v", m)
				}
			}
		})
	}
}

func oauth(t *testing.T, base string, form url.Values, contentType string) (int, map[string]any) {
	t.Helper()
	res, err := http.Post(base+"/oauth_token.do", contentType, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, m
}

func TestOAuth(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, Options{Clock: clock.Now})
	form := func(kv ...string) url.Values {
		v := url.Values{"client_id": {"daytwo-cli"}, "client_secret": {"daytwo-secret"}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	const formCT = "application/x-www-form-urlencoded"
	status, tok := oauth(t, e.url, form("grant_type", "password", "username", "daytwo", "password", "daytwo"), formCT)
	if status != 200 || tok["token_type"] != "Bearer" || tok["scope"] != "useraccount" || tok["expires_in"] != 1799.0 || tok["refresh_token"] == "" {
		t.Fatalf("password grant = %d %v", status, tok)
	}
	_, again := oauth(t, e.url, form("grant_type", "password", "username", "daytwo", "password", "daytwo"), formCT)
	if again["access_token"] != tok["access_token"] {
		t.Fatal("second password grant within lifetime returned a different access token")
	}
	status, ref := oauth(t, e.url, form("grant_type", "refresh_token", "refresh_token", tok["refresh_token"].(string)), formCT)
	if status != 200 || ref["access_token"] != tok["access_token"] {
		t.Fatalf("refresh grant = %d %v", status, ref)
	}
	status, cc := oauth(t, e.url, form("grant_type", "client_credentials"), formCT)
	if status != 200 || cc["access_token"] == "" {
		t.Fatalf("client_credentials = %d %v", status, cc)
	}

	bearer := func(token string) int {
		req, _ := http.NewRequest("GET", e.url+"/api/now/table/change_request", nil)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if got := bearer(tok["access_token"].(string)); got != 200 {
		t.Fatalf("bearer call = %d", got)
	}
	clock.Add(31 * time.Minute)
	if got := bearer(tok["access_token"].(string)); got != 401 {
		t.Fatalf("expired bearer call = %d, want 401", got)
	}
	_, fresh := oauth(t, e.url, form("grant_type", "refresh_token", "refresh_token", tok["refresh_token"].(string)), formCT)
	if fresh["access_token"] == tok["access_token"] || bearer(fresh["access_token"].(string)) != 200 {
		t.Fatalf("refresh after expiry = %v", fresh)
	}

	failures := map[string]struct {
		form url.Values
		ct   string
	}{
		"bad secret":    {url.Values{"grant_type": {"password"}, "client_id": {"daytwo-cli"}, "client_secret": {"x"}, "username": {"daytwo"}, "password": {"daytwo"}}, formCT},
		"bad password":  {form("grant_type", "password", "username", "daytwo", "password", "x"), formCT},
		"bad refresh":   {form("grant_type", "refresh_token", "refresh_token", "nope"), formCT},
		"unknown grant": {form("grant_type", "implicit"), formCT},
		"json body":     {form("grant_type", "client_credentials"), "application/json"},
	}
	for name, tc := range failures {
		t.Run(name, func(t *testing.T) {
			status, m := oauth(t, e.url, tc.form, tc.ct)
			if status != 401 || m["error"] != "server_error" || m["error_description"] != "access_denied" {
				t.Fatalf("got %d %v", status, m)
			}
		})
	}
}
