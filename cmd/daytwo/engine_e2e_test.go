package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daytwo/daytwo/fixtures/demofleet"
	"github.com/daytwo/daytwo/itsm/snowsim"
)

// engineWorld is a simulator, a real loopback fleet switched by the real
// command executor (`daytwo fleet deploy`), and a config file.
type engineWorld struct {
	sim      *snowsim.Server
	fleet    *demofleet.Fleet
	stateDir string
	cfgPath  string
	env      []string
	dir      string
}

func newEngineWorld(t *testing.T, bake string) *engineWorld {
	t.Helper()
	return newEngineWorldWith(t, bake, snowsim.Options{})
}

func newEngineWorldWith(t *testing.T, bake string, opts snowsim.Options) *engineWorld {
	t.Helper()
	return newEngineWorldOn(t, bake, opts, "stg-1", "stg-2", "prd-1", "prd-2", "prd-3")
}

// newEngineWorldOn is the engine world with a fleet of the named targets
// (the configuration names the first five).
func newEngineWorldOn(t *testing.T, bake string, opts snowsim.Options, names ...string) *engineWorld {
	t.Helper()
	w := &engineWorld{dir: t.TempDir()}
	w.sim = startSim(t, opts)
	w.stateDir = filepath.Join(w.dir, "fleet")
	var targets []demofleet.Target
	for _, n := range names {
		targets = append(targets, demofleet.Target{Name: n, Addr: "127.0.0.1:0"})
	}
	var err error
	w.fleet, err = demofleet.Start(context.Background(), demofleet.Options{StateDir: w.stateDir, Targets: targets, WarmUp: 50 * time.Millisecond, InitialVersion: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.fleet.Close() })
	w.cfgPath = filepath.Join(w.dir, "daytwo.yaml")
	w.writeConfig(t, bake)
	w.env = []string{"DAYTWO_CONFIG=" + w.cfgPath, "DAYTWO_SN_PASSWORD=daytwo"}
	return w
}

