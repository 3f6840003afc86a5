package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daytwo/daytwo/fixtures/demofleet"
	"github.com/daytwo/daytwo/itsm/snowsim"
)

// verifyChangeWorld is one environment "web" of two demo fleet targets
// under load, with the simulator as ServiceNow: gated or not, with a
// health check, an error-rate metric check and the given verify block.
type verifyChangeWorld struct {
	*engineWorld
	gated bool
}

func newVerifyChangeWorld(t *testing.T, gated bool) *verifyChangeWorld {
	t.Helper()
	w := &verifyChangeWorld{engineWorld: &engineWorld{dir: t.TempDir()}, gated: gated}
	w.sim = startSim(t, snowsim.Options{})
	w.stateDir = filepath.Join(w.dir, "fleet")
	var err error
	w.fleet, err = demofleet.Start(t.Context(), demofleet.Options{
		StateDir: w.stateDir,
		Targets:  []demofleet.Target{{Name: "w-1"}, {Name: "w-2"}}, WarmUp: -1, InitialVersion: "1.0.0", Load: 40,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.fleet.Close() })
	w.cfgPath = filepath.Join(w.dir, "daytwo.yaml")
	w.env = []string{"DAYTWO_CONFIG=" + w.cfgPath, "DAYTWO_SN_PASSWORD=daytwo"}
	return w
}

// write (re)writes the config with the given verify block ("" for none).
func (w *verifyChangeWorld) write(t *testing.T, verify string) {
	t.Helper()
	urls := w.fleet.URLs()
	gate := "requires_change: false"
	if w.gated {
		gate = "requires_change: true\n    change: {type: normal, cmdb_ci: checkout-service, risk: moderate}"
	}
	cfg := fmt.Sprintf(`
store: {path: d.db}
servicenow:
  instance: %s
  auth: {username: daytwo}
  assignment_group: Platform Ops
environments:
  - name: web
    %s
    targets:
      - {name: w-1, vars: {url: %q}}
      - {name: w-2, vars: {url: %q}}
    deploy: {command: [%q, fleet, deploy, --state-dir, %q]}
    version_probe: {http: {url: "{{ .Target.Vars.url }}/version"}}
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
    %s
`, w.sim.URL(), gate, urls["w-1"], urls["w-2"], daytwoBin, w.stateDir, verify)
	if err := os.WriteFile(w.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := daytwo(t, w.env, "config", "check"); r.code != 0 {
		t.Fatalf("config check: %+v", r)
	}
}

// ready proposes version and, on a gated environment, has the change
// approved and mirrored, so that `run` may start it.
func (w *verifyChangeWorld) ready(t *testing.T, version string) proposeResult {
	t.Helper()
	p := w.propose(t, "web", version)
	if w.gated {
		if p.Change == "" {
			t.Fatalf("no change raised: %+v", p)
		}
		w.approve(t, p.Change)
		if r := daytwo(t, w.env, "sync", "--once"); r.code != 0 {
			t.Fatalf("sync: %+v", r)
		}
	}
	return p
}

// TestGatedVerifyFailureOpensIncidentCausedByTheChange: on a gated
// environment a -degraded release passes its health checks, fails the
// verification window's metric check at the end of the run and is rolled
// back; through the outbox the change is closed unsuccessful, its work
// notes carry the verdict with its numbers, and an incident is opened with
// caused_by pointing at the change and the failing metric in it.
func TestGatedVerifyFailureOpensIncidentCausedByTheChange(t *testing.T) {
	w := newVerifyChangeWorld(t, true)
	w.write(t, "verify: {window: 1s, on_failure: rollback}")
	p := w.ready(t, "1.1.0")
	if r := daytwo(t, w.env, "run", p.ID); r.code != 0 {
		t.Fatalf("healthy release: %+v", r)
	}
	p = w.ready(t, "1.2.0-degraded")
	r := daytwo(t, w.env, "run", p.ID)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "verification window 1s failed") {
		t.Fatalf("degraded release: %+v", r)
	}
	if got := w.versions(t, "w-1", "w-2"); got != "1.1.0,1.1.0" {
		t.Fatalf("after the failed verification the fleet runs %s, want 1.1.0 everywhere", got)
	}
	if r := daytwo(t, w.env, "outbox", "retry"); r.code != 0 {
		t.Fatalf("outbox retry: %+v", r)
	}
	chg := w.simRecords(t, "change_request", "number="+p.Change)
	if len(chg) != 1 || chg[0]["state"] != "3" || chg[0]["close_code"] != "unsuccessful" {
		t.Fatalf("change after the failed verification: %v", chg)
	}
	sysID := chg[0]["sys_id"].(string)
	inc := w.simRecords(t, "incident", "caused_by="+sysID)
	if len(inc) != 1 {
		t.Fatalf("incidents caused by %s: %v", p.Change, inc)
	}
	desc := inc[0]["description"].(string)
	for _, want := range []string{p.Change, "verification window 1s failed", `metrics "error-rate"`, "#1 failed: 0.", "success_condition does not hold"} {
		if !strings.Contains(desc, want) {
			t.Errorf("incident description lacks %q:\n%s", want, desc)
		}
	}
	notes := w.simRecords(t, "sys_journal_field", "element=work_notes^element_id="+sysID)
	var verifyNote string
	for _, n := range notes {
		if s := n["value"].(string); strings.Contains(s, "verification window 1s after the last batch") {
			verifyNote = s
		}
	}
	if !strings.Contains(verifyNote, `metrics "error-rate" on w-`) || !strings.Contains(verifyNote, "#1 ") {
		t.Errorf("no work note with the verdict and its measurements; notes: %v", notes)
	}
}

