package ops

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// Lease timing: a run holds its environment's lease for leaseTTL and renews
// it every leaseRenew; a process that dies loses the lease within leaseTTL.
const (
	leaseTTL   = 60 * time.Second
	leaseRenew = 20 * time.Second
)

// WithExecutors sets how environments' steps are executed.
func WithExecutors(e Executors) Option { return func(s *Service) { s.executors = e } }

// WithHolder names this process in leases and runs (default host:pid).
func WithHolder(h string) Option { return func(s *Service) { s.holder = h } }

func defaultHolder() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", host, os.Getpid())
}

func newRunID() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return "r-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// RunEvent reports progress of a run, as it happens.
type RunEvent struct {
	RunID   string    `json:"run_id"`
	Time    time.Time `json:"time"`
	Batch   int       `json:"batch,omitempty"`
	Target  string    `json:"target,omitempty"`
	Step    string    `json:"step,omitempty"`
	State   string    `json:"state"`
	Message string    `json:"message"`
}

// RunRequest asks to run an update.
type RunRequest struct {
	// Update is an update id or its change number.
	Update string
	// Progress, if set, receives events as the run goes (from several
	// goroutines, one at a time).
	Progress func(RunEvent)
}

// RunResult is the outcome of Run.
type RunResult struct {
	Run    Run    `json:"run"`
	Update Update `json:"update"`
	Gate   GateResult
}

// ErrRunFailed reports a run whose release failed (and was rolled back).
var ErrRunFailed = errors.New("rollout failed")

// Run executes an update once its gate is open: it takes the environment's
// lease, moves the change to Implement, rolls out batch by batch with health
// checks, and on too many failures rolls every touched target back. The
// journal records every step before and after it runs. Evidence goes to
// ServiceNow through the outbox. A closed gate returns an error wrapping
// ErrApprovalPending or ErrBlocked with every reason.
func (s *Service) Run(ctx context.Context, req RunRequest) (RunResult, error) {
	u, err := s.store.GetUpdate(ctx, req.Update)
	if err != nil {
		return RunResult{}, err
	}
	g, err := s.Gate(ctx, u)
	if err != nil {
		return RunResult{}, err
	}
	res := RunResult{Update: u, Gate: g}
	if !g.Open {
		return res, fmt.Errorf("update %s may not run: %w", u.ID, g.Err())
	}
	env, _ := s.Environment(u.Environment)
	runID := s.newRunID()
	s.active.Store(runID, true) // before the run row exists: recovery must never see it as orphaned
	defer s.active.Delete(runID)
	if _, err := s.store.AcquireLease(ctx, env.Name, s.holder, runID, leaseTTL); err != nil {
		return res, fmt.Errorf("%v: %w", err, ErrBlocked)
	}
	defer s.store.ReleaseLease(context.WithoutCancel(ctx), env.Name, s.holder)

	releases, err := s.store.CurrentReleases(ctx)
	if err != nil {
		return res, err
	}
	from := releases[env.Name]
	run := Run{ID: runID, UpdateID: u.ID, Environment: env.Name, Kind: RunRollout, State: RunRunning, Holder: s.holder}
	if u.Rollback {
		run.Kind = RunRollback
	}
	err = s.store.Atomic(ctx, func(tx Tx) error {
		cur, err := tx.GetUpdate(ctx, u.ID)
		if err != nil {
			return err
		}
		expect := cur.State
		cur.State = UpdateRunning
		if !env.RequiresChange { // ungated: run today's plan
			if cur.Plan, err = json.Marshal(g.Plan); err != nil {
				return err
			}
			cur.PlanDigest = g.Plan.Digest()
			cur.FromVersion = from.Version
		}
		if err := tx.SaveUpdate(ctx, cur, expect); err != nil {
			return err
		}
		u = cur
		if err := tx.InsertRun(ctx, run); err != nil {
			return err
		}
		if env.RequiresChange {
			if err := s.enqueue(ctx, tx, u.ID, OutboxMoveChange, movePayload{UpdateID: u.ID, To: ChangeImplement}); err != nil {
				return err
			}
			note := fmt.Sprintf("daytwo run %s started by %s on %s: %s → %s, plan sha256:%s, %d batch(es).",
				run.ID, s.cfg.Actor, s.holder, orNone(from.Version), u.Version, u.PlanDigest, len(g.Plan.Batches))
			if err := s.enqueue(ctx, tx, u.ID, OutboxWorkNote, notePayload{UpdateID: u.ID, Note: note}); err != nil {
				return err
			}
		}
		return s.audit(ctx, tx, Event{Action: "run.started", Subject: run.ID, Environment: env.Name, UpdateID: u.ID,
			ChangeNumber: u.ChangeNumber, Result: "ok", Detail: map[string]any{"version": u.Version, "from_version": from.Version,
				"plan_digest": u.PlanDigest, "holder": s.holder}})
	})
	if err != nil {
		return res, err
	}
	s.kickOutbox(ctx, u.ID)
	r := s.newRunner(ctx, env, u, run, from, g.Plan, req.Progress)
	defer r.close()
	out, err := r.execute(ctx, nil)
	res.Run, res.Update = out.run, out.update
	return res, err
}

