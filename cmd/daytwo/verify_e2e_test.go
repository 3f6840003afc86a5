package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daytwo/daytwo/fixtures/demofleet"
)

// verifyWorld is one ungated environment of two demo fleet targets under
// load, whose only metric check runs in a verification window after the
// last batch (no bake), with the given on_failure.
func verifyWorld(t *testing.T, onFailure string) (env []string, state string) {
	t.Helper()
	dir := t.TempDir()
	state = filepath.Join(dir, "fleet")
	fleet, err := demofleet.Start(t.Context(), demofleet.Options{StateDir: state, Targets: []demofleet.Target{{Name: "v-1"}, {Name: "v-2"}}, WarmUp: -1, Load: 40})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close() })
	urls := fleet.URLs()
	cfg := fmt.Sprintf(`
store: {path: d.db}
environments:
  - name: web
    targets:
      - {name: v-1, vars: {url: %q}}
      - {name: v-2, vars: {url: %q}}
    deploy: {command: [%q, fleet, deploy, --state-dir, %q]}
    health:
      - name: healthz
        http: {url: "{{ .Target.Vars.url }}/healthz"}
      - name: error-rate
        metrics:
          url: "{{ .Target.Vars.url }}/metrics"
          success_condition: 'rate(http_requests_total{code=~"5.."}) / rate(http_requests_total) < 0.05'
          interval: 500ms
          count: 2
          inconclusive_limit: 1
    strategy: {batch_size: "100%%", max_parallel: 2}
    verify: {window: 1s, on_failure: %s}
`, urls["v-1"], urls["v-2"], daytwoBin, state, onFailure)
	path := filepath.Join(dir, "daytwo.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env = []string{"DAYTWO_CONFIG=" + path}
	if r := daytwo(t, env, "config", "check"); r.code != 0 {
		t.Fatalf("config check: %+v", r)
	}
	return env, state
}

func proposeAndRun(t *testing.T, env []string, version string) result {
	t.Helper()
	var p proposeResult
	r := daytwo(t, env, "propose", "web", version, "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || r.code != 0 {
		t.Fatalf("propose: %+v (%v)", r, err)
	}
	return daytwo(t, env, "run", p.ID)
}

// TestVerifyWindowRollsBackDegraded: a -degraded release passes its
// http health checks; the verification window's metric check fails it and
// the run rolls every target back.
func TestVerifyWindowRollsBackDegraded(t *testing.T) {
	env, state := verifyWorld(t, "rollback")
	if r := proposeAndRun(t, env, "1.1.0"); r.code != 0 {
		t.Fatalf("healthy release: %+v", r)
	}
	r := proposeAndRun(t, env, "1.2.0-degraded")
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "verification window 1s failed") {
		t.Fatalf("degraded release: %+v", r)
	}
	for _, tg := range []string{"v-1", "v-2"} {
		if v, err := demofleet.Version(state, tg); err != nil || v != "1.1.0" {
			t.Errorf("%s runs %q (%v) after the rollback, want 1.1.0", tg, v, err)
		}
	}
	a := daytwo(t, env, "audit", "list", "-o", "json")
	if !strings.Contains(a.stdout, `"action": "run.verify_failed"`) || !strings.Contains(a.stdout, `"action": "run.rolled_back"`) {
		t.Errorf("audit lacks the failed verification and the rollback:\n%s", a.stdout)
	}
}

// TestVerifyWindowAlertKeepsRelease: with on_failure: alert the release
// stays, and the failure is recorded.
func TestVerifyWindowAlertKeepsRelease(t *testing.T) {
	env, state := verifyWorld(t, "alert")
	if r := proposeAndRun(t, env, "1.2.0-degraded"); r.code != 0 {
		t.Fatalf("degraded release with on_failure alert: %+v", r)
	}
	if v, _ := demofleet.Version(state, "v-1"); v != "1.2.0-degraded" {
		t.Fatalf("v-1 runs %q, want the release kept", v)
	}
	a := daytwo(t, env, "audit", "list", "-o", "json")
	if !strings.Contains(a.stdout, `"action": "run.verify_failed"`) || !strings.Contains(a.stdout, `"result": "alert"`) {
		t.Errorf("audit lacks the failed verification:\n%s", a.stdout)
	}
}
