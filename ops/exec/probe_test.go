package exec

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

func TestProbe(t *testing.T) {
	mux := http.NewServeMux()
	answers := map[string]string{
		"/plain":   "1.2.3\n",
		"/json":    `{"version":"2.0.0-rc.1","build":{"version":"2.0.0+abc"},"n":7,"obj":{"a":1}}`,
		"/garbage": "<html><body>It works!</body></html>",
		"/flag":    "--version",
		"/empty":   "",
		"/shell":   "1.0; rm -rf /",
	}
	for path, body := range answers {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) })
	}
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	httpProbe := func(path, field string) ops.VersionProbe {
		return ops.VersionProbe{HTTP: &ops.HTTPProbe{URL: "{{ .Target.Vars.url }}" + path, JSONField: field}}
	}
	tests := map[string]struct {
		probe   ops.VersionProbe
		want    string
		wantErr string
		garbage bool
	}{
		"http plain":         {probe: httpProbe("/plain", ""), want: "1.2.3"},
		"http json":          {probe: httpProbe("/json", "version"), want: "2.0.0-rc.1"},
		"http json dotted":   {probe: httpProbe("/json", "build.version"), want: "2.0.0+abc"},
		"http json number":   {probe: httpProbe("/json", "n"), want: "7"},
		"http json object":   {probe: httpProbe("/json", "obj"), wantErr: `json obj is {"a":1}, not a version`},
		"http json missing":  {probe: httpProbe("/json", "nope"), wantErr: "json nope is missing"},
		"http json not json": {probe: httpProbe("/plain", "version"), wantErr: "body is not JSON"},
		"http garbage":       {probe: httpProbe("/garbage", ""), wantErr: `answered "<html><body>It works!</body></html>"`, garbage: true},
		"http flag":          {probe: httpProbe("/flag", ""), garbage: true},
		"http empty":         {probe: httpProbe("/empty", ""), garbage: true},
		"http shell":         {probe: httpProbe("/shell", ""), garbage: true},
		"http status":        {probe: httpProbe("/broken", ""), wantErr: `/broken → 500 (body: "boom\n")`},
		"http timeout": {
			probe:   ops.VersionProbe{HTTP: &ops.HTTPProbe{URL: srv.URL + "/slow"}, Timeout: 100 * time.Millisecond},
			wantErr: "/slow: timed out after 100ms",
		},
		"command":           {probe: ops.VersionProbe{Command: []string{"sh", "-c", `echo "  $DAYTWO_TARGET_VER  "`}}, want: "3.1.4"},
		"command argv":      {probe: ops.VersionProbe{Command: []string{"echo", "{{ .Target.Name }}-{{ .Env }}"}}, want: "stg-1-staging"},
		"command garbage":   {probe: ops.VersionProbe{Command: []string{"echo", "command not found"}}, garbage: true},
		"command two lines": {probe: ops.VersionProbe{Command: []string{"printf", "1.0\n2.0\n"}}, garbage: true},
		"command fails": {
			probe:   ops.VersionProbe{Command: []string{"sh", "-c", "echo 1.0; echo no such app >&2; exit 2"}},
			wantErr: `sh exited with code 2; stderr: "no such app"`,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := NewProbe("staging", tt.probe, WithHTTPClient(srv.Client()))
			if err != nil {
				t.Fatal(err)
			}
			target := ops.Target{Name: "stg-1", Vars: map[string]string{"url": srv.URL, "ver": "3.1.4"}}
			got, err := p.Probe(t.Context(), "staging", target)
			switch {
			case tt.garbage:
				if !errors.Is(err, ErrNotVersion) || got != "" {
					t.Fatalf("got %q, err %v, want ErrNotVersion", got, err)
				}
				if tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want %q", err, tt.wantErr)
				}
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || got != "" {
					t.Fatalf("got %q, err %v, want %q", got, err, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "exec: probe stg-1: ") {
					t.Errorf("err = %v, want it to name the target", err)
				}
			default:
				if err != nil || got != tt.want {
					t.Fatalf("got %q, err %v, want %q", got, err, tt.want)
				}
			}
		})
	}
}

func TestNewProbeErrors(t *testing.T) {
	tests := map[string]struct {
		probe ops.VersionProbe
		want  string
	}{
		"nothing":  {ops.VersionProbe{}, "set http or command"},
		"both":     {ops.VersionProbe{HTTP: &ops.HTTPProbe{URL: "http://x"}, Command: []string{"x"}}, "not both"},
		"bad url":  {ops.VersionProbe{HTTP: &ops.HTTPProbe{URL: "{{ .Target"}}, "version_probe.http.url"},
		"bad argv": {ops.VersionProbe{Command: []string{"x", "{{"}}, "version_probe.command[1]"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := NewProbe("staging", tt.probe)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestProbeOtherEnvironment(t *testing.T) {
	p, err := NewProbe("staging", ops.VersionProbe{Command: []string{"echo", "1.0"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Probe(t.Context(), "production", ops.Target{Name: "prd-1"}); err == nil {
		t.Fatal("probe of staging answered for production")
	}
}
