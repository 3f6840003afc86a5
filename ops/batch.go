package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// deployBatch deploys ts with one call of a BatchExecutor, then checks each
// target's health. Each target's deploy is journaled as its own step, as
// deployTarget does; only the program is shared.
func (r *runner) deployBatch(be BatchExecutor, batch int, ts []Target) []targetResult {
	results := make([]targetResult, len(ts))
	reqs := make([]StepRequest, len(ts))
	for i, t := range ts {
		results[i].target = t.Name
		reqs[i] = r.request(t)
		r.emit(RunEvent{Batch: batch, Target: t.Name, Step: StepDeploy, State: EventStarted, Message: fmt.Sprintf("deploying %s", r.u.Version)})
	}
	errs := r.batchStep(batch, StepDeploy, r.u.Version, reqs, func(ctx context.Context, reqs []StepRequest) map[string]error {
		return be.DeployBatch(ctx, reqs, r.sink())
	})
	fanOut(len(ts), r.env.Strategy.MaxParallel, func(i int) {
		t, res := ts[i], &results[i]
		if err := errs[t.Name]; err != nil {
			res.err = err
			if !busy(err) {
				r.emit(RunEvent{Batch: batch, Target: t.Name, Step: StepDeploy, State: EventFailed, Message: "deploy failed: " + err.Error()})
			}
			return
		}
		if hb, ok := r.health.(BatchHealthChecker); !ok || !hb.ChecksByBatch() || len(r.env.Health) == 0 {
			r.checkDeployed(batch, t, reqs[i], res)
		}
	})
	if hb, ok := r.health.(BatchHealthChecker); ok && hb.ChecksByBatch() && len(r.env.Health) > 0 {
		r.checkBatch(hb, batch, ts, reqs, results)
	}
	return results
}

// BatchHealthChecker checks a batch's targets together (e.g. one
// ansible-playbook run over the batch's hosts) when ChecksByBatch says
// so. A target missing from errs failed.
type BatchHealthChecker interface {
	HealthChecker
	ChecksByBatch() bool
	CheckBatch(ctx context.Context, reqs []StepRequest, log LogSink) (evidence map[string]string, errs map[string]error)
}

// checkBatch runs the health step of the batch's deployed targets with
// one CheckBatch call, each target's step journaled as checkDeployed does.
func (r *runner) checkBatch(hb BatchHealthChecker, batch int, ts []Target, reqs []StepRequest, results []targetResult) {
	var idx []int
	var hreqs []StepRequest
	for i := range ts {
		if results[i].err == nil {
			idx, hreqs = append(idx, i), append(hreqs, reqs[i])
			r.emit(RunEvent{Batch: batch, Target: ts[i].Name, Step: StepHealth, State: "started", Message: "checking health (with the batch)"})
		}
	}
	if len(hreqs) == 0 {
		return
	}
	var evidence map[string]string
	errs := r.batchStep(batch, StepHealth, r.u.Version, hreqs, func(ctx context.Context, reqs []StepRequest) map[string]error {
		var errs map[string]error
		evidence, errs = hb.CheckBatch(ctx, reqs, r.sink())
		return errs
	})
	for _, i := range idx {
		t, res := ts[i], &results[i]
		if err := errs[t.Name]; err != nil {
			res.err = err
			if !busy(err) {
				r.emit(RunEvent{Batch: batch, Target: t.Name, Step: StepHealth, State: "failed", Message: "health check failed: " + err.Error()})
			}
			continue
		}
		res.ok, res.evidence = true, evidence[t.Name]
		r.emit(RunEvent{Batch: batch, Target: t.Name, Step: StepDeploy, State: "succeeded", Message: "healthy: " + res.evidence})
	}
}

// rollbackBatch returns ts to the previous release with one call of a
// BatchRollbacker, then checks each restored target's health; it returns
// each target's error (nil: restored), journaled as rollbackTarget does.
func (r *runner) rollbackBatch(br BatchRollbacker, ts []Target) map[string]error {
	reqs := make([]StepRequest, len(ts))
	for i, t := range ts {
		reqs[i] = r.request(t)
		reqs[i].Rollback = true
		r.emit(RunEvent{Target: t.Name, Step: StepRollback, State: EventStarted, Message: fmt.Sprintf("rolling back to %s", r.from.Version)})
	}
	errs := r.batchStep(0, StepRollback, r.from.Version, reqs, func(ctx context.Context, reqs []StepRequest) map[string]error {
		return br.RollbackBatch(ctx, reqs, r.sink())
	})
	// Health checks that run by batch check the restored targets together.
	var herrs map[string]error
	if hb, ok := r.health.(BatchHealthChecker); ok && hb.ChecksByBatch() && len(r.env.Health) > 0 {
		var back []StepRequest
		for _, t := range ts {
			if errs[t.Name] == nil {
				back = append(back, r.back(t))
			}
		}
		herrs = r.batchStep(0, StepHealth, r.from.Version, back, func(ctx context.Context, reqs []StepRequest) map[string]error {
			_, errs := hb.CheckBatch(ctx, reqs, r.sink())
			return errs
		})
	}
	var mu sync.Mutex
	out := make(map[string]error, len(ts))
	fanOut(len(ts), r.env.Strategy.MaxParallel, func(i int) {
		t := ts[i]
		err := errs[t.Name]
		if err == nil && herrs != nil {
			err = herrs[t.Name]
		} else if err == nil && r.health != nil && len(r.env.Health) > 0 {
			err = r.step(0, t.Name, StepHealth, r.from.Version, r.back(t), func(ctx context.Context, req StepRequest) (string, error) {
				return r.health.Check(ctx, req, r.sink())
			})
		}
		mu.Lock()
		out[t.Name] = err
		mu.Unlock()
		if busy(err) {
			return
		}
		state, msg := EventSucceeded, "back on "+r.from.Version
		if err != nil {
			state, msg = EventFailed, "rollback failed: "+err.Error()
		}
		r.emit(RunEvent{Target: t.Name, Step: StepRollback, State: state, Message: msg})
	})
	return out
}