// enqueue adds an outbox item inside tx.
func (s *Service) enqueue(ctx context.Context, tx Tx, key string, kind OutboxKind, payload any) error {
	it, err := NewOutboxItem(key, kind, payload)
	if err != nil {
		return err
	}
	_, err = tx.Enqueue(ctx, it)
	return err
}

// kickOutbox tries to deliver an update's queued writes now, briefly, in
// the background; whatever is not delivered waits for the daemon.
func (s *Service) kickOutbox(ctx context.Context, key string) {
	if s.changes == nil {
		return
	}
	s.outboxWG.Add(1)
	go func() {
		defer s.outboxWG.Done()
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		s.outboxMu.Lock() // one delivery pass at a time per process keeps order simple
		defer s.outboxMu.Unlock()
		if _, err := s.DeliverOutbox(dctx, key); err != nil {
			s.log.Debug("outbox delivery deferred", "key", key, "err", err)
		}
	}()
}

// Wait blocks until background outbox deliveries started by this service
// have finished (for short-lived CLI processes).
func (s *Service) Wait() { s.outboxWG.Wait() }

// runner executes one run.
type runner struct {
	s         *Service
	env       Environment
	u         Update
	run       Run
	from      Release
	plan      Plan
	exec      Executor
	health    HealthChecker
	progress  func(RunEvent)
	progMu    sync.Mutex
	logs      *logBuffer
	stopRenew context.CancelFunc
}

type runOutcome struct {
	run    Run
	update Update
}

func (s *Service) newRunner(ctx context.Context, env Environment, u Update, run Run, from Release, plan Plan, progress func(RunEvent)) *runner {
	r := &runner{s: s, env: env, u: u, run: run, from: from, plan: plan, progress: progress}
	r.logs = newLogBuffer(s.store, run.ID, s.log)
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.stopRenew = cancel
	go func() {
		t := time.NewTicker(leaseRenew)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
				if _, err := s.store.AcquireLease(rctx, env.Name, s.holder, run.ID, leaseTTL); err != nil {
					s.log.Error("lease renewal failed", "env", env.Name, "run", run.ID, "err", err)
				}
			}
		}
	}()
	return r
}

func (r *runner) close() {
	r.stopRenew()
	r.logs.close()
}

func (r *runner) emit(ev RunEvent) {
	ev.RunID, ev.Time = r.run.ID, r.s.now()
	if ev.Message != "" {
		r.logs.add(LogLine{RunID: r.run.ID, Target: ev.Target, Stream: "daytwo", Line: ev.Message})
	}
	if r.progress != nil {
		r.progMu.Lock()
		r.progress(ev)
		r.progMu.Unlock()
	}
}

func (r *runner) sink() LogSink {
	return func(target, stream, line string) {
		r.logs.add(LogLine{RunID: r.run.ID, Target: target, Stream: stream, Line: line})
	}
}

func (r *runner) request(target Target) StepRequest {
	return StepRequest{Environment: r.env.Name, Target: target, Version: r.u.Version, PreviousVersion: r.from.Version,
		Config: r.u.Config, PreviousConfig: r.from.Config, Change: r.u.ChangeNumber}
}

