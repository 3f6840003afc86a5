package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daytwo/daytwo/fixtures/demofleet"
	"github.com/daytwo/daytwo/itsm/snowsim"
	"github.com/daytwo/daytwo/ops"
)

// Bundles through the real binary, the simulator and the loopback fleet:
// three services released to production under one change.

var bundleTargets = map[string][]string{
	"checkout": {"chk-1", "chk-2"},
	"payments": {"pay-1", "pay-2"},
	"search":   {"srch-1"},
}

// The simulator's seeded CIs, one per service.
var bundleCIs = map[string]string{"checkout": "checkout-service", "payments": "payments-api", "search": "web-frontend"}

// newBundleWorld is a simulator, a fleet with every service's targets on
// 1.0.0, and a services configuration: checkout, payments and search in a
// gated production, each with its health check and version probe.
func newBundleWorld(t *testing.T, autoRun bool) *engineWorld {
	t.Helper()
	w := &engineWorld{dir: t.TempDir()}
	w.sim = startSim(t, snowsim.Options{AssociateDelay: 50 * time.Millisecond})
	w.stateDir = filepath.Join(w.dir, "fleet")
	var targets []demofleet.Target
	for _, svc := range []string{"checkout", "payments", "search"} {
		for _, n := range bundleTargets[svc] {
			targets = append(targets, demofleet.Target{Name: n, Addr: "127.0.0.1:0"})
		}
	}
	var err error
	w.fleet, err = demofleet.Start(context.Background(), demofleet.Options{StateDir: w.stateDir, Targets: targets, WarmUp: 50 * time.Millisecond, InitialVersion: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.fleet.Close() })
	urls := w.fleet.URLs()
	var services strings.Builder
	for _, svc := range []string{"checkout", "payments", "search"} {
		var ts []string
		for _, n := range bundleTargets[svc] {
			ts = append(ts, fmt.Sprintf("{name: %s, vars: {url: %q}}", n, urls[n]))
		}
		fmt.Fprintf(&services, `
  - name: %s
    cmdb_ci: %s
    deploy: {command: [%q, fleet, deploy, --state-dir, %q], timeout: 30s}
    version_probe: {http: {url: "{{ .Target.Vars.url }}/version"}}
    health:
      - http: {url: "{{ .Target.Vars.url }}/healthz", expect_status: 200}
        retries: 3
        interval: 100ms
    environments:
      - {name: production, targets: [%s]}`, svc, bundleCIs[svc], daytwoBin, w.stateDir, strings.Join(ts, ", "))
	}
	cfg := fmt.Sprintf(`
store: {path: d.db}
servicenow:
  instance: %s
  auth: {username: daytwo}
  assignment_group: Platform Ops
sync: {interval: 1s}
environments:
  - name: production
    requires_change: true
    auto_run: %t
    change: {type: normal, risk: moderate}
    strategy: {batch_size: 1}
services:%s
`, w.sim.URL(), autoRun, services.String())
	w.cfgPath = filepath.Join(w.dir, "daytwo.yaml")
	if err := os.WriteFile(w.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	w.env = []string{"DAYTWO_CONFIG=" + w.cfgPath, "DAYTWO_SN_PASSWORD=daytwo"}
	return w
}

// proposeBundle proposes a bundle to production and returns its JSON.
func (w *engineWorld) proposeBundle(t *testing.T, members ...string) bundleResult {
	t.Helper()
	r := daytwo(t, w.env, append([]string{"propose", "--bundle", "production", "-o", "json"}, members...)...)
	var b bundleResult
	if err := json.Unmarshal([]byte(r.stdout), &b); err != nil || r.code != 0 {
		t.Fatalf("propose --bundle %v: %+v (%v)", members, r, err)
	}
	if b.Change == "" || len(b.Updates) != len(members) {
		t.Fatalf("propose --bundle: change %q, %d updates", b.Change, len(b.Updates))
	}
	return b
}

// bundleUpdates lists the bundle's updates (members and rollbacks) by
// service ("service:rollback" for a rollback).
func (w *engineWorld) bundleUpdates(t *testing.T, id string) map[string]ops.Update {
	t.Helper()
	r := daytwo(t, w.env, "update", "list", "--all", "-o", "json")
	var sts []ops.UpdateStatus
	if err := json.Unmarshal([]byte(r.stdout), &sts); err != nil || r.code != 0 {
		t.Fatalf("update list: %+v (%v)", r, err)
	}
	out := map[string]ops.Update{}
	for _, st := range sts {
		u := st.Update
		if u.BundleID != id {
			continue
		}
		key := strings.TrimSuffix(u.Environment, "/production")
		if u.Rollback {
			key += ":rollback"
		}
		out[key] = u
	}
	return out
}

// outboxKinds counts the bundle's delivered writes by kind.
func (w *engineWorld) outboxKinds(t *testing.T, key string) map[ops.OutboxKind]int {
	t.Helper()
	r := daytwo(t, w.env, "outbox", "list", "--all", "-o", "json")
	var items []ops.OutboxItem
	if err := json.Unmarshal([]byte(r.stdout), &items); err != nil || r.code != 0 {
		t.Fatalf("outbox list: %+v (%v)", r, err)
	}
	out := map[ops.OutboxKind]int{}
	for _, it := range items {
		if it.Key != key {
			continue
		}
		if it.State != ops.OutboxDelivered {
			t.Errorf("outbox item %d (%s) is %s: %s", it.ID, it.Kind, it.State, it.LastError)
		}
		out[it.Kind]++
	}
	return out
}

// TestBundleOneChangeSucceedsThenRollsBackAcrossServices: a bundle of three
// services goes through one normal change (every plan in its description,
// every CI attached) and succeeds, the change closed successful once; a
// second bundle whose second service fails its health check rolls the
// first two back, never starts the third, closes the change unsuccessful
// once and opens one incident naming the failed service.
func TestBundleOneChangeSucceedsThenRollsBackAcrossServices(t *testing.T) {
	testBundleOneChange(t, newBundleWorld(t, false))
}

func testBundleOneChange(t *testing.T, w *engineWorld) {
	b := w.proposeBundle(t, "checkout=1.1.0", "payments=1.1.0", "search=1.1.0")
	for i, m := range b.Updates {
		if want := []string{"checkout", "payments", "search"}[i]; m.Service != want || m.Seq != i+1 {
			t.Fatalf("member %d = %s #%d, want %s #%d", i, m.Service, m.Seq, want, i+1)
		}
	}
	chg := w.simRecords(t, "change_request", "number="+b.Change)
	if len(chg) != 1 {
		t.Fatalf("change %s: %v", b.Change, chg)
	}
	if all := w.simRecords(t, "change_request", "correlation_idSTARTSWITHdaytwo:"); len(all) != 1 {
		t.Fatalf("%d changes raised, want one for the bundle", len(all))
	}
	sysID := chg[0]["sys_id"].(string)
	desc, _ := chg[0]["description"].(string)
	for _, want := range []string{"bundle " + b.ID, "1. Service checkout", "2. Service payments", "3. Service search", "→ 1.1.0", "chk-2", "pay-1", "srch-1", "batch size"} {
		if !strings.Contains(desc, want) {
			t.Errorf("change description lacks %q:\n%s", want, desc)
		}
	}
	if sd, _ := chg[0]["short_description"].(string); !strings.Contains(sd, "bundle "+b.ID) {
		t.Errorf("short description %q does not name the bundle", sd)
	}
	cis := w.simRecords(t, "cmdb_ci", "nameINcheckout-service,payments-api,web-frontend")
	if ci, _ := chg[0]["cmdb_ci"].(string); len(cis) != 3 || ci != sysIDOf(cis, "checkout-service") {
		t.Fatalf("cmdb_ci %q, want checkout-service's sys_id (%v)", ci, cis)
	}
	waitFor(t, "three affected CIs on the change", 10*time.Second, func() bool {
		return len(w.simRecords(t, "task_ci", "task="+sysID)) == 3
	})
	for _, rec := range w.simRecords(t, "task_ci", "task="+sysID) {
		if ci, _ := rec["ci_item"].(string); ci != sysIDOf(cis, "checkout-service") && ci != sysIDOf(cis, "payments-api") && ci != sysIDOf(cis, "web-frontend") {
			t.Errorf("task_ci %v is not one of the bundle's CIs", rec)
		}
	}
	if r := daytwo(t, w.env, "update", "list"); r.code != 0 || !strings.Contains(r.stdout, "BUNDLE") || !strings.Contains(r.stdout, b.ID+" #3") {
		t.Fatalf("update list does not show the bundle: %+v", r)
	}

	w.approve(t, b.Change)
	if r := daytwo(t, w.env, "sync", "--once"); r.code != 0 {
		t.Fatalf("sync: %+v", r)
	}
	r := daytwo(t, w.env, "run", b.Change)
	if r.code != 0 || !strings.Contains(r.stdout, "succeeded") {
		t.Fatalf("run the bundle: %+v", r)
	}
	if v := w.versions(t, "chk-1", "chk-2", "pay-1", "pay-2", "srch-1"); v != "1.1.0,1.1.0,1.1.0,1.1.0,1.1.0" {
		t.Fatalf("fleet after the bundle = %s", v)
	}
	chg = w.simRecords(t, "change_request", "number="+b.Change)
	if chg[0]["state"] != "3" || chg[0]["close_code"] != "successful" {
		t.Fatalf("change after the bundle: state %v close_code %v", chg[0]["state"], chg[0]["close_code"])
	}
	notes, _ := chg[0]["close_notes"].(string)
	for _, svc := range []string{"checkout", "payments", "search"} {
		if !strings.Contains(notes, svc) {
			t.Errorf("close notes do not cover %s: %s", svc, notes)
		}
	}
	if k := w.outboxKinds(t, b.ID); k[ops.OutboxCloseChange] != 1 || k[ops.OutboxCreateChange] != 1 || k[ops.OutboxAddAffectedCIs] != 1 || k[ops.OutboxCreateIncident] != 0 {
		t.Fatalf("the bundle's writes: %v; want one create, one affected CIs, one close, no incident", k)
	}
	for svc, u := range w.bundleUpdates(t, b.ID) {
		if u.State != ops.UpdateSucceeded || u.ChangeNumber != b.Change {
			t.Errorf("%s: %s on %s", svc, u.State, u.ChangeNumber)
		}
	}

	// The second bundle: payments' release fails its health check.
	b2 := w.proposeBundle(t, "checkout=1.2.0", "payments=1.2.0-broken", "search=1.2.0")
	w.approve(t, b2.Change)
	daytwo(t, w.env, "sync", "--once")
	r = daytwo(t, w.env, "run", b2.ID)
	if r.code != exitError || !strings.Contains(r.stdout, "Failed:  payments") {
		t.Fatalf("run of the failing bundle: %+v", r)
	}
	// The targets are the truth: checkout and payments back on 1.1.0,
	// search never touched.
	if v := w.versions(t, "chk-1", "chk-2", "pay-1", "pay-2", "srch-1"); v != "1.1.0,1.1.0,1.1.0,1.1.0,1.1.0" {
		t.Fatalf("fleet after the failed bundle = %s, want every service on 1.1.0", v)
	}
	ups := w.bundleUpdates(t, b2.ID)
	if ups["checkout"].State != ops.UpdateRolledBack || ups["payments"].State != ops.UpdateRolledBack {
		t.Errorf("checkout %s, payments %s; want both rolled_back", ups["checkout"].State, ups["payments"].State)
	}
	if s := ups["search"]; s.State != ops.UpdateCanceled || !strings.Contains(s.Reason, "payments failed") {
		t.Errorf("search %s (%q), want canceled naming payments", s.State, s.Reason)
	}
	if rb := ups["checkout:rollback"]; rb.State != ops.UpdateSucceeded || rb.Version != "1.1.0" {
		t.Errorf("checkout's rollback %s to %s", rb.State, rb.Version)
	}
	chg = w.simRecords(t, "change_request", "number="+b2.Change)
	if chg[0]["state"] != "3" || chg[0]["close_code"] != "unsuccessful" {
		t.Fatalf("failed bundle's change: state %v close_code %v", chg[0]["state"], chg[0]["close_code"])
	}
	notes, _ = chg[0]["close_notes"].(string)
	for _, want := range []string{"checkout", "payments", "search", "not started", "FAILED"} {
		if !strings.Contains(notes, want) {
			t.Errorf("close notes lack %q: %s", want, notes)
		}
	}
	inc := w.simRecords(t, "incident", "caused_by="+chg[0]["sys_id"].(string))
	if len(inc) != 1 {
		t.Fatalf("%d incidents caused by %s, want one", len(inc), b2.Change)
	}
	if sd, _ := inc[0]["short_description"].(string); !strings.Contains(sd, "payments") {
		t.Errorf("incident %q does not name payments", sd)
	}
	if ci, _ := inc[0]["cmdb_ci"].(string); ci != sysIDOf(cis, "payments-api") {
		t.Errorf("incident CI %q, want payments-api", ci)
	}
	if k := w.outboxKinds(t, b2.ID); k[ops.OutboxCloseChange] != 1 || k[ops.OutboxCreateIncident] != 1 {
		t.Fatalf("the failed bundle's writes: %v; want one close and one incident", k)
	}
	// Running it again changes nothing.
	if r := daytwo(t, w.env, "run", b2.ID); r.code != exitError {
		t.Fatalf("second run of the failed bundle: %+v", r)
	}
	if k := w.outboxKinds(t, b2.ID); k[ops.OutboxCloseChange] != 1 || k[ops.OutboxCreateIncident] != 1 {
		t.Fatalf("after a second run: %v", k)
	}
	if r := daytwo(t, w.env, "audit", "verify"); r.code != 0 {
		t.Fatalf("audit verify: %+v", r)
	}
}

func sysIDOf(recs []map[string]any, name string) string {
	for _, r := range recs {
		if r["name"] == name {
			s, _ := r["sys_id"].(string)
			return s
		}
	}
	return ""
}

// TestProposeNamesServicesAndRefusesBadBundles: the three forms of propose
// and their errors, each naming what is wrong.
func TestProposeNamesServicesAndRefusesBadBundles(t *testing.T) {
	w := newBundleWorld(t, false)
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"stage of three": {[]string{"propose", "production", "1.1.0"}, `3 services run in "production" (checkout, payments, search)`},
		"unknown":        {[]string{"propose", "--bundle", "production", "checkout=1.1.0", "billing=1.0.0"}, `no service named "billing"`},
		"not in env":     {[]string{"propose", "search", "staging", "1.1.0"}, `service search does not run in "staging"`},
		"duplicate":      {[]string{"propose", "--bundle", "production", "checkout=1.1.0", "checkout=1.2.0"}, "service checkout is named twice"},
		"bad version":    {[]string{"propose", "--bundle", "production", "checkout=1.1.0", "payments=1 0"}, "payments=1 0"},
		"no version":     {[]string{"propose", "--bundle", "production", "checkout=1.1.0", "payments"}, `"payments": want SERVICE=VERSION`},
		"one service":    {[]string{"propose", "--bundle", "production", "checkout=1.1.0"}, "at least two SERVICE=VERSION"},
	} {
		r := daytwo(t, w.env, tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: %+v, want exit %d naming %q", name, r, exitUsage, tc.want)
		}
	}
	// SERVICE ENV VERSION proposes that service's update alone.
	r := daytwo(t, w.env, "propose", "payments", "production", "1.1.0", "-o", "json")
	var p proposeResult
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || r.code != 0 || p.Environment != "payments/production" {
		t.Fatalf("propose payments production: %+v (%v)", r, err)
	}
	// A bundle with a service that has an open update is refused whole.
	r = daytwo(t, w.env, "propose", "--bundle", "production", "checkout=1.1.0", "payments=1.2.0")
	if r.code != exitBlocked || !strings.Contains(r.stderr, "nothing was created") || !strings.Contains(r.stderr, "payments") {
		t.Fatalf("bundle with an open update: %+v", r)
	}
	if all := w.simRecords(t, "change_request", "correlation_idSTARTSWITHdaytwo:"); len(all) != 1 {
		t.Fatalf("%d changes, want only payments' own", len(all))
	}
}

