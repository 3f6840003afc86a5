package ops

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// baselineFor returns the targets not yet updated when batch runs: those
// of the later batches, still on the previous release. Metric checks
// compare the batch with them.
func (r *runner) baselineFor(batch int) []Target {
	targets := r.targets()
	var out []Target
	for _, b := range r.plan.Batches {
		if b.Index <= batch {
			continue
		}
		for _, name := range b.Targets {
			if t, ok := targets[name]; ok {
				out = append(out, t)
			}
		}
	}
	return out
}

// metricVerdict records a metric check's verdict: in the run log (as a
// run event, so the console's run monitor shows it) and in the audit log,
// numbers included. The batch's work note carries it through the bake's
// evidence.
func (r *runner) metricVerdict(batch int, v MetricVerdict) {
	state := EventAnalysisPassed
	if !v.Passed() {
		state = EventAnalysisFailed
	}
	r.emit(RunEvent{Batch: batch, Target: v.Target, Step: StepBake, State: state, Message: "metric verdict: " + v.String()})
	if r.lost.Load() {
		return
	}
	// The verdict happened whatever becomes of the run: record it even if
	// the run is being stopped.
	ctx := context.WithoutCancel(r.work)
	ev := Event{Action: "analysis.verdict", Subject: v.Target, Environment: r.env.Name, UpdateID: r.u.ID,
		ChangeNumber: r.u.ChangeNumber, Result: v.Outcome, Detail: map[string]any{
			"run": r.run.ID, "batch": batch, "check": v.Check, "kind": v.Kind, "baseline": strings.Join(v.Baseline, ","),
			"query": v.Query, "reason": v.Reason, "tally": v.Tally, "measurements": v.Measurements, "comparison": v.Comparison,
		}}
	if err := r.s.auditAlone(ctx, ev); err != nil {
		r.s.log.Error("audit of a metric verdict failed", "run", r.run.ID, "target", v.Target, "err", err)
	}
}

// verifyWindow runs the environment's verification window after the last
// batch: every target is baked (health and metric checks, with no
// baseline: every target is updated) for the window, in parallel. done
// reports that the run ended here (rolled back, stopped or fenced off);
// otherwise the caller finishes the run as succeeded. The window is not
// journaled: its checks are read-only, and a run taken over repeats it.
func (r *runner) verifyWindow() (out runOutcome, err error, done bool) {
	v := r.env.Verify
	b, ok := r.health.(Baker)
	if v == nil || v.Window <= 0 || !ok || len(r.env.Health) == 0 {
		return out, nil, false
	}
	r.emit(RunEvent{Step: StepBake, State: EventVerify, Message: fmt.Sprintf("verifying every target for %s (on failure: %s)", v.Window, onFailure(v))})
	ctx, cancel := context.WithCancel(r.work)
	defer cancel()
	stop := context.AfterFunc(r.stop, cancel)
	defer stop()
	var (
		mu       sync.Mutex
		failures []string
	)
	fanOut(len(r.env.Targets), len(r.env.Targets), func(i int) {
		t := r.env.Targets[i]
		req := r.request(t)
		req.RunID, req.Epoch = r.run.ID, r.fence.Epoch
		req.OnVerdict = func(mv MetricVerdict) { r.metricVerdict(0, mv) }
		ev, err := b.Bake(ctx, req, v.Window, r.sink())
		mu.Lock()
		defer mu.Unlock()
		if err != nil && !r.stopping() {
			failures = append(failures, fmt.Sprintf("%s FAILED verification: %v", t.Name, err))
			r.emit(RunEvent{Target: t.Name, Step: StepBake, State: EventVerifyFailed, Message: "verification failed: " + err.Error()})
		} else if err == nil {
			r.emit(RunEvent{Target: t.Name, Step: StepBake, State: EventVerified, Message: "verified: " + ev})
		}
	})
	if r.lost.Load() {
		out, err = r.fenced()
		return out, err, true
	}
	if r.stopping() {
		out, err = r.stopped()
		return out, err, true
	}
	if len(failures) == 0 {
		return out, nil, false
	}
	slices.Sort(failures)
	cause := fmt.Errorf("verification window %s failed: %s", v.Window, strings.Join(failures, "; "))
	if err := r.noteOnce("note:verify", fmt.Sprintf("daytwo run %s, verification window %s after the last batch (%s):\n%s",
		r.run.ID, v.Window, onFailure(v), strings.Join(failures, "\n"))); err != nil {
		out, err = r.abort(err)
		return out, err, true
	}
	actx := context.WithoutCancel(r.work)
	if err := r.s.auditAlone(actx, Event{Action: "run.verify_failed", Subject: r.run.ID, Environment: r.env.Name, UpdateID: r.u.ID,
		ChangeNumber: r.u.ChangeNumber, Result: onFailure(v), Detail: map[string]any{"window": v.Window.String(), "failures": failures}}); err != nil {
		r.s.log.Error("audit of a failed verification failed", "run", r.run.ID, "err", err)
	}
	switch onFailure(v) {
	case "incident":
		out, err = r.finishSucceeded()
		if err == nil && r.env.RequiresChange {
			err = r.s.store.Atomic(actx, func(tx Tx) error {
				inc := IncidentRequest{
					CorrelationID:    r.s.correlationID(r.u.ID) + ":verify-incident",
					ShortDescription: fmt.Sprintf("daytwo: %s on %s failed its verification window", r.u.Version, r.env.Name),
					Description:      fmt.Sprintf("%v\n\nThe release was kept (verify.on_failure: incident). Caused by change %s, update %s, run %s.", cause, r.u.ChangeNumber, r.u.ID, r.run.ID),
					CmdbCI:           r.env.Change.CmdbCI, AssignmentGroup: r.env.Change.AssignmentGroup, Impact: "medium", Urgency: "medium",
				}
				return r.s.enqueue(actx, tx, r.u.ID, OutboxCreateIncident, incidentPayload{UpdateID: r.u.ID, Request: inc})
			})
			r.s.kickOutbox(actx, r.u.ID)
		}
		return out, err, true
	case "alert":
		return out, nil, false
	}
	out, err = r.rollbackAll(cause)
	return out, err, true
}

func onFailure(v *VerifyWindow) string {
	if v.OnFailure == "" {
		return "rollback"
	}
	return v.OnFailure
}