// batchStep journals fn as one step per target of reqs, as step does for
// one: every target is locked (in name order) before any step is
// journaled as started, each target's lock is let go once its step's
// process is journaled, and each step is journaled as finished with that
// target's own result. A target missing from fn's result failed.
func (r *runner) batchStep(batch int, step, version string, reqs []StepRequest, fn func(ctx context.Context, reqs []StepRequest) map[string]error) map[string]error {
	out := make(map[string]error, len(reqs))
	failAll := func(err error) map[string]error {
		for _, q := range reqs {
			out[q.Target.Name] = err
		}
		return out
	}
	order := make([]int, len(reqs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(reqs[a].Target.Name, reqs[b].Target.Name) })
	releases := make([]func(), len(reqs))
	defer func() {
		for _, rel := range releases {
			if rel != nil {
				rel()
			}
		}
	}()
	lockCtx, cancel := context.WithTimeout(r.work, r.s.leaseTTL)
	for _, i := range order {
		unlock, err := r.s.locks.Lock(lockCtx, r.env.Name, reqs[i].Target.Name)
		if err != nil {
			cancel()
			if r.lost.Load() {
				return failAll(fmt.Errorf("journal: %w", ErrLeaseLost))
			}
			return failAll(&errTargetBusy{target: reqs[i].Target.Name, err: err})
		}
		var once sync.Once
		releases[i] = func() { once.Do(unlock) }
	}
	cancel()
	jctx := r.work
	ids := make([]int64, len(reqs))
	for i := range reqs {
		id, err := r.s.store.StepStarted(jctx, r.fence, StepRecord{RunID: r.run.ID, Batch: batch, Target: reqs[i].Target.Name, Step: step, Version: version})
		if err != nil {
			r.check(err)
			return failAll(fmt.Errorf("journal: %w", err))
		}
		ids[i] = id
		release := releases[i]
		reqs[i].RunID, reqs[i].Epoch = r.run.ID, r.fence.Epoch
		reqs[i].OnStart = func(pid int) error {
			defer release()
			if err := r.s.store.StepProcess(jctx, r.fence, id, pid); err != nil {
				r.check(err)
				return err
			}
			return nil
		}
	}
	res := fn(r.work, reqs)
	for i, q := range reqs {
		err, ok := res[q.Target.Name]
		if !ok {
			err = errors.New("the executor reported no result for this target")
		}
		state, detail := StepSucceeded, ""
		if err != nil {
			state, detail = StepFailed, err.Error()
		}
		if jerr := r.s.store.StepFinished(jctx, r.fence, ids[i], state, detail); jerr != nil {
			r.check(jerr)
			err = errors.Join(err, fmt.Errorf("journal: %w", jerr))
		}
		out[q.Target.Name] = err
	}
	return out
}

// pick returns the targets named, in that order.
func pick(targets map[string]Target, names []string) []Target {
	out := make([]Target, len(names))
	for i, n := range names {
		out[i] = targets[n]
	}
	return out
}

// rollbackTouched rolls back with a BatchRollbacker every touched target
// that no earlier holder restored; it returns the failures, in target
// order, and whether a target was still locked by another process.
func (r *runner) rollbackTouched(br BatchRollbacker, touched []string, view *journalView, targets map[string]Target) (failed []string, wasBusy bool) {
	var ts []Target
	for _, name := range touched {
		if !view.target(name).restored {
			ts = append(ts, targets[name])
		}
	}
	if len(ts) == 0 {
		return nil, false
	}
	errs := r.rollbackBatch(br, ts)
	for _, t := range ts {
		switch err := errs[t.Name]; {
		case err == nil:
		case busy(err):
			wasBusy = true
		default:
			failed = append(failed, fmt.Sprintf("%s: %v", t.Name, err))
		}
	}
	return failed, wasBusy
}