// targetResult is one target's outcome in a batch.
type targetResult struct {
	target   string
	ok       bool
	evidence string
	err      error
}

// execute rolls the plan out. done lists targets already deployed and
// healthy by this run (when resuming after a crash).
func (r *runner) execute(ctx context.Context, done map[string]bool) (runOutcome, error) {
	var err error
	if r.exec, r.health, err = r.s.executors(r.env); err != nil {
		return r.finishFailed(ctx, nil, fmt.Errorf("cannot build the executor for %s: %w", r.env.Name, err))
	}
	targets := map[string]Target{}
	for _, t := range r.env.Targets {
		targets[t.Name] = t
	}
	var touched []string
	failures := 0
	maxParallel := max(1, r.env.Strategy.MaxParallel)
	for bi, batch := range r.plan.Batches {
		if bi > 0 && r.env.Strategy.Pause > 0 {
			r.emit(RunEvent{Batch: batch.Index, State: "pause", Message: fmt.Sprintf("pausing %s before batch %d", r.env.Strategy.Pause, batch.Index)})
			if err := sleepCtx(ctx, r.env.Strategy.Pause); err != nil {
				return r.interrupted(ctx, touched, err)
			}
		}
		r.emit(RunEvent{Batch: batch.Index, State: "batch", Message: fmt.Sprintf("batch %d/%d: %s", batch.Index, len(r.plan.Batches), strings.Join(batch.Targets, ", "))})
		results := make([]targetResult, len(batch.Targets))
		sem := make(chan struct{}, maxParallel)
		var wg sync.WaitGroup
		for i, name := range batch.Targets {
			touched = append(touched, name)
			if done[name] {
				results[i] = targetResult{target: name, ok: true, evidence: "already deployed by this run before it was interrupted"}
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				results[i] = r.deployTarget(ctx, batch.Index, targets[name])
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return r.interrupted(ctx, touched, ctx.Err())
		}
		var evidence []string
		for _, res := range results {
			if !res.ok {
				failures++
				evidence = append(evidence, fmt.Sprintf("%s FAILED: %v", res.target, res.err))
			} else {
				evidence = append(evidence, fmt.Sprintf("%s ok: %s", res.target, res.evidence))
			}
		}
		if failures <= r.env.Strategy.MaxFailures && r.env.Strategy.Bake > 0 && r.health != nil && len(r.env.Health) > 0 {
			bakeEv, bakeFailed := r.bake(ctx, batch, targets)
			if ctx.Err() != nil {
				return r.interrupted(ctx, touched, ctx.Err())
			}
			failures += bakeFailed
			evidence = append(evidence, bakeEv...)
		}
		r.note(ctx, fmt.Sprintf("daytwo run %s, batch %d/%d (%s) → %s:\n%s", r.run.ID, batch.Index, len(r.plan.Batches),
			strings.Join(batch.Targets, ", "), r.u.Version, strings.Join(evidence, "\n")))
		if failures > r.env.Strategy.MaxFailures {
			cause := fmt.Errorf("%d target(s) failed, more than max_failures %d: %s", failures, r.env.Strategy.MaxFailures, strings.Join(evidence, "; "))
			return r.rollbackAll(ctx, touched, cause)
		}
	}
	return r.finishSucceeded(ctx)
}

// deployTarget deploys one target and checks its health, journaling each
// step before and after.
func (r *runner) deployTarget(ctx context.Context, batch int, t Target) targetResult {
	req := r.request(t)
	res := targetResult{target: t.Name}
	r.emit(RunEvent{Batch: batch, Target: t.Name, Step: StepDeploy, State: "started", Message: fmt.Sprintf("deploying %s", r.u.Version)})
	if err := r.step(ctx, batch, t.Name, StepDeploy, r.u.Version, func() (string, error) {
		return "", r.exec.Deploy(ctx, req, r.sink())
	}); err != nil {
		res.err = err
		r.emit(RunEvent{Batch: batch, Target: t.Name, Step: StepDeploy, State: "failed", Message: "deploy failed: " + err.Error()})
		return res
	}
	if r.health != nil && len(r.env.Health) > 0 {
		r.emit(RunEvent{Batch: batch, Target: t.Name, Step: StepHealth, State: "started", Message: "checking health"})
		var ev string
		err := r.step(ctx, batch, t.Name, StepHealth, r.u.Version, func() (string, error) {
			var err error
			ev, err = r.health.Check(ctx, req, r.sink())
			return ev, err
		})
		if err != nil {
			res.err = err
			r.emit(RunEvent{Batch: batch, Target: t.Name, Step: StepHealth, State: "failed", Message: "health check failed: " + err.Error()})
			return res
		}
		res.evidence = ev
	} else {
		res.evidence = "deployed (no health checks configured)"
	}
	res.ok = true
	r.emit(RunEvent{Batch: batch, Target: t.Name, Step: StepDeploy, State: "succeeded", Message: "healthy: " + res.evidence})
	return res
}

// step journals fn as one step: started before, finished after.
func (r *runner) step(ctx context.Context, batch int, target, step, version string, fn func() (string, error)) error {
	jctx := context.WithoutCancel(ctx) // the journal must be written whatever happens to ctx
	id, err := r.s.store.StepStarted(jctx, StepRecord{RunID: r.run.ID, Batch: batch, Target: target, Step: step, Version: version})
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	detail, err := fn()
	state := StepSucceeded
	if err != nil {
		state, detail = StepFailed, err.Error()
	}
	if jerr := r.s.store.StepFinished(jctx, id, state, detail); jerr != nil {
		return errors.Join(err, fmt.Errorf("journal: %w", jerr))
	}
	return err
}

// bake keeps checking a batch's targets for the bake period.
func (r *runner) bake(ctx context.Context, batch Batch, targets map[string]Target) ([]string, int) {
	d := r.env.Strategy.Bake
	r.emit(RunEvent{Batch: batch.Index, Step: StepBake, State: "started", Message: fmt.Sprintf("baking batch %d for %s", batch.Index, d)})
	var (
		mu       sync.Mutex
		evidence []string
		failed   int
		wg       sync.WaitGroup
	)
	for _, name := range batch.Targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := r.request(targets[name])
			var ev string
			err := r.step(ctx, batch.Index, name, StepBake, r.u.Version, func() (string, error) {
				var err error
				if b, ok := r.health.(Baker); ok {
					ev, err = b.Bake(ctx, req, d, r.sink())
				} else {
					ev, err = bakeByChecks(ctx, r.health, req, d, r.sink())
				}
				return ev, err
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				evidence = append(evidence, fmt.Sprintf("%s FAILED during bake: %v", name, err))
				r.emit(RunEvent{Batch: batch.Index, Target: name, Step: StepBake, State: "failed", Message: "bake failed: " + err.Error()})
			} else {
				evidence = append(evidence, fmt.Sprintf("%s baked: %s", name, ev))
			}
		}()
	}
	wg.Wait()
	return evidence, failed
}