// TestRealAlertmanagerFailsTheVerifyWindow: a real Alertmanager delivers
// a firing alert for the environment to the daemon's POST /alertmanager
// while a run (another process) is in its verification window; the window
// fails at once, long before it would have ended, and the release is
// rolled back (on_failure: rollback).
func TestRealAlertmanagerFailsTheVerifyWindow(t *testing.T) {
	bin := alertmanagerBin(t)
	w := newVerifyChangeWorld(t, false)
	w.write(t, "verify: {window: 1s, on_failure: rollback}")
	p := w.ready(t, "1.1.0")
	if r := daytwo(t, w.env, "run", p.ID); r.code != 0 {
		t.Fatalf("first release: %+v", r)
	}
	w.write(t, "verify: {window: 10m, on_failure: rollback}")
	env := append(w.env, "DAYTWO_ALERTMANAGER_TOKEN="+webhookToken)
	listen := startDaemonOn(t, env)
	amAddr := startAlertmanager(t, bin, listen)

	p = w.ready(t, "1.2.0")
	run := exec.Command(daytwoBin, "run", p.ID)
	run.Env = append(os.Environ(), env...)
	var out lockedBuffer
	run.Stdout, run.Stderr = &out, &out
	start := time.Now()
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var runErr error
	go func() { runErr = run.Wait(); close(done) }()
	t.Cleanup(func() { _ = run.Process.Kill(); <-done })
	waitFor(t, "the release on both targets", 3*time.Minute, func() bool {
		v1, _ := demofleet.Version(w.stateDir, "w-1")
		v2, _ := demofleet.Version(w.stateDir, "w-2")
		return v1 == "1.2.0" && v2 == "1.2.0"
	})
	select {
	case <-done:
		t.Fatalf("the run ended before any alert (%v):\n%s", runErr, out.String())
	default:
	}
	alert := `[{"labels":{"alertname":"CheckoutErrors","environment":"web","service":"checkout"},"annotations":{"summary":"5xx above 5% on checkout"}}]`
	resp, err := http.Post("http://"+amAddr+"/api/v2/alerts", "application/json", strings.NewReader(alert))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("alertmanager refused the alert: %s", resp.Status)
	}
	select {
	case <-done:
		if runErr == nil {
			t.Fatalf("the run succeeded despite the alert:\n%s", out.String())
		}
	case <-time.After(4 * time.Minute):
		t.Fatalf("the run kept verifying after the alert:\n%s", out.String())
	}
	if took := time.Since(start); took > 5*time.Minute {
		t.Fatalf("the run took %s: the alert did not cut the 10m window short", took)
	}
	for _, want := range []string{"alert CheckoutErrors firing on web (service checkout): 5xx above 5% on checkout", "verification window 10m0s failed", "rolling back"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("run output lacks %q:\n%s", want, out.String())
		}
	}
	if got := w.versions(t, "w-1", "w-2"); got != "1.1.0,1.1.0" {
		t.Fatalf("after the alert the fleet runs %s, want 1.1.0 everywhere", got)
	}
	a := daytwo(t, env, "audit", "list", "-o", "json")
	var events []struct {
		Action string         `json:"action"`
		Result string         `json:"result"`
		Detail map[string]any `json:"detail"`
	}
	if err := json.Unmarshal([]byte(a.stdout), &events); err != nil {
		t.Fatal(err)
	}
	var verifyFailed, rolledBack bool
	for _, e := range events {
		switch e.Action {
		case "run.verify_failed":
			verifyFailed = strings.Contains(fmt.Sprint(e.Detail["failures"]), "alert CheckoutErrors firing")
		case "run.rolled_back":
			rolledBack = true
		}
	}
	if !verifyFailed || !rolledBack {
		t.Errorf("audit: verify_failed by the alert %v, rolled back %v:\n%s", verifyFailed, rolledBack, a.stdout)
	}
}

