package ops

import (
	"context"
	"strings"
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
	state := "analysis_passed"
	if !v.Passed() {
		state = "analysis_failed"
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