// TestBundleKilledMidMemberIsContinuedByTheDaemon: `daytwo run` of a
// bundle is killed (SIGKILL) while its second service deploys; a daemon
// started afterwards recovers that service's run from its journal, goes on
// with the third, and closes the change successful once. Decided: a
// bundle interrupted by a crash continues (the gate of its change is still
// open); it rolls back only if the interrupted member's recovery does.
func TestBundleKilledMidMemberIsContinuedByTheDaemon(t *testing.T) {
	// Killed: the `daytwo run` of the bundle, or a daemon running it.
	for _, killed := range []string{"run", "daemon"} {
		t.Run(killed, func(t *testing.T) { testBundleKilledMidMember(t, killed, "daemon") })
	}
}

// controlledDeploys replaces every service's deploy command by a script
// the test steers through files in the returned directory: a file
// slow-TARGET-VERSION makes that deploy sleep a minute (touching
// started-TARGET-VERSION first), hold-TARGET-VERSION makes it wait for a
// file go; every deploy is appended to the file deploys as "TARGET
// VERSION".
func (w *engineWorld) controlledDeploys(t *testing.T) string {
	t.Helper()
	ctl := filepath.Join(w.dir, "ctl")
	if err := os.MkdirAll(ctl, 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(ctl, "deploy.sh")
	body := fmt.Sprintf(`#!/bin/sh
ctl=%[1]q
at="$DAYTWO_TARGET-$DAYTWO_VERSION"
echo "$DAYTWO_TARGET $DAYTWO_VERSION" >> "$ctl/deploys"
if [ -f "$ctl/slow-$at" ]; then touch "$ctl/started-$at"; sleep 60; fi
if [ -f "$ctl/hold-$at" ]; then touch "$ctl/started-$at"; while [ ! -f "$ctl/go" ]; do sleep 0.05; done; fi
exec %[2]q fleet deploy --state-dir %[3]q
`, ctl, daytwoBin, w.stateDir)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(w.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.ReplaceAll(string(cfg), fmt.Sprintf("deploy: {command: [%q, fleet, deploy, --state-dir, %q], timeout: 30s}", daytwoBin, w.stateDir),
		fmt.Sprintf("deploy: {command: [%q], timeout: 90s}", script)))
	if err := os.WriteFile(w.cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	return ctl
}

// touch creates the named control files.
func touch(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// testBundleKilledMidMember kills the process running a bundle (killed:
// "run" or "daemon") during payments' deploy and lets next ("daemon", or
// "resume": a one-shot `daytwo run --resume`) finish the bundle.
func testBundleKilledMidMember(t *testing.T, killed, next string) {
	w := newBundleWorld(t, next == "daemon")
	ctl := w.controlledDeploys(t)
	touch(t, ctl, "slow-pay-1-1.1.0")

	b := w.proposeBundle(t, "checkout=1.1.0", "payments=1.1.0", "search=1.1.0")
	w.approve(t, b.Change)
	daytwo(t, w.env, "sync", "--once")
	run := exec.Command(daytwoBin, "run", b.ID)
	if killed == "daemon" {
		run = exec.Command(daytwoBin, "sync", "--watch", "--interval", "1s", "--listen", "")
	}
	run.Env = append(os.Environ(), w.env...)
	run.Dir = w.dir
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "payments' first deploy to start", 60*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(ctl, "started-pay-1-1.1.0"))
		return err == nil
	})
	if err := run.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = run.Wait()
	if err := os.Remove(filepath.Join(ctl, "slow-pay-1-1.1.0")); err != nil {
		t.Fatal(err)
	}
	if v := w.versions(t, "chk-1", "chk-2", "pay-1", "srch-1"); v != "1.1.0,1.1.0,1.0.0,1.0.0" {
		t.Fatalf("fleet at the kill = %s", v)
	}
	if next == "resume" {
		r := daytwo(t, w.env, "run", "--resume")
		if r.code != 0 || !strings.Contains(r.stdout, "Bundle "+b.ID) || !strings.Contains(r.stdout, "State:   succeeded") {
			t.Fatalf("run --resume: %+v", r)
		}
		w.checkBundleSucceeded(t, b)
		return
	}

	daemon := exec.Command(daytwoBin, "sync", "--watch", "--interval", "1s", "--listen", "")
	daemon.Env = append(os.Environ(), w.env...)
	daemon.Dir = w.dir
	var out strings.Builder
	daemon.Stdout, daemon.Stderr = &out, &out
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = daemon.Process.Signal(syscall.SIGTERM)
		_ = daemon.Wait()
		if t.Failed() {
			t.Logf("daemon:\n%s", out.String())
		}
	})
	waitFor(t, "the bundle's change to be closed", 90*time.Second, func() bool {
		chg := w.simRecords(t, "change_request", "number="+b.Change)
		return len(chg) == 1 && chg[0]["state"] == "3"
	})
	w.checkBundleSucceeded(t, b)
}

