package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// alertPoll is how often a verification window looks for firing alerts
// (recorded by whichever daytwo process serves POST /alertmanager).
const alertPoll = 250 * time.Millisecond

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
	ev := Event{
		Action: "analysis.verdict", Subject: v.Target, Environment: r.env.Name, UpdateID: r.u.ID,
		ChangeNumber: r.u.ChangeNumber, Result: v.Outcome, Detail: map[string]any{
			"run": r.run.ID, "batch": batch, "check": v.Check, "kind": v.Kind, "baseline": strings.Join(v.Baseline, ","),
			"query": v.Query, "reason": v.Reason, "tally": v.Tally, "measurements": v.Measurements, "comparison": v.Comparison,
		},
	}
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
	if _, ok := r.health.(Baker); v == nil || v.Window <= 0 || !ok || len(r.env.Health) == 0 {
		return out, nil, false
	}
	if r.u.emergencyRollback() || afterClose(r.env, r.u) {
		// An emergency rollback is checked by its own health checks and
		// version probe; an after_close window runs once the change is
		// closed (verify_after_close.go).
		return out, nil, false
	}
	r.emit(RunEvent{Step: StepBake, State: EventVerify, Message: fmt.Sprintf("verifying every target for %s (on failure: %s)", v.Window, onFailure(v))})
	failures := r.watchWindow(v.Window)
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
	cause := fmt.Errorf("verification window %s failed: %s", v.Window, strings.Join(failures, "; "))
	if err := r.noteOnce("note:verify", fmt.Sprintf("daytwo run %s, verification window %s after the last batch (%s):\n%s",
		r.run.ID, v.Window, onFailure(v), strings.Join(failures, "\n"))); err != nil {
		out, err = r.abort(err)
		return out, err, true
	}
	actx := context.WithoutCancel(r.work)
	if err := r.s.auditAlone(actx, Event{
		Action: "run.verify_failed", Subject: r.run.ID, Environment: r.env.Name, UpdateID: r.u.ID,
		ChangeNumber: r.u.ChangeNumber, Result: onFailure(v), Detail: map[string]any{"window": v.Window.String(), "failures": failures},
	}); err != nil {
		r.s.log.Error("audit of a failed verification failed", "run", r.run.ID, "err", err)
	}
	switch onFailure(v) {
	case "incident":
		out, err = r.finishSucceeded()
		if err == nil && r.env.RequiresChange {
			err = r.s.store.Atomic(actx, func(tx Tx) error {
				inc := environmentIncident(r.env, r.s.correlationID(r.u.ID)+":verify-incident",
					fmt.Sprintf("daytwo: %s on %s failed its verification window", r.u.Version, r.env.Name),
					fmt.Sprintf("%v\n\nThe release was kept (verify.on_failure: incident). Caused by change %s, update %s, run %s.", cause, r.u.ChangeNumber, r.u.ID, r.run.ID))
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

// watchWindow bakes every target (health and metric checks, with no
// baseline: every target is updated) for d, in parallel, while watching
// for firing alerts, and returns the failures, sorted. The caller checks
// r.lost and r.stopping() first: a stopped window judged nothing.
func (r *runner) watchWindow(d time.Duration) []string {
	b, ok := r.health.(Baker)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithCancel(r.work)
	defer cancel()
	stop := context.AfterFunc(r.stop, cancel)
	defer stop()
	var (
		mu       sync.Mutex
		failures []string
		alerted  bool
	)
	// A firing alert for the environment fails the window: the watcher
	// records it and cancels the checks.
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		msg, err := r.watchAlerts(ctx)
		if err != nil || msg == "" {
			if err != nil && ctx.Err() == nil {
				r.s.log.Error("verification window: reading alerts failed", "run", r.run.ID, "err", err)
			}
			return
		}
		mu.Lock()
		failures, alerted = append(failures, msg), true
		mu.Unlock()
		r.emit(RunEvent{Step: StepBake, State: "verify_failed", Message: "verification failed: " + msg})
		cancel()
	}()
	fanOut(len(r.env.Targets), len(r.env.Targets), func(i int) {
		t := r.env.Targets[i]
		req := r.request(t)
		req.RunID, req.Epoch = r.run.ID, r.fence.Epoch
		req.OnVerdict = func(mv MetricVerdict) { r.metricVerdict(0, mv) }
		ev, err := b.Bake(ctx, req, d, r.sink())
		mu.Lock()
		defer mu.Unlock()
		if err != nil && alerted && errors.Is(err, context.Canceled) {
			return // stopped by the alert, which is the failure
		}
		if err != nil && !r.stopping() {
			failures = append(failures, fmt.Sprintf("%s FAILED verification: %v", t.Name, err))
			r.emit(RunEvent{Target: t.Name, Step: StepBake, State: EventVerifyFailed, Message: "verification failed: " + err.Error()})
		} else if err == nil {
			r.emit(RunEvent{Target: t.Name, Step: StepBake, State: EventVerified, Message: "verified: " + ev})
		}
	})
	cancel()
	<-watched
	slices.Sort(failures)
	return failures
}

func onFailure(v *VerifyWindow) string {
	if v.OnFailure == "" {
		return "rollback"
	}
	return v.OnFailure
}

// watchAlerts returns a firing alert for the run's environment recorded
// since the run started (by POST /alertmanager, in this process or
// another on the same store), described with its labels and annotations;
// "" when ctx ends first.
func (r *runner) watchAlerts(ctx context.Context) (string, error) {
	since := r.run.StartedAt
	var after int64
	first := true
	tick := time.NewTicker(alertPoll)
	defer tick.Stop()
	for {
		f := EventFilter{Environment: r.env.Name, AfterSeq: after}
		if first {
			f.Limit = 1000 // the newest: alerts before the run began do not count
		}
		evs, err := r.s.store.ListEvents(ctx, f)
		if err != nil {
			return "", err
		}
		first = false
		for _, e := range evs {
			after = max(after, e.Seq)
			if e.Action == "alert.firing" && !e.Time.Before(since) {
				return describeAlert(e), nil
			}
		}
		select {
		case <-ctx.Done():
			return "", nil
		case <-tick.C:
		}
	}
}

func describeAlert(e Event) string {
	msg := fmt.Sprintf("alert %s firing on %s", e.Subject, e.Environment)
	if svc, ok := e.Detail["service"].(string); ok && svc != "" {
		msg += " (service " + svc + ")"
	}
	if ann, ok := e.Detail["annotations"].(map[string]any); ok {
		for _, k := range []string{"summary", "description"} {
			if v, ok := ann[k].(string); ok && v != "" {
				msg += ": " + v
				break
			}
		}
	}
	if s, ok := e.Detail["starts_at"].(string); ok {
		msg += ", since " + s
	}
	if src, ok := e.Detail["source"].(string); ok && src != "" {
		msg += ", from " + src
	}
	return msg
}
