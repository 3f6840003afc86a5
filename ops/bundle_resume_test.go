package ops_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// Bundles continued by whoever comes next (run --resume, a later daemon)
// and parallel members stopped early.

// TestResumeRunsContinuesTheBundle: `run --resume` after a crash in the
// middle of payments recovers payments' run and goes on with the bundle —
// search, then the one close — as `run CHG` would, in a stage without
// auto_run.
func TestResumeRunsContinuesTheBundle(t *testing.T) {
	w := newBundleWorld(t, false)
	bp := w.proposeApprovedBundle(t, false, members3("1.4.2", "3.0.1", "2.0.0")...)
	ctx, cancel := context.WithCancel(context.Background())
	w.fleet.onDeploy = func(req ops.StepRequest) {
		if req.Target.Name == "payments-1" {
			cancel()
		}
	}
	if _, err := w.svc.RunBundle(ctx, bp.ID, nil); !errors.Is(err, ops.ErrRunInterrupted) {
		t.Fatalf("interrupted RunBundle: %v", err)
	}
	w.fleet.onDeploy = nil

	runs, bundles, err := w.process(t, "host:2").ResumeRuns(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	w.deliverAll(t)
	if len(bundles) != 1 || bundles[0].ID != bp.ID || bundles[0].State != ops.BundleSucceeded {
		t.Fatalf("bundles resumed: %+v", bundles)
	}
	if len(runs) != 2 {
		t.Errorf("%d runs (want payments' recovered run and search's)", len(runs))
	}
	for svc, u := range w.members(t, bp.ID) {
		if u.State != ops.UpdateSucceeded {
			t.Errorf("%s is %s", svc, u.State)
		}
	}
	if v := w.fleet.version("search-2"); v != "2.0.0" {
		t.Errorf("search-2 runs %s", v)
	}
	if closes := w.closes(); len(closes) != 1 || !strings.HasPrefix(closes[0], "successful") {
		t.Errorf("closes %q, want one successful", closes)
	}
	// Nothing is left for a second --resume.
	runs, bundles, err = w.process(t, "host:3").ResumeRuns(context.Background(), nil)
	w.deliverAll(t)
	if err != nil || len(runs) != 0 || len(bundles) != 0 || len(w.closes()) != 1 {
		t.Errorf("second resume: %d runs, %d bundles, %v; %d closes", len(runs), len(bundles), err, len(w.closes()))
	}
}

// TestBundleLeftUnsettledIsClosedByTheNextDaemon: the process running a
// bundle dies right after its last member succeeded, before closing the
// change; no daemon runs for longer than the daemon's recency window. The
// next daemon's first pass finds the bundle and closes its change once.
func TestBundleLeftUnsettledIsClosedByTheNextDaemon(t *testing.T) {
	w := newBundleWorld(t, true)
	bp := w.proposeApprovedBundle(t, false, members3("1.4.2", "3.0.1", "2.0.0")...)
	ctx, cancel := context.WithCancel(context.Background())
	progress := func(ev ops.RunEvent) {
		if ev.State == ops.EventSucceeded && ev.Target == "" && strings.Contains(ev.Message, "search/production") {
			cancel() // the process is gone once search's run has ended
		}
	}
	if _, err := w.svc.RunBundle(ctx, bp.ID, progress); !errors.Is(err, ops.ErrRunInterrupted) {
		t.Fatalf("RunBundle: %v", err)
	}
	w.deliverAll(t)
	for svc, u := range w.members(t, bp.ID) {
		if u.State != ops.UpdateSucceeded {
			t.Fatalf("%s is %s", svc, u.State)
		}
	}
	if n := len(w.closes()); n != 0 {
		t.Fatalf("closed %d times before the daemon", n)
	}

	w.clk.Advance(11 * time.Minute) // longer than the daemon's recency window
	daemon := w.process(t, "host:2")
	for range 2 {
		if _, err := daemon.AutoRun(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		w.deliverAll(t)
	}
	if closes := w.closes(); len(closes) != 1 || !strings.HasPrefix(closes[0], "successful") {
		t.Fatalf("closes %q, want one successful", closes)
	}
	// Another daemon's first pass finds nothing left to settle.
	if _, err := w.process(t, "host:3").AutoRun(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	w.deliverAll(t)
	if n := len(w.closes()); n != 1 {
		t.Errorf("closed %d times", n)
	}
}

// TestBundleStartsWhenItsStageAutoRuns: the daemon starts an approved
// bundle in its window when the bundle's stage has auto_run, and
// otherwise waits for `daytwo run` — but goes on with a bundle that was
// started and left between two members by a process that died.
func TestBundleStartsWhenItsStageAutoRuns(t *testing.T) {
	for _, autoRun := range []bool{false, true} {
		w := newBundleWorld(t, autoRun)
		bp := w.proposeApprovedBundle(t, false, members3("1.4.2", "3.0.1", "2.0.0")...)
		if _, err := w.svc.AutoRun(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		w.deliverAll(t)
		want := ops.UpdateApproved
		if autoRun {
			want = ops.UpdateSucceeded
		}
		for svc, u := range w.members(t, bp.ID) {
			if u.State != want {
				t.Errorf("auto_run %t: %s is %s, want %s", autoRun, svc, u.State, want)
			}
		}
		if n := len(w.closes()); n != map[bool]int{false: 0, true: 1}[autoRun] {
			t.Errorf("auto_run %t: closed %d times", autoRun, n)
		}
	}
	// Started by `daytwo run`, whose process died between two members:
	// the daemon goes on with it without auto_run.
	w := newBundleWorld(t, false)
	bp := w.proposeApprovedBundle(t, false, members3("1.4.2", "3.0.1", "2.0.0")...)
	ctx, cancel := context.WithCancel(context.Background())
	progress := func(ev ops.RunEvent) {
		if ev.State == ops.EventSucceeded && ev.Target == "" && strings.Contains(ev.Message, "checkout/production") {
			cancel()
		}
	}
	if _, err := w.svc.RunBundle(ctx, bp.ID, progress); !errors.Is(err, ops.ErrRunInterrupted) {
		t.Fatalf("RunBundle: %v", err)
	}
	if ms := w.members(t, bp.ID); ms["checkout"].State != ops.UpdateSucceeded || ms["payments"].State != ops.UpdateApproved {
		t.Fatalf("checkout %s, payments %s", ms["checkout"].State, ms["payments"].State)
	}
	if _, err := w.process(t, "host:2").AutoRun(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	w.deliverAll(t)
	for svc, u := range w.members(t, bp.ID) {
		if u.State != ops.UpdateSucceeded {
			t.Errorf("started bundle without auto_run: %s is %s", svc, u.State)
		}
	}
	if closes := w.closes(); len(closes) != 1 || !strings.HasPrefix(closes[0], "successful") {
		t.Errorf("closes %q", closes)
	}
}

// TestBundleParallelFailureStopsTheOthersEarly: members run at once;
// payments fails on its first target while checkout and search are
// deploying theirs. Checkout and search stop at their next step boundary
// (their second targets never deployed), roll back what they touched in
// their own runs and are recorded stopped; the change is closed once,
// unsuccessful, naming payments, with one incident.
func TestBundleParallelFailureStopsTheOthersEarly(t *testing.T) {
	w := newBundleWorld(t, false)
	bp := w.proposeApprovedBundle(t, true, members3("1.4.2", "3.0.1", "2.0.0")...)
	w.fleet.broken["payments-1"] = true
	decided := make(chan struct{})
	var once sync.Once
	progress := func(ev ops.RunEvent) {
		if ev.State == ops.EventRollback && strings.Contains(ev.Message, "payments-1 FAILED") {
			once.Do(func() { close(decided) })
		}
	}
	w.fleet.onDeploy = func(req ops.StepRequest) {
		if !req.Rollback && (req.Target.Name == "checkout-1" || req.Target.Name == "search-1") {
			select { // still deploying when payments fails
			case <-decided:
			case <-time.After(time.Minute):
				t.Error("payments never decided to roll back")
			}
		}
	}
	res, err := w.svc.RunBundle(context.Background(), bp.ID, progress)
	if !errors.Is(err, ops.ErrRunFailed) || res.State != ops.BundleRolledBack || res.FailedService != "payments" {
		t.Fatalf("RunBundle = %s (%q), %v", res.State, res.FailedService, err)
	}
	w.deliverAll(t)
	for _, d := range w.fleet.deployed() {
		if d == "checkout-2 1.4.2" || d == "search-2 2.0.0" {
			t.Errorf("deployed %s after payments failed", d)
		}
	}
	for _, svc := range bundleServices {
		for _, n := range []string{"-1", "-2"} {
			if v := w.fleet.version(svc + n); v != "1.0.0" {
				t.Errorf("%s%s runs %s", svc, n, v)
			}
		}
	}
	ms := w.members(t, bp.ID)
	if ms["payments"].State != ops.UpdateRolledBack {
		t.Errorf("payments is %s", ms["payments"].State)
	}
	for _, svc := range []string{"checkout", "search"} {
		u := ms[svc]
		if u.State != ops.UpdateStopped || !strings.Contains(u.Reason, "stopped early: payments failed") {
			t.Errorf("%s is %s (%q), want stopped naming payments", svc, u.State, u.Reason)
		}
		if _, ok := ms[svc+":rollback"]; ok {
			t.Errorf("%s got a compensating update: its own run rolls it back", svc)
		}
		runs, err := w.db.Runs(context.Background(), u.ID)
		if err != nil || len(runs) != 1 || runs[0].State != ops.RunRolledBack || !strings.HasPrefix(runs[0].DecisionReason, "stopped early: ") {
			t.Fatalf("%s's runs: %+v, %v", svc, runs, err)
		}
		logText, err := w.svc.RunLogText(context.Background(), runs[0].ID)
		if err != nil || !strings.Contains(logText, "stopped early: payments failed") || !strings.Contains(logText, "was stopped early and rolled back") {
			t.Errorf("%s's run log does not say it was stopped early:\n%s", svc, logText)
		}
		evs, err := w.db.ListEvents(context.Background(), ops.EventFilter{UpdateID: u.ID})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(evs, func(e ops.Event) bool {
			return e.Action == "run.rolled_back" && e.Detail["update_state"] == "stopped"
		}) {
			t.Errorf("%s: no audit event records the run rolled back and the update stopped: %+v", svc, evs)
		}
		notes := w.cs.notes[u.ChangeSysID]
		if !slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, svc+"/production was stopped early and rolled back") }) {
			t.Errorf("no work note says %s was stopped early: %q", svc, notes)
		}
	}
	closes := w.closes()
	if len(closes) != 1 || !strings.HasPrefix(closes[0], "unsuccessful") || !strings.Contains(closes[0], "FAILED") ||
		strings.Count(closes[0], "stopped early, what it touched rolled back to 1.0.0") != 2 {
		t.Errorf("closes %q", closes)
	}
	if len(w.cs.incidents) != 1 || !strings.Contains(w.cs.incidents[0].ShortDescription, "payments") {
		t.Errorf("incidents %+v", w.cs.incidents)
	}
}

// TestBundleWhoseFailedMemberCannotBeRestoredEndsFailed: payments fails
// and its own rollback cannot be verified (a target reports another
// version): the bundle rolls checkout back, cancels search and ends
// failed — closed unsuccessful once, its notes saying payments needs
// attention — instead of going round forever.
func TestBundleWhoseFailedMemberCannotBeRestoredEndsFailed(t *testing.T) {
	w := newBundleWorld(t, false)
	bp := w.proposeApprovedBundle(t, false, members3("1.4.2", "3.0.1", "2.0.0")...)
	w.fleet.broken["payments-1"] = true
	w.fleet.probeLie = map[string]string{"payments-1": "0.0.1"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := w.svc.RunBundle(ctx, bp.ID, nil)
	if !errors.Is(err, ops.ErrRunFailed) || res.State != ops.BundleFailed || res.FailedService != "payments" {
		t.Fatalf("RunBundle = %s (%q), %v", res.State, res.FailedService, err)
	}
	w.deliverAll(t)
	ms := w.members(t, bp.ID)
	if ms["payments"].State != ops.UpdateFailed || ms["checkout"].State != ops.UpdateRolledBack || ms["search"].State != ops.UpdateCanceled {
		t.Errorf("payments %s, checkout %s, search %s", ms["payments"].State, ms["checkout"].State, ms["search"].State)
	}
	closes := w.closes()
	if len(closes) != 1 || !strings.HasPrefix(closes[0], "unsuccessful") || !strings.Contains(closes[0], "could NOT be fully rolled back") {
		t.Errorf("closes %q", closes)
	}
}
