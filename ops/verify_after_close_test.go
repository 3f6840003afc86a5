package ops_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// windowFleet is the in-memory fleet with a Bake that fails every target
// running a "-degraded" version, with its numbers, and that can be made to
// hang until its context ends (a process stopped in the window).
type windowFleet struct {
	*fleet
	hang  atomic.Bool
	bakes atomic.Int32
}

func (f *windowFleet) Bake(ctx context.Context, req ops.StepRequest, _ time.Duration, _ ops.LogSink) (string, error) {
	f.bakes.Add(1)
	if f.hang.Load() {
		<-ctx.Done()
		return "", ctx.Err()
	}
	if strings.HasSuffix(f.version(req.Target.Name), "-degraded") {
		v := ops.MetricVerdict{
			Check: "error-rate", Kind: "metrics", Target: req.Target.Name, Outcome: "failed", Reason: "success_condition does not hold",
			Tally: "1 measured: 0 successful, 1 failed", Measurements: []string{"failed: 0.2105 (success_condition does not hold)"},
		}
		req.OnVerdict(v)
		return "", errors.New(v.String())
	}
	return "error rate 0", nil
}

// afterCloseWorld is a gated world whose environment verifies after the
// close with the given on_failure, and whose service bakes on wf.
func afterCloseWorld(t *testing.T, onFailure string) (*gatedWorld, *windowFleet) {
	t.Helper()
	w := newGatedWorld(t, func(e *ops.Environment, _ *ops.Config) {
		e.Verify = &ops.VerifyWindow{Window: 30 * time.Minute, OnFailure: onFailure, AfterClose: true}
	})
	wf := &windowFleet{fleet: w.fleet}
	w.svc = w.serviceOn(t, "host:1", wf)
	return w, wf
}

// serviceOn is another process over the same store and ServiceNow.
func (w *gatedWorld) serviceOn(t *testing.T, holder string, wf *windowFleet) *ops.Service {
	t.Helper()
	cfg := ops.Config{CorrelationPrefix: "daytwo", Actor: "test", Username: "daytwo", Environments: []ops.Environment{w.env}}
	svc, err := ops.New(cfg, w.db, w.cs, ops.WithClock(w.clk.Now), ops.WithHolder(holder), ops.WithLeaseTTL(time.Minute),
		ops.WithExecutors(func(ops.Environment) (ops.Executor, ops.HealthChecker, error) { return wf, wf, nil }),
		ops.WithProbers(func(ops.Environment) (ops.VersionProber, error) { return wf, nil }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Wait)
	return svc
}

// windowVerdicts returns the results of the update's window verdicts.
func (w *gatedWorld) windowVerdicts(t *testing.T, updateID string) (opened int, verdicts []string) {
	t.Helper()
	evs, err := w.db.ListEvents(context.Background(), ops.EventFilter{UpdateID: updateID})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		switch e.Action {
		case "verify.window_opened":
			opened++
		case "verify.window_closed":
			verdicts = append(verdicts, e.Result+" "+e.Detail["on_failure"].(string))
		}
	}
	return opened, verdicts
}