func bakeByChecks(ctx context.Context, h HealthChecker, req StepRequest, d time.Duration, log LogSink) (string, error) {
	deadline := time.Now().Add(d)
	rounds := 0
	var ev string
	for {
		var err error
		if ev, err = h.Check(ctx, req, log); err != nil {
			return "", fmt.Errorf("round %d: %w", rounds+1, err)
		}
		rounds++
		if !time.Now().Before(deadline) {
			return fmt.Sprintf("bake %s: %d rounds ok; last: %s", d, rounds, ev), nil
		}
		if err := sleepCtx(ctx, min(time.Second, time.Until(deadline))); err != nil {
			return "", err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// note queues a work note on the change (gated environments only).
func (r *runner) note(ctx context.Context, text string) {
	if !r.env.RequiresChange {
		return
	}
	err := r.s.store.Atomic(context.WithoutCancel(ctx), func(tx Tx) error {
		return r.s.enqueue(ctx, tx, r.u.ID, OutboxWorkNote, notePayload{UpdateID: r.u.ID, Note: text})
	})
	if err != nil {
		r.s.log.Error("queue work note", "update", r.u.ID, "err", err)
	}
	r.s.kickOutbox(ctx, r.u.ID)
}

// rollbackAll returns every touched target to the previous release.
func (r *runner) rollbackAll(ctx context.Context, touched []string, cause error) (runOutcome, error) {
	ctx = context.WithoutCancel(ctx) // a rollback is never abandoned half-way
	r.emit(RunEvent{State: "rollback", Message: fmt.Sprintf("rolling back %d target(s) to %s: %v", len(touched), orNone(r.from.Version), cause)})
	if r.from.Version == "" {
		return r.finishFailed(ctx, touched, fmt.Errorf("%v; nothing to roll back to (first release of %s)", cause, r.env.Name))
	}
	targets := map[string]Target{}
	for _, t := range r.env.Targets {
		targets[t.Name] = t
	}
	var (
		mu     sync.Mutex
		failed []string
		wg     sync.WaitGroup
	)
	sem := make(chan struct{}, max(1, r.env.Strategy.MaxParallel))
	for _, name := range touched {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := r.rollbackTarget(ctx, targets[name]); err != nil {
				mu.Lock()
				failed = append(failed, fmt.Sprintf("%s: %v", name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(failed) > 0 {
		return r.finishFailed(ctx, touched, fmt.Errorf("%v; rollback failed on %s", cause, strings.Join(failed, "; ")))
	}
	return r.finishRolledBack(ctx, touched, cause)
}

func (r *runner) rollbackTarget(ctx context.Context, t Target) error {
	req := r.request(t)
	req.Rollback = true
	r.emit(RunEvent{Target: t.Name, Step: StepRollback, State: "started", Message: fmt.Sprintf("rolling back to %s", r.from.Version)})
	err := r.step(ctx, 0, t.Name, StepRollback, r.from.Version, func() (string, error) {
		if rb, ok := r.exec.(Rollbacker); ok {
			return "", rb.Rollback(ctx, req, r.sink())
		}
		back := req
		back.Version, back.PreviousVersion = req.PreviousVersion, req.Version
		back.Config, back.PreviousConfig = req.PreviousConfig, req.Config
		return "", r.exec.Deploy(ctx, back, r.sink())
	})
	if err == nil && r.health != nil && len(r.env.Health) > 0 {
		back := req
		back.Version, back.PreviousVersion = req.PreviousVersion, req.Version
		back.Config, back.PreviousConfig = req.PreviousConfig, req.Config
		back.Rollback = true
		err = r.step(ctx, 0, t.Name, StepHealth, r.from.Version, func() (string, error) {
			return r.health.Check(ctx, back, r.sink())
		})
	}
	state := "succeeded"
	msg := "back on " + r.from.Version
	if err != nil {
		state, msg = "failed", "rollback failed: "+err.Error()
	}
	r.emit(RunEvent{Target: t.Name, Step: StepRollback, State: state, Message: msg})
	return err
}

// interrupted handles a canceled context mid-run: roll back what this run
// touched, so no target is left between releases.
func (r *runner) interrupted(ctx context.Context, touched []string, cause error) (runOutcome, error) {
	return r.rollbackAll(ctx, touched, fmt.Errorf("run interrupted: %w", cause))
}

func (r *runner) finishSucceeded(ctx context.Context) (runOutcome, error) {
	ctx = context.WithoutCancel(ctx)
	targets := 0
	for _, b := range r.plan.Batches {
		targets += len(b.Targets)
	}
	summary := fmt.Sprintf("Rolled out %s to %d target(s) of %s in %d batch(es); run %s; every health check passed.",
		r.u.Version, targets, r.env.Name, len(r.plan.Batches), r.run.ID)
	r.emit(RunEvent{State: "succeeded", Message: summary})
	r.logs.flush()
	var out runOutcome
	err := r.s.store.Atomic(ctx, func(tx Tx) error {
		if _, err := tx.RecordRelease(ctx, Release{Environment: r.env.Name, Version: r.u.Version, Config: r.u.Config, UpdateID: r.u.ID}); err != nil {
			return err
		}
		if err := tx.FinishRun(ctx, r.run.ID, RunSucceeded, ""); err != nil {
			return err
		}
		u, err := r.saveUpdate(ctx, tx, UpdateSucceeded, "")
		if err != nil {
			return err
		}
		out.update = u
		if r.env.RequiresChange {
			if err := r.queueEvidence(ctx, tx); err != nil {
				return err
			}
			if err := r.s.enqueue(ctx, tx, r.u.ID, OutboxCloseChange, closePayload{UpdateID: r.u.ID, Code: "successful", Notes: summary}); err != nil {
				return err
			}
		}
		if err := r.s.queueAuditAnchor(ctx, tx, u); err != nil {
			return err
		}
		return r.s.audit(ctx, tx, Event{Action: "run.succeeded", Subject: r.run.ID, Environment: r.env.Name, UpdateID: r.u.ID,
			ChangeNumber: r.u.ChangeNumber, Result: "ok", Detail: map[string]any{"version": r.u.Version, "targets": targets}})
	})
	if err != nil {
		return out, err
	}
	r.s.kickOutbox(ctx, r.u.ID)
	out.run, _ = r.s.store.GetRun(ctx, r.run.ID)
	return out, nil
}

func (r *runner) finishRolledBack(ctx context.Context, touched []string, cause error) (runOutcome, error) {
	return r.finishFailure(ctx, touched, cause, RunRolledBack, UpdateRolledBack,
		fmt.Sprintf("Rollout of %s to %s failed and was rolled back: %d target(s) returned to %s. Cause: %v", r.u.Version, r.env.Name, len(touched), r.from.Version, cause))
}

func (r *runner) finishFailed(ctx context.Context, touched []string, cause error) (runOutcome, error) {
	return r.finishFailure(ctx, touched, cause, RunFailed, UpdateFailed,
		fmt.Sprintf("Rollout of %s to %s failed and could NOT be fully rolled back; targets need attention: %s. Cause: %v", r.u.Version, r.env.Name, strings.Join(touched, ", "), cause))
}

func (r *runner) finishFailure(ctx context.Context, touched []string, cause error, runState RunState, final UpdateState, summary string) (runOutcome, error) {
	ctx = context.WithoutCancel(ctx)
	r.emit(RunEvent{State: string(runState), Message: summary})
	r.logs.flush()
	var out runOutcome
	err := r.s.store.Atomic(ctx, func(tx Tx) error {
		if err := tx.FinishRun(ctx, r.run.ID, runState, cause.Error()); err != nil {
			return err
		}
		u, err := r.saveUpdate(ctx, tx, UpdateFailed, cause.Error())
		if err != nil {
			return err
		}
		if final == UpdateRolledBack {
			if u, err = r.saveUpdateFrom(ctx, tx, u, UpdateRolledBack, cause.Error()); err != nil {
				return err
			}
		}
		out.update = u
		if r.env.RequiresChange {
			if err := r.s.enqueue(ctx, tx, r.u.ID, OutboxWorkNote, notePayload{UpdateID: r.u.ID, Note: summary}); err != nil {
				return err
			}
			if err := r.queueEvidence(ctx, tx); err != nil {
				return err
			}
			if err := r.s.enqueue(ctx, tx, r.u.ID, OutboxCloseChange, closePayload{UpdateID: r.u.ID, Code: "unsuccessful", Notes: summary}); err != nil {
				return err
			}
			inc := IncidentRequest{
				CorrelationID:    r.s.correlationID(r.u.ID) + ":incident",
				ShortDescription: fmt.Sprintf("daytwo: rollout of %s to %s failed", r.u.Version, r.env.Name),
				Description:      fmt.Sprintf("%s\n\nChange %s, update %s, run %s.", summary, r.u.ChangeNumber, r.u.ID, r.run.ID),
				CmdbCI:           r.env.Change.CmdbCI, AssignmentGroup: r.env.Change.AssignmentGroup, Impact: "medium", Urgency: "medium",
			}
			if err := r.s.enqueue(ctx, tx, r.u.ID, OutboxCreateIncident, incidentPayload{UpdateID: r.u.ID, Request: inc}); err != nil {
				return err
			}
		}
		if err := r.s.queueAuditAnchor(ctx, tx, u); err != nil {
			return err
		}
		return r.s.audit(ctx, tx, Event{Action: "run." + string(runState), Subject: r.run.ID, Environment: r.env.Name, UpdateID: r.u.ID,
			ChangeNumber: r.u.ChangeNumber, Result: string(runState), Detail: map[string]any{"version": r.u.Version,
				"rolled_back_to": r.from.Version, "touched": touched, "cause": cause.Error()}})
	})
	if err != nil {
		return out, err
	}
	r.s.kickOutbox(ctx, r.u.ID)
	out.run, _ = r.s.store.GetRun(ctx, r.run.ID)
	return out, fmt.Errorf("%s: %w", summary, ErrRunFailed)
}

func (r *runner) saveUpdate(ctx context.Context, tx Tx, to UpdateState, reason string) (Update, error) {
	u, err := tx.GetUpdate(ctx, r.u.ID)
	if err != nil {
		return u, err
	}
	return r.saveUpdateFrom(ctx, tx, u, to, reason)
}

func (r *runner) saveUpdateFrom(ctx context.Context, tx Tx, u Update, to UpdateState, reason string) (Update, error) {
	expect := u.State
	next, err := u.State.Transition(to)
	if err != nil {
		return u, err
	}
	u.State, u.Reason = next, reason
	return u, tx.SaveUpdate(ctx, u, expect)
}

// queueEvidence attaches the full run log to the change.
func (r *runner) queueEvidence(ctx context.Context, tx Tx) error {
	text, err := r.s.RunLogText(ctx, r.run.ID)
	if err != nil {
		return err
	}
	return r.s.enqueue(ctx, tx, r.u.ID, OutboxAttach, attachPayload{UpdateID: r.u.ID,
		Name: fmt.Sprintf("daytwo-%s-%s.log", r.env.Name, r.run.ID), ContentType: "text/plain", Data: text})
}

// RunLogText renders a run's whole log as text.
func (s *Service) RunLogText(ctx context.Context, runID string) (string, error) {
	var b strings.Builder
	var after int64
	for {
		lines, err := s.store.LogLines(ctx, runID, after, 5000)
		if err != nil {
			return "", err
		}
		for _, l := range lines {
			target := l.Target
			if target == "" {
				target = "-"
			}
			fmt.Fprintf(&b, "%s %-12s %-6s %s\n", l.Time.UTC().Format("2006-01-02T15:04:05.000Z"), target, l.Stream, l.Line)
			after = l.ID
		}
		if len(lines) < 5000 {
			return b.String(), nil
		}
	}
}

// logBuffer batches log lines into the store, so that parallel steps do not
// each pay a transaction per line.
type logBuffer struct {
	store Store
	runID string
	log   interface {
		Error(msg string, args ...any)
	}
	mu      sync.Mutex
	pending []LogLine
	wake    chan struct{}
	done    chan struct{}
	stopped sync.Once
}

func newLogBuffer(st Store, runID string, log interface{ Error(string, ...any) }) *logBuffer {
	b := &logBuffer{store: st, runID: runID, log: log, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go b.loop()
	return b
}

func (b *logBuffer) add(l LogLine) {
	if l.Time.IsZero() {
		l.Time = time.Now().UTC()
	}
	b.mu.Lock()
	b.pending = append(b.pending, l)
	n := len(b.pending)
	b.mu.Unlock()
	if n >= 200 {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

func (b *logBuffer) loop() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			b.flush()
			return
		case <-t.C:
			b.flush()
		case <-b.wake:
			b.flush()
		}
	}
}

// flush writes what is pending now.
func (b *logBuffer) flush() {
	b.mu.Lock()
	lines := b.pending
	b.pending = nil
	b.mu.Unlock()
	if err := b.store.AppendLog(context.Background(), lines); err != nil {
		b.log.Error("run log lost lines", "run", b.runID, "lines", len(lines), "err", err)
	}
}

func (b *logBuffer) close() {
	b.stopped.Do(func() { close(b.done) })
}