func (w *engineWorld) writeConfig(t *testing.T, bake string) {
	t.Helper()
	urls := w.fleet.URLs()
	targets := func(names ...string) string {
		var b strings.Builder
		for _, n := range names {
			fmt.Fprintf(&b, "\n      - {name: %s, vars: {url: %q}}", n, urls[n])
		}
		return b.String()
	}
	common := fmt.Sprintf(`
    deploy: {command: [%q, fleet, deploy, --state-dir, %q], timeout: 30s}
    version_probe: {http: {url: "{{ .Target.Vars.url }}/version"}}
    health:
      - http: {url: "{{ .Target.Vars.url }}/healthz", expect_status: 200}
        retries: 5
        interval: 100ms
      - http: {url: "{{ .Target.Vars.url }}/info", expect_json: {version: "{{ .Version }}"}}
        retries: 5
        interval: 100ms`, daytwoBin, w.stateDir)
	cfg := fmt.Sprintf(`
store: {path: d.db}
servicenow:
  instance: %s
  auth: {username: daytwo}
  assignment_group: Platform Ops
sync: {interval: 1s}
environments:
  - name: staging
    auto_run: true
    targets:%s%s
    strategy: {batch_size: 1}
    config: {log_level: info}
  - name: production
    promote_from: staging
    requires_change: true
    change: {type: normal, cmdb_ci: checkout-service, risk: moderate}
    targets:%s%s
    strategy: {batch_size: 1, bake: %s}
    config: {log_level: warn}
policies:
  - name: promote-from-staging
    environments: [production]
    expr: update.version in env.promote_from.succeeded_versions
    action: warn
    message: production should run versions that succeeded on staging
`, w.sim.URL(), targets("stg-1", "stg-2"), common, targets("prd-1", "prd-2", "prd-3"), common, bake)
	if err := os.WriteFile(w.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (w *engineWorld) versions(t *testing.T, names ...string) string {
	t.Helper()
	var vs []string
	for _, n := range names {
		v, err := demofleet.Version(w.stateDir, n)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	return strings.Join(vs, ",")
}

func (w *engineWorld) propose(t *testing.T, env, version string, extra ...string) proposeResult {
	t.Helper()
	r := daytwo(t, w.env, append([]string{"propose", env, version, "-o", "json"}, extra...)...)
	var p proposeResult
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || r.code != 0 {
		t.Fatalf("propose %s %s: %+v (%v)", env, version, r, err)
	}
	return p
}

// approve approves every stage of a change as the simulator's approvers.
func (w *engineWorld) approve(t *testing.T, number string) {
	t.Helper()
	for _, user := range []string{"ops.lead", "cab.manager"} {
		if err := w.sim.Sim().Approve(context.Background(), number, user, "ok"); err != nil {
			t.Fatalf("approve %s as %s: %v", number, user, err)
		}
	}
}

func (w *engineWorld) simRecords(t *testing.T, table, query string) []map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, w.sim.URL()+"/api/now/table/"+table+"?sysparm_exclude_reference_link=true&sysparm_query="+query, nil)
	req.SetBasicAuth("admin", "admin")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Result []map[string]any `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Result
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestEngineEndToEnd(t *testing.T) {
	w := newEngineWorld(t, "300ms")

	// 1. Staging runs unattended: the daemon picks the approved update up.
	daemon := exec.Command(daytwoBin, "sync", "--watch", "--interval", "1s", "--listen", "")
	daemon.Env = append(os.Environ(), w.env...)
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	first := w.propose(t, "staging", "1.1.0")
	waitFor(t, "staging on 1.1.0", 30*time.Second, func() bool { return w.versions(t, "stg-1", "stg-2") == "1.1.0,1.1.0" })
	// One open update per environment: the next is proposed once the run has finished.
	waitFor(t, "the staging run to finish", 30*time.Second, func() bool {
		r := daytwo(t, w.env, "update", "show", first.ID, "-o", "json")
		return strings.Contains(r.stdout, `"state": "succeeded"`)
	})
	// A broken release on staging is rolled back by the daemon.
	w.propose(t, "staging", "1.2.0-broken")
	waitFor(t, "the broken staging run to end", 30*time.Second, func() bool {
		r := daytwo(t, w.env, "update", "list", "--all", "--env", "staging", "-o", "json")
		return strings.Contains(r.stdout, `"state": "rolled_back"`)
	})
	if got := w.versions(t, "stg-1", "stg-2"); got != "1.1.0,1.1.0" {
		t.Fatalf("staging after a broken release = %s, want both back on 1.1.0", got)
	}
	daemon.Process.Signal(syscall.SIGTERM)
	daemon.Wait()

	// 2. Production is gated: pending until approved, blocked outside its window.
	start := time.Now().Add(10 * time.Second).UTC().Truncate(time.Second) // room for the checks below on a loaded machine
	p := w.propose(t, "production", "1.1.0", "--start", start.Format(time.RFC3339), "--end", start.Add(time.Hour).Format(time.RFC3339))
	if p.Change == "" {
		t.Fatalf("no change raised: %+v", p)
	}
	r := daytwo(t, w.env, "run", p.ID)
	if r.code != exitPending || !strings.Contains(r.stdout, "awaiting approval") {
		t.Fatalf("run before approval: %+v", r)
	}
	w.approve(t, p.Change)
	if r = daytwo(t, w.env, "sync", "--once"); r.code != 0 {
		t.Fatalf("sync: %+v", r)
	}
	r = daytwo(t, w.env, "run", p.Change, "-o", "json")
	if r.code != exitBlocked || !strings.Contains(r.stdout, `"code": "window"`) || !strings.Contains(r.stdout, "outside the change window") {
		t.Fatalf("run before the window: %+v", r)
	}
	// On a loaded machine the window may already be open by now: only then
	// is there nothing to wait for.
	early := time.Now().Add(time.Second).Before(start)
	r = daytwo(t, w.env, "run", p.Change, "--wait", "--poll", "500ms", "--timeout", "30s")
	if r.code != 0 || !strings.Contains(r.stdout, "batch 3/3: prd-3") || (early && !strings.Contains(r.stdout, "waiting: outside the change window")) {
		t.Fatalf("run inside the window: %+v", r)
	}
	if got := w.versions(t, "prd-1", "prd-2", "prd-3"); got != "1.1.0,1.1.0,1.1.0" {
		t.Fatalf("production = %s", got)
	}
	chg := w.simRecords(t, "change_request", "number="+p.Change)
	if len(chg) != 1 || chg[0]["state"] != "3" || chg[0]["close_code"] != "successful" {
		t.Fatalf("change after success: %v", chg)
	}
	notes := w.simRecords(t, "sys_journal_field", "element=work_notes^element_id="+chg[0]["sys_id"].(string))
	var batchNotes int
	for _, n := range notes {
		if strings.Contains(n["value"].(string), "batch ") {
			batchNotes++
		}
	}
	if batchNotes != 3 {
		t.Fatalf("want one work note per batch, got %d of %d notes", batchNotes, len(notes))
	}

	// 3. A broken release on production rolls back, closes the change
	// unsuccessful and opens an incident linked to the change.
	p = w.propose(t, "production", "1.2.0-broken")
	w.approve(t, p.Change)
	daytwo(t, w.env, "sync", "--once")
	r = daytwo(t, w.env, "run", p.ID)
	if r.code != exitError || !strings.Contains(r.stdout, "rolling back") {
		t.Fatalf("broken production run: %+v", r)
	}
	if got := w.versions(t, "prd-1", "prd-2", "prd-3"); got != "1.1.0,1.1.0,1.1.0" {
		t.Fatalf("production after rollback = %s", got)
	}
	chg = w.simRecords(t, "change_request", "number="+p.Change)
	if chg[0]["close_code"] != "unsuccessful" || chg[0]["state"] != "3" {
		t.Fatalf("change after rollback: close_code %v state %v", chg[0]["close_code"], chg[0]["state"])
	}
	inc := w.simRecords(t, "incident", "caused_by="+chg[0]["sys_id"].(string))
	if len(inc) != 1 || !strings.Contains(inc[0]["description"].(string), p.Change) {
		t.Fatalf("incident: %v", inc)
	}
	r = daytwo(t, w.env, "change", "show", p.Change)
	if !strings.Contains(r.stdout, "Incident:    "+inc[0]["number"].(string)) {
		t.Fatalf("change show lacks the incident: %+v", r)
	}

	// 4. A plan edited after approval blocks the run.
	p = w.propose(t, "production", "1.3.0")
	w.approve(t, p.Change)
	daytwo(t, w.env, "sync", "--once")
	w.writeConfig(t, "1s")
	r = daytwo(t, w.env, "run", p.ID)
	if r.code != exitBlocked || !strings.Contains(r.stdout, "plan changed") {
		t.Fatalf("run of an edited plan: %+v", r)
	}

	// The approved-but-stale update still holds its change (Scheduled on
	// checkout-service): ServiceNow's conflict check would report the new
	// change as overlapping it. Withdraw it, as an operator would.
	if r = daytwo(t, w.env, "update", "cancel", p.ID, "--reason", "plan changed"); r.code != 0 {
		t.Fatalf("cancel: %+v", r)
	}

	// 5. Killed during a batch, a restart leaves every target on a known release.
	p = w.propose(t, "production", "1.3.0")
	w.approve(t, p.Change)
	daytwo(t, w.env, "sync", "--once")
	run := exec.Command(daytwoBin, "run", p.ID)
	run.Env = append(os.Environ(), w.env...)
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "prd-1 on 1.3.0", 30*time.Second, func() bool { return w.versions(t, "prd-1") == "1.3.0" })
	run.Process.Signal(syscall.SIGKILL)
	run.Wait()
	mid := w.versions(t, "prd-1", "prd-2", "prd-3")
	// No waiting for the lease to expire: its holder is a dead process on this host.
	r = daytwo(t, w.env, "run", "--resume")
	if r.code != 0 || !strings.Contains(r.stdout, "resuming") {
		t.Fatalf("resume: %+v", r)
	}
	if got := w.versions(t, "prd-1", "prd-2", "prd-3"); got != "1.3.0,1.3.0,1.3.0" {
		t.Fatalf("after kill at %s and resume: %s", mid, got)
	}
	if r = daytwo(t, w.env, "audit", "verify"); r.code != 0 {
		t.Fatalf("audit: %+v", r)
	}

	// 6. Drift and env diff report a hand-made divergence.
	if err := demofleet.SetVersion(w.stateDir, "prd-2", "1.3.1-hotfix", nil); err != nil {
		t.Fatal(err)
	}
	r = daytwo(t, w.env, "drift", "production", "-o", "json")
	if r.code != exitDrifted || !strings.Contains(r.stdout, `"reported": "1.3.1-hotfix"`) || !strings.Contains(r.stdout, `"drifted": 1`) {
		t.Fatalf("drift: %+v", r)
	}
	r = daytwo(t, w.env, "env", "diff", "staging", "production")
	if !strings.Contains(r.stdout, "version") || !strings.Contains(r.stdout, "1.1.0") || !strings.Contains(r.stdout, "1.3.0") {
		t.Fatalf("env diff: %+v", r)
	}
}

// TestConflictCheckBlocksOverlappingChange: ServiceNow's conflict detection
// runs when a change is raised, and the gate refuses a change that overlaps
// another one scheduled on the same CI (the daemon re-checks it every
// minute while it has conflicts).
func TestConflictCheckBlocksOverlappingChange(t *testing.T) {
	w := newEngineWorld(t, "0s")
	// The first change on the CI is another operator's (their own store):
	// one environment has one open update at a time.
	other := &engineWorld{env: append(append([]string{}, w.env...), "DAYTWO_DB="+filepath.Join(t.TempDir(), "other.db"))}
	first := other.propose(t, "production", "2.0.0")
	second := w.propose(t, "production", "2.0.1")
	w.approve(t, second.Change)
	daytwo(t, w.env, "sync", "--once")
	r := daytwo(t, w.env, "run", second.ID, "-o", "json")
	if r.code != exitBlocked || !strings.Contains(r.stdout, `"code": "conflict"`) || !strings.Contains(r.stdout, first.Change) {
		t.Fatalf("run of a change overlapping %s: %+v", first.Change, r)
	}
	r = daytwo(t, w.env, "audit", "list", "-o", "json", "--limit", "0")
	if !strings.Contains(r.stdout, `"action": "change.conflicts"`) {
		t.Fatalf("no conflict check in the audit log: %s", r.stdout)
	}
}