// alertmanagerBin finds Debian's prometheus-alertmanager (or alertmanager).
func alertmanagerBin(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"prometheus-alertmanager", "alertmanager"} {
		if bin, err := exec.LookPath(name); err == nil {
			return bin
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("CI: alertmanager is not installed (apt-get install prometheus-alertmanager)")
	}
	t.Skip("SKIPPED LOUDLY: no alertmanager on PATH; apt-get install -y prometheus-alertmanager to run this test")
	return ""
}

// startDaemonOn runs `daytwo sync --watch` with env and returns its
// listen address once /healthz answers.
func startDaemonOn(t *testing.T, env []string) string {
	t.Helper()
	listen := freeAddr(t)
	daemon := exec.Command(daytwoBin, "sync", "--watch", "--interval", "1s", "--listen", listen)
	daemon.Env = append(os.Environ(), env...)
	var logs bytes.Buffer
	daemon.Stderr = &logs
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = daemon.Process.Kill(); _ = daemon.Wait() })
	waitFor(t, "the daemon's /healthz", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + listen + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return listen
}

// startAlertmanager runs a real Alertmanager routing every alert to the
// daemon's receiver with the bearer token; it returns its API address.
func startAlertmanager(t *testing.T, bin, daemon string) string {
	t.Helper()
	dir := t.TempDir()
	amAddr, clusterAddr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
route:
  receiver: daytwo
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: daytwo
    webhook_configs:
      - url: http://%s/alertmanager
        send_resolved: true
        http_config:
          authorization: {type: Bearer, credentials: %s}
`, daemon, webhookToken)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	am := exec.CommandContext(ctx, bin, "--config.file", cfg, "--storage.path", filepath.Join(dir, "data"),
		"--web.listen-address", amAddr, "--cluster.listen-address", clusterAddr)
	var logs bytes.Buffer
	am.Stdout, am.Stderr = &logs, &logs
	if err := am.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = am.Wait() })
	waitFor(t, "alertmanager's /-/ready", 60*time.Second, func() bool {
		resp, err := http.Get("http://" + amAddr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return amAddr
}