// checkBundleSucceeded checks, on the targets and in ServiceNow, that the
// three-service bundle b is released and its change closed successful once.
func (w *engineWorld) checkBundleSucceeded(t *testing.T, b bundleResult) {
	t.Helper()
	if v := w.versions(t, "chk-1", "chk-2", "pay-1", "pay-2", "srch-1"); v != "1.1.0,1.1.0,1.1.0,1.1.0,1.1.0" {
		t.Fatalf("fleet after the bundle = %s", v)
	}
	chg := w.simRecords(t, "change_request", "number="+b.Change)
	if chg[0]["close_code"] != "successful" {
		t.Fatalf("close_code %v", chg[0]["close_code"])
	}
	for svc, u := range w.bundleUpdates(t, b.ID) {
		if u.State != ops.UpdateSucceeded {
			t.Errorf("%s is %s", svc, u.State)
		}
	}
	waitFor(t, "the bundle's writes to be delivered", 30*time.Second, func() bool {
		r := daytwo(t, w.env, "outbox", "list", "-o", "json")
		return r.code == 0 && strings.TrimSpace(r.stdout) == "[]"
	})
	if k := w.outboxKinds(t, b.ID); k[ops.OutboxCloseChange] != 1 || k[ops.OutboxCreateIncident] != 0 {
		t.Fatalf("the bundle's writes: %v; want one close, no incident", k)
	}
}