// TestVerifyAfterCloseIncidentKeepsTheRelease: on_failure incident after
// the close: the change was closed successful before the window, the
// release is kept, one incident is caused by the original change with the
// failing metric's numbers, and no emergency change is raised.
func TestVerifyAfterCloseIncidentKeepsTheRelease(t *testing.T) {
	w, _ := afterCloseWorld(t, "incident")
	first := w.proposeApproved(t, "1.0.0")
	if _, err := w.svc.Run(context.Background(), ops.RunRequest{Update: first.ID}); err != nil {
		t.Fatalf("healthy release: %v", err)
	}
	u := w.proposeApproved(t, "2.0.0-degraded")
	res, err := w.svc.Run(context.Background(), ops.RunRequest{Update: u.ID})
	if err != nil || res.Update.State != ops.UpdateSucceeded || res.Run.State != ops.RunSucceeded {
		t.Fatalf("run: %v, update %s, run %s; want both succeeded (the window runs after)", err, res.Update.State, res.Run.State)
	}
	w.deliverAll(t)
	if ch := w.cs.change(u.ChangeNumber); ch.State != ops.ChangeClosed || ch.CloseCode != "successful" {
		t.Fatalf("original change %s %s, want closed successful", ch.State, ch.CloseCode)
	}
	if v := w.fleet.version("p1") + "," + w.fleet.version("p2"); v != "2.0.0-degraded,2.0.0-degraded" {
		t.Errorf("fleet runs %s: on_failure incident keeps the release", v)
	}
	if opened, verdicts := w.windowVerdicts(t, u.ID); opened != 1 || len(verdicts) != 1 || verdicts[0] != "failed incident" {
		t.Errorf("window events: %d opened, verdicts %v", opened, verdicts)
	}
	if len(w.cs.incidents) != 1 {
		t.Fatalf("incidents: %+v", w.cs.incidents)
	}
	inc := w.cs.incidents[0]
	orig := w.cs.change(u.ChangeNumber)
	if inc.CausedBy != orig.SysID || !strings.Contains(inc.Description, "0.2105") || !strings.Contains(inc.Description, u.ChangeNumber) {
		t.Errorf("incident caused by %q (want %q): %s", inc.CausedBy, orig.SysID, inc.Description)
	}
	for _, c := range w.cs.created {
		if c.Type == ops.ChangeEmergency {
			t.Errorf("on_failure incident raised an emergency change: %+v", c)
		}
	}
	// The daemon finds nothing left to do, and does not judge again.
	if _, err := w.svc.AfterCloseWindows(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	w.deliverAll(t)
	if _, verdicts := w.windowVerdicts(t, u.ID); len(verdicts) != 1 || len(w.cs.incidents) != 1 {
		t.Errorf("after a daemon pass: verdicts %v, %d incidents", verdicts, len(w.cs.incidents))
	}
}

// TestVerifyAfterCloseAlertRecordsOnly: on_failure alert after the close
// records the failure (audit, run log) and nothing else: no incident, no
// emergency change, the release kept.
func TestVerifyAfterCloseAlertRecordsOnly(t *testing.T) {
	w, _ := afterCloseWorld(t, "alert")
	first := w.proposeApproved(t, "1.0.0")
	if _, err := w.svc.Run(context.Background(), ops.RunRequest{Update: first.ID}); err != nil {
		t.Fatalf("healthy release: %v", err)
	}
	u := w.proposeApproved(t, "2.0.0-degraded")
	res, err := w.svc.Run(context.Background(), ops.RunRequest{Update: u.ID})
	if err != nil || res.Update.State != ops.UpdateSucceeded {
		t.Fatalf("run: %v, update %s", err, res.Update.State)
	}
	w.deliverAll(t)
	if _, verdicts := w.windowVerdicts(t, u.ID); len(verdicts) != 1 || verdicts[0] != "failed alert" {
		t.Errorf("verdicts %v", verdicts)
	}
	if len(w.cs.incidents) != 0 || len(w.cs.created) != 2 {
		t.Errorf("alert mode opened %d incident(s) and raised %d change(s) (want 0 and the 2 releases')", len(w.cs.incidents), len(w.cs.created))
	}
	if v := w.fleet.version("p1"); v != "2.0.0-degraded" {
		t.Errorf("fleet runs %s", v)
	}
	log, err := w.svc.RunLogText(context.Background(), res.Run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log, "verification window after the close failed") || !strings.Contains(log, "0.2105") {
		t.Errorf("run log lacks the failure and its numbers:\n%s", log)
	}
}

// TestVerifyAfterCloseWindowOfAStoppedProcessIsTakenOver: the process in
// the window after the close is stopped before its verdict; it judges
// nothing. Another process (the daemon) takes the window over, judges it
// and rolls back through one emergency change whose parent is the
// original change; the change waits for authorization, and once it is
// authorized the daemon closes it successful. Passes after that change
// nothing.
func TestVerifyAfterCloseWindowOfAStoppedProcessIsTakenOver(t *testing.T) {
	w, wf := afterCloseWorld(t, "rollback")
	first := w.proposeApproved(t, "1.0.0")
	if _, err := w.svc.Run(context.Background(), ops.RunRequest{Update: first.ID}); err != nil {
		t.Fatalf("healthy release: %v", err)
	}
	u := w.proposeApproved(t, "2.0.0-degraded")
	wf.hang.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	before := wf.bakes.Load()
	go func() {
		_, err := w.svc.Run(ctx, ops.RunRequest{Update: u.ID})
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for wf.bakes.Load() < before+2 {
		if time.Now().After(deadline) {
			t.Fatal("the window never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, ops.ErrRunInterrupted) {
		t.Fatalf("stopped in the window: %v", err)
	}
	if _, verdicts := w.windowVerdicts(t, u.ID); len(verdicts) != 0 {
		t.Fatalf("a stopped window judged: %v", verdicts)
	}
	w.deliverAll(t)
	orig := w.cs.change(u.ChangeNumber)
	if orig.State != ops.ChangeClosed || orig.CloseCode != "successful" {
		t.Fatalf("original change %s %s", orig.State, orig.CloseCode)
	}

	wf.hang.Store(false)
	daemon := w.serviceOn(t, "host:2", wf)
	if _, err := daemon.AfterCloseWindows(context.Background(), nil); err != nil {
		t.Fatalf("daemon pass: %v", err)
	}
	if v := w.fleet.version("p1") + "," + w.fleet.version("p2"); v != "1.0.0,1.0.0" {
		t.Fatalf("after the daemon's verdict the fleet runs %s", v)
	}
	w.deliverAll(t)
	var emergency []ops.ChangeRequest
	for _, c := range w.cs.created {
		if c.Type == ops.ChangeEmergency {
			emergency = append(emergency, c)
		}
	}
	if len(emergency) != 1 || emergency[0].Parent != orig.SysID || !strings.Contains(emergency[0].Description, "0.2105") {
		t.Fatalf("emergency changes: %+v", emergency)
	}
	eu, err := daemon.GetUpdate(context.Background(), u.ID+"-emergency")
	if err != nil || eu.State != ops.UpdateSucceeded || !eu.Rollback || eu.ChangeType != ops.ChangeEmergency {
		t.Fatalf("emergency rollback update: %+v, %v", eu, err)
	}
	ech := w.cs.change(eu.ChangeNumber)
	if ech.State != ops.ChangeAuthorize {
		t.Fatalf("emergency change %s before authorization, want Authorize", ech.State)
	}
	if len(w.cs.incidents) != 1 || w.cs.incidents[0].CausedBy != orig.SysID {
		t.Fatalf("incidents: %+v", w.cs.incidents)
	}
	// Not authorized yet: a pass leaves it open.
	w.sync(t)
	if _, err := daemon.AfterCloseWindows(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	w.deliverAll(t)
	if ech := w.cs.change(eu.ChangeNumber); ech.State != ops.ChangeAuthorize {
		t.Fatalf("unauthorized emergency change moved to %s", ech.State)
	}
	w.cs.approve(eu.ChangeNumber)
	w.sync(t)
	for range 2 {
		if _, err := daemon.AfterCloseWindows(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		w.deliverAll(t)
		w.sync(t)
	}
	if ech := w.cs.change(eu.ChangeNumber); ech.State != ops.ChangeClosed || ech.CloseCode != "successful" {
		t.Errorf("authorized emergency change %s %s, want closed successful", ech.State, ech.CloseCode)
	}
	if _, verdicts := w.windowVerdicts(t, u.ID); len(verdicts) != 1 || verdicts[0] != "failed rollback" {
		t.Errorf("verdicts %v", verdicts)
	}
	closes := 0
	for _, c := range w.cs.calls {
		if c == "close" {
			closes++
		}
	}
	if len(w.cs.incidents) != 1 || closes != 3 { // the two releases' changes and the emergency change
		t.Errorf("%d incidents, %d closes", len(w.cs.incidents), closes)
	}
}

// TestVerifyAfterCloseFirstReleaseCannotRollBack: a first release has
// nothing to roll back to; the failed window says so in the incident and
// the run's error, and raises no emergency change.
func TestVerifyAfterCloseFirstReleaseCannotRollBack(t *testing.T) {
	w, _ := afterCloseWorld(t, "rollback")
	u := w.proposeApproved(t, "1.0.0-degraded")
	_, err := w.svc.Run(context.Background(), ops.RunRequest{Update: u.ID})
	if !errors.Is(err, ops.ErrRunFailed) || !strings.Contains(err.Error(), "could NOT be rolled back") {
		t.Fatalf("run: %v", err)
	}
	w.deliverAll(t)
	if len(w.cs.created) != 1 || len(w.cs.incidents) != 1 || !strings.Contains(w.cs.incidents[0].Description, "could NOT roll the release back") {
		t.Fatalf("%d change(s) raised, incidents %+v", len(w.cs.created), w.cs.incidents)
	}
	if _, err := w.svc.GetUpdate(context.Background(), u.ID+"-emergency"); !errors.Is(err, ops.ErrNotFound) {
		t.Errorf("an emergency rollback with nothing to roll back to: %v", err)
	}
}

// TestVerifyAfterCloseEmergencyRollbackStoppedMidwayIsRecovered: the
// process is stopped while its emergency rollback is between batches; the
// rollback run is left resumable and another process recovers it to the
// end, under the same emergency change (no second one, no second
// incident).
func TestVerifyAfterCloseEmergencyRollbackStoppedMidwayIsRecovered(t *testing.T) {
	w, wf := afterCloseWorld(t, "rollback")
	first := w.proposeApproved(t, "1.0.0")
	if _, err := w.svc.Run(context.Background(), ops.RunRequest{Update: first.ID}); err != nil {
		t.Fatalf("healthy release: %v", err)
	}
	u := w.proposeApproved(t, "2.0.0-degraded")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once atomic.Bool
	w.fleet.onDeploy = func(req ops.StepRequest) {
		if req.Version == "1.0.0" && once.CompareAndSwap(false, true) {
			cancel() // a signal while the rollback's first batch deploys
		}
	}
	_, err := w.svc.Run(ctx, ops.RunRequest{Update: u.ID})
	if !errors.Is(err, ops.ErrRunInterrupted) {
		t.Fatalf("stopped in the emergency rollback: %v", err)
	}
	if v := w.fleet.version("p1") + "," + w.fleet.version("p2"); v != "1.0.0,2.0.0-degraded" {
		t.Fatalf("stopped between the rollback's batches, the fleet runs %s", v)
	}
	w.fleet.onDeploy = nil
	daemon := w.serviceOn(t, "host:2", wf)
	if _, err := daemon.RecoverRuns(context.Background(), nil); err != nil {
		t.Fatalf("recover: %v", err)
	}
	if v := w.fleet.version("p1") + "," + w.fleet.version("p2"); v != "1.0.0,1.0.0" {
		t.Fatalf("after recovery the fleet runs %s", v)
	}
	if _, err := daemon.AfterCloseWindows(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	w.deliverAll(t)
	eu, err := daemon.GetUpdate(context.Background(), u.ID+"-emergency")
	if err != nil || eu.State != ops.UpdateSucceeded {
		t.Fatalf("emergency rollback update: %+v, %v", eu, err)
	}
	emergency := 0
	for _, c := range w.cs.created {
		if c.Type == ops.ChangeEmergency {
			emergency++
		}
	}
	if emergency != 1 || len(w.cs.incidents) != 1 {
		t.Errorf("%d emergency change(s), %d incident(s); want one each", emergency, len(w.cs.incidents))
	}
}
