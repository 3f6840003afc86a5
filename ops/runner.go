package ops

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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
	RunID   string        `json:"run_id"`
	Time    time.Time     `json:"time"`
	Batch   int           `json:"batch,omitempty"`
	Target  string        `json:"target,omitempty"`
	Step    string        `json:"step,omitempty"`
	State   RunEventState `json:"state"`
	Message string        `json:"message"`
}

// RunRequest asks to run an update.
type RunRequest struct {
	// Update is an update id or its change number.
	Update string
	// Progress, if set, receives events as the run goes (from several
	// goroutines, one at a time).
	Progress func(RunEvent)
	// inBundle: the bundle's coordinator runs this member (RunBundle).
	inBundle bool
	// onRollback is called once the run has journaled its decision to roll
	// back after a failure (a bundle stops its other members then).
	onRollback func()
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
// journal records every step before and after it runs, under the lease's
// epoch. Evidence goes to ServiceNow through the outbox. A closed gate
// returns an error wrapping ErrApprovalPending or ErrBlocked with every
// reason. When ctx is canceled the run stops at the next step boundary and
// returns ErrRunInterrupted: it stays resumable (RecoverRuns).
func (s *Service) Run(ctx context.Context, req RunRequest) (RunResult, error) {
	u, err := s.store.GetUpdate(ctx, req.Update)
	if err != nil {
		return RunResult{}, err
	}
	if u.BundleID != "" && !req.inBundle {
		return s.runInBundle(ctx, u, req.Progress) // members run in their bundle's order (bundle.go)
	}
	g, err := s.Gate(ctx, u)
	if err != nil {
		return RunResult{}, err
	}
	res := RunResult{Update: u, Gate: g}
	if !g.Open && !bundleRollbackMayRun(u, g) && !emergencyRollbackMayRun(u, g) {
		return res, fmt.Errorf("update %s may not run: %w", u.ID, g.Err())
	}
	env, err := s.Environment(u.Environment)
	if err != nil {
		return res, fmt.Errorf("update %s: %w", u.ID, err)
	}
	runID := s.newRunID()
	s.active.Store(runID, true) // before the run row exists: recovery must never see it as orphaned
	defer s.active.Delete(runID)

	releases, err := s.store.CurrentReleases(ctx)
	if err != nil {
		return res, err
	}
	from := releases[env.Name]
	run := Run{ID: runID, UpdateID: u.ID, Environment: env.Name, Kind: RunRollout, State: RunRunning, Holder: s.holder}
	if u.Rollback {
		run.Kind = RunRollback
	}
	// Taking the lease and moving the update to running are one step: a
	// second runner that passed the gate at the same time finds the update
	// no longer approved (or the lease taken) and runs nothing.
	var fence Fence
	err = s.store.Atomic(ctx, func(tx Tx) error {
		l, err := tx.AcquireLease(ctx, LeaseRequest{Environment: env.Name, Holder: s.holder, RunID: runID, TTL: s.leaseTTL})
		if err != nil {
			return fmt.Errorf("%w: %w", err, ErrBlocked)
		}
		fence = Fence{Environment: env.Name, Holder: s.holder, Epoch: l.Epoch}
		run.Epoch = l.Epoch
		cur, err := tx.GetUpdate(ctx, u.ID)
		if err != nil {
			return err
		}
		if !cur.State.CanTransition(UpdateRunning) {
			return fmt.Errorf("update %s is %s, not approved or scheduled (another run took it first?): %w: %w", cur.ID, cur.State, ErrNotRunnable, ErrBlocked)
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
			// An emergency rollback's change awaits authorization: it moves
			// to Implement only through its close (verify_after_close.go).
			if !u.emergencyRollback() {
				if err := s.enqueue(ctx, tx, u.outboxKey(), OutboxMoveChange, movePayload{UpdateID: u.ID, To: ChangeImplement}); err != nil {
					return err
				}
			}
			note := fmt.Sprintf("daytwo run %s started by %s on %s: %s → %s, plan sha256:%s, %d batch(es).",
				run.ID, s.cfg.Actor, s.holder, orNone(from.Version), u.Version, u.PlanDigest, len(g.Plan.Batches))
			if err := s.enqueue(ctx, tx, u.outboxKey(), OutboxWorkNote, notePayload{UpdateID: u.ID, Note: note}); err != nil {
				return err
			}
		}
		return s.audit(ctx, tx, Event{
			Action: "run.started", Subject: run.ID, Environment: env.Name, UpdateID: u.ID,
			ChangeNumber: u.ChangeNumber, Result: "ok", Detail: map[string]any{
				"version": u.Version, "from_version": from.Version,
				"plan_digest": u.PlanDigest, "holder": s.holder, "epoch": fence.Epoch,
			},
		})
	})
	if err != nil {
		return res, err
	}
	// Released however the run ends (a no-op once the lease was lost):
	// a run stopped at a step boundary is then free to be resumed at once.
	defer s.store.ReleaseLease(context.WithoutCancel(ctx), fence)
	s.kickOutbox(ctx, u.outboxKey())
	r := s.newRunner(ctx, env, u, run, from, g.Plan, fence, req.Progress)
	defer r.close()
	r.onRollback = req.onRollback
	out, err := r.execute(nil)
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

// runner executes one run under one lease epoch.
type runner struct {
	s        *Service
	env      Environment
	u        Update
	run      Run
	from     Release
	plan     Plan
	fence    Fence
	exec     Executor
	health   HealthChecker
	progress func(RunEvent)
	progMu   sync.Mutex
	logs     *logBuffer

	// stop ends the run at the next step boundary: the caller's context
	// (a signal), a lost lease, or a target another process still holds.
	stop    context.Context
	stopNow context.CancelCauseFunc
	// work is what steps run under: canceled only when the lease is lost,
	// so that a fenced-off runner's programs are killed at once.
	work     context.Context
	killWork context.CancelFunc
	lost     atomic.Bool

	stopRenew context.CancelFunc
	renewDone chan struct{}

	// restored says how an emergency rollback's targets were found back
	// on the previous release (verify_after_close.go).
	restored string
	// earlyStop is why a bundle member's run was stopped early (another
	// member failed): it rolls back what it touched and ends stopped.
	earlyStop  error
	onRollback func()
}

type runOutcome struct {
	run    Run
	update Update
}

func (s *Service) newRunner(ctx context.Context, env Environment, u Update, run Run, from Release, plan Plan, fence Fence, progress func(RunEvent)) *runner {
	r := &runner{s: s, env: env, u: u, run: run, from: from, plan: plan, fence: fence, progress: progress}
	base := context.WithoutCancel(ctx)
	r.work, r.killWork = context.WithCancel(base)
	r.stop, r.stopNow = context.WithCancelCause(ctx)
	r.logs = newLogBuffer(s.store, fence, run.ID, s.log, s.now, r.check)
	rctx, cancel := context.WithCancel(base)
	r.stopRenew = cancel
	r.renewDone = make(chan struct{})
	go func() {
		defer close(r.renewDone)
		t := time.NewTicker(max(time.Second/10, s.leaseTTL/3))
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
				if err := s.store.RenewLease(rctx, fence, s.leaseTTL); err != nil {
					if r.check(err) {
						return
					}
					s.log.Error("lease renewal failed", "env", env.Name, "run", run.ID, "err", err)
				}
			}
		}
	}()
	return r
}

// close stops the lease renewal and the log buffer and waits for both.
func (r *runner) close() {
	r.stopRenew()
	<-r.renewDone
	r.logs.close()
	r.killWork()
	r.stopNow(nil)
}

// check notes a lost lease in err: the runner stops, kills its programs
// and writes nothing more. It reports whether the lease was lost.
func (r *runner) check(err error) bool {
	if !errors.Is(err, ErrLeaseLost) {
		return false
	}
	if r.lost.CompareAndSwap(false, true) {
		r.s.log.Error("lease lost: another process took the run over; stopping without writing anything more",
			"run", r.run.ID, "env", r.env.Name, "epoch", r.fence.Epoch, "err", err)
		r.stopNow(err)
		r.killWork()
	}
	return true
}

func (r *runner) stopping() bool { return r.stop.Err() != nil }

func (r *runner) emit(ev RunEvent) {
	ev.RunID, ev.Time = r.run.ID, r.s.now()
	if ev.Message != "" && !r.lost.Load() {
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
	return StepRequest{
		Environment: r.env.Name, Service: r.env.Service, Target: target, Version: r.u.Version, PreviousVersion: r.from.Version,
		Config: r.u.Config, PreviousConfig: r.from.Config, Change: r.u.ChangeNumber,
	}
}

// back is the request that returns a target to the previous release.
func (r *runner) back(target Target) StepRequest {
	req := r.request(target)
	req.Version, req.PreviousVersion = req.PreviousVersion, req.Version
	req.Config, req.PreviousConfig = req.PreviousConfig, req.Config
	req.Rollback = true
	return req
}

func (r *runner) targets() map[string]Target {
	m := make(map[string]Target, len(r.env.Targets))
	for _, t := range r.env.Targets {
		m[t.Name] = t
	}
	return m
}

// targetResult is one target's outcome in a batch.
type targetResult struct {
	target   string
	ok       bool
	notRun   bool // the run was stopping: never started
	evidence string
	err      error
}

// errTargetBusy reports a target on which another process's step still
// runs (a runner that lost its lease but has not noticed yet).
type errTargetBusy struct {
	target string
	err    error
}

func (e *errTargetBusy) Error() string {
	return fmt.Sprintf("target %s is still locked by another process's step: %v", e.target, e.err)
}

func (e *errTargetBusy) Unwrap() error { return e.err }

// execute rolls the plan out. view is the run's journal when resuming
// after a takeover (nil for a fresh run): targets it shows deployed and
// checked are kept, targets deployed but not baked are baked again, the
// others are deployed.
func (r *runner) execute(view *journalView) (runOutcome, error) {
	var err error
	if r.exec, r.health, err = r.s.executors(r.env); err != nil {
		return r.finishFailed(view.touched(), fmt.Errorf("cannot build the executor for %s: %w", r.env.Name, err))
	}
	targets := r.targets()
	hasHealth := r.health != nil && len(r.env.Health) > 0
	hasBake := hasHealth && r.env.Strategy.Bake > 0
	failures := 0
	for bi, batch := range r.plan.Batches {
		if r.stopping() {
			return r.stopped()
		}
		var deploy, rebake []string
		for _, name := range batch.Targets {
			tj := view.target(name)
			switch {
			case !tj.deployedOK(hasHealth):
				deploy = append(deploy, name)
			case hasBake && !tj.baked:
				rebake = append(rebake, name)
			}
		}
		label := fmt.Sprintf("batch %d/%d: %s", batch.Index, len(r.plan.Batches), strings.Join(batch.Targets, ", "))
		if len(deploy) == 0 && len(rebake) == 0 {
			r.emit(RunEvent{Batch: batch.Index, State: EventBatch, Message: label + " (done before the run was taken over)"})
			ev := make([]string, len(batch.Targets))
			for i, name := range batch.Targets {
				ev[i] = name + " ok (done before the run was taken over)"
			}
			if err := r.batchNote(batch, ev); err != nil {
				return r.abort(err)
			}
			continue
		}
		resumed := len(deploy) < len(batch.Targets)
		if bi > 0 && r.env.Strategy.Pause > 0 && !resumed {
			r.emit(RunEvent{Batch: batch.Index, State: EventPause, Message: fmt.Sprintf("pausing %s before batch %d", r.env.Strategy.Pause, batch.Index)})
			if err := sleepCtx(r.stop, r.env.Strategy.Pause); err != nil {
				return r.stopped()
			}
		}
		r.emit(RunEvent{Batch: batch.Index, State: EventBatch, Message: label})
		results := make([]targetResult, len(deploy))
		if be, ok := r.exec.(BatchExecutor); ok && !r.stopping() {
			results = r.deployBatch(be, batch.Index, pick(targets, deploy)) // one program for the batch (batch.go)
		} else {
			fanOut(len(deploy), r.env.Strategy.MaxParallel, func(i int) {
				name := deploy[i]
				if r.stopping() {
					results[i] = targetResult{target: name, notRun: true}
					return
				}
				results[i] = r.deployTarget(batch.Index, targets[name])
			})
		}
		if r.lost.Load() {
			return r.fenced()
		}
		var evidence, baking []string
		stoppedShort := false
		for _, res := range results {
			switch {
			case res.notRun:
				stoppedShort = true
			case busy(res.err):
				stoppedShort = true
				r.stopNow(res.err)
			case !res.ok:
				failures++
				evidence = append(evidence, fmt.Sprintf("%s FAILED: %v", res.target, res.err))
			default:
				evidence = append(evidence, fmt.Sprintf("%s ok: %s", res.target, res.evidence))
				baking = append(baking, res.target)
			}
		}
		if stoppedShort {
			return r.stopped()
		}
		for _, name := range batch.Targets {
			if !slices.Contains(deploy, name) {
				evidence = append(evidence, name+" ok (deployed and checked before the run was taken over)")
			}
		}
		baking = append(baking, rebake...)
		if failures <= r.env.Strategy.MaxFailures && hasBake && len(baking) > 0 {
			bakeEv, bakeFailed := r.bake(batch.Index, baking, targets)
			if r.lost.Load() {
				return r.fenced()
			}
			if r.stopping() {
				return r.stopped()
			}
			failures += bakeFailed
			evidence = append(evidence, bakeEv...)
		}
		if err := r.batchNote(batch, evidence); err != nil {
			return r.abort(err)
		}
		if failures > r.env.Strategy.MaxFailures {
			cause := fmt.Errorf("%d target(s) failed, more than max_failures %d: %s", failures, r.env.Strategy.MaxFailures, strings.Join(evidence, "; "))
			return r.rollbackAll(cause)
		}
	}
	if out, err, done := r.verifyWindow(); done {
		return out, err
	}
	if out, err, done := r.verifyEmergency(); done {
		return out, err
	}
	out, err := r.finishSucceeded()
	if err == nil && afterClose(r.env, r.u) {
		err = r.afterCloseWindow(r.s.now().Add(r.env.Verify.Window)) // verify_after_close.go
	}
	return out, err
}

func busy(err error) bool {
	var b *errTargetBusy
	return errors.As(err, &b)
}

// fanOut calls fn(0..n-1), at most limit at a time (at least one).
func fanOut(n, limit int, fn func(i int)) {
	sem := make(chan struct{}, max(1, limit))
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(i)
		}()
	}
	wg.Wait()
}

// batchNote queues a batch's work note, once per batch whichever process
// finishes it.
func (r *runner) batchNote(batch Batch, evidence []string) error {
	if !r.env.RequiresChange {
		return nil
	}
	text := fmt.Sprintf("daytwo run %s, batch %d/%d (%s) → %s:\n%s", r.run.ID, batch.Index, len(r.plan.Batches),
		strings.Join(batch.Targets, ", "), r.u.Version, strings.Join(evidence, "\n"))
	return r.noteOnce(fmt.Sprintf("note:batch:%d", batch.Index), text)
}

// noteOnce queues a work note recorded as fact (nothing if already queued).
func (r *runner) noteOnce(fact, text string) error {
	ctx := r.work
	err := r.s.store.Atomic(ctx, func(tx Tx) error {
		if err := tx.CheckFence(ctx, r.fence); err != nil {
			return err
		}
		first, err := tx.RecordFact(ctx, r.run.ID, fact)
		if err != nil || !first || !r.env.RequiresChange {
			return err
		}
		return r.s.enqueue(ctx, tx, r.u.outboxKey(), OutboxWorkNote, notePayload{UpdateID: r.u.ID, Note: text})
	})
	if err != nil {
		r.check(err)
		return err
	}
	r.s.kickOutbox(ctx, r.u.outboxKey())
	return nil
}

// abort ends the run after a failed journal write: fenced off when the
// lease was lost, otherwise stopped (resumable) with the cause.
func (r *runner) abort(err error) (runOutcome, error) {
	if r.check(err) {
		return r.fenced()
	}
	r.stopNow(err)
	return r.stopped()
}

// deployTarget deploys one target and checks its health, journaling each
// step before and after.
func (r *runner) deployTarget(batch int, t Target) targetResult {
	req := r.request(t)
	res := targetResult{target: t.Name}
	r.emit(RunEvent{Batch: batch, Target: t.Name, Step: StepDeploy, State: EventStarted, Message: fmt.Sprintf("deploying %s", r.u.Version)})
	if err := r.step(batch, t.Name, StepDeploy, r.u.Version, req, func(ctx context.Context, req StepRequest) (string, error) {
		return "", r.exec.Deploy(ctx, req, r.sink())
	}); err != nil {
		res.err = err
		if !busy(err) {
			r.emit(RunEvent{Batch: batch, Target: t.Name, Step: StepDeploy, State: EventFailed, Message: "deploy failed: " + err.Error()})
		}
		return res
	}
	r.checkDeployed(batch, t, req, &res)
	return res
}

// checkDeployed checks the health of a target just deployed (a journaled
// step) and completes its result; both the per-target and the batch
// executors' deploys end here.
func (r *runner) checkDeployed(batch int, t Target, req StepRequest, res *targetResult) {
	res.evidence = "deployed (no health checks configured)"
	if r.health != nil && len(r.env.Health) > 0 {
		r.emit(RunEvent{Batch: batch, Target: t.Name, Step: StepHealth, State: EventStarted, Message: "checking health"})
		var ev string
		err := r.step(batch, t.Name, StepHealth, r.u.Version, req, func(ctx context.Context, req StepRequest) (string, error) {
			var err error
			ev, err = r.health.Check(ctx, req, r.sink())
			return ev, err
		})
		if err != nil {
			res.err = err
			if !busy(err) {
				r.emit(RunEvent{Batch: batch, Target: t.Name, Step: StepHealth, State: EventFailed, Message: "health check failed: " + err.Error()})
			}
			return
		}
		res.evidence = ev
	}
	res.ok = true
	r.emit(RunEvent{Batch: batch, Target: t.Name, Step: StepDeploy, State: EventSucceeded, Message: "healthy: " + res.evidence})
}

// step journals fn as one step on target. Launching it is serialised per
// target across this host's processes: the target's lock is held from
// journaling the step as started (under the lease's epoch: refused once
// the lease is lost) until its program runs and its process group is
// journaled (refused too, and the program killed, once the lease is lost).
// So a runner that lost its lease mid-launch has killed what it started
// before anyone else can launch a step there, and recovery stops the
// programs of an older epoch before it acts. Read-only steps (bake,
// verify) let the lock go as soon as they are journaled. fn runs under
// the work context, except bake steps, which stop at the run's stop signal
// (journaled as interrupted).
func (r *runner) step(batch int, target, step, version string, req StepRequest, fn func(ctx context.Context, req StepRequest) (string, error)) error {
	lockCtx, cancel := context.WithTimeout(r.work, r.s.leaseTTL)
	unlock, err := r.s.locks.Lock(lockCtx, r.env.Name, target)
	cancel()
	if err != nil {
		if r.lost.Load() {
			return fmt.Errorf("journal: %w", ErrLeaseLost)
		}
		return &errTargetBusy{target: target, err: err}
	}
	var once sync.Once
	release := func() { once.Do(unlock) }
	defer release()
	jctx := r.work
	id, err := r.s.store.StepStarted(jctx, r.fence, StepRecord{RunID: r.run.ID, Batch: batch, Target: target, Step: step, Version: version})
	if err != nil {
		r.check(err)
		return fmt.Errorf("journal: %w", err)
	}
	if step == StepBake || step == StepVerify {
		release()
	}
	req.RunID, req.Epoch = r.run.ID, r.fence.Epoch
	req.OnStart = func(pid int) error {
		defer release()
		if err := r.s.store.StepProcess(jctx, r.fence, id, pid); err != nil {
			r.check(err)
			return err
		}
		return nil
	}
	ctx := r.work
	if step == StepBake {
		var stop context.CancelFunc
		ctx, stop = context.WithCancel(r.work)
		defer stop()
		go func() {
			select {
			case <-r.stop.Done():
				stop()
			case <-ctx.Done():
			}
		}()
	}
	detail, err := fn(ctx, req)
	state := StepSucceeded
	switch {
	case err != nil && step == StepBake && r.stopping() && !r.lost.Load() && errors.Is(err, context.Canceled):
		state, detail = StepInterrupted, "stopped before the bake period ended: "+context.Cause(r.stop).Error()
	case err != nil:
		state, detail = StepFailed, err.Error()
	}
	if jerr := r.s.store.StepFinished(jctx, r.fence, id, state, detail); jerr != nil {
		r.check(jerr)
		return errors.Join(err, fmt.Errorf("journal: %w", jerr))
	}
	return err
}

// bake keeps checking a batch's targets for the bake period. It stops early
// at the run's stop signal.
func (r *runner) bake(batch int, names []string, targets map[string]Target) ([]string, int) {
	d := r.env.Strategy.Bake
	r.emit(RunEvent{Batch: batch, Step: StepBake, State: EventStarted, Message: fmt.Sprintf("baking batch %d for %s", batch, d)})
	var (
		mu       sync.Mutex
		evidence []string
		failed   int
	)
	fanOut(len(names), len(names), func(i int) {
		name := names[i]
		var ev string
		req := r.request(targets[name])
		req.Baseline, req.OnVerdict = r.baselineFor(batch), func(v MetricVerdict) { r.metricVerdict(batch, v) }
		err := r.step(batch, name, StepBake, r.u.Version, req, func(ctx context.Context, req StepRequest) (string, error) {
			var err error
			if b, ok := r.health.(Baker); ok {
				ev, err = b.Bake(ctx, req, d, r.sink())
			} else {
				ev, err = bakeByChecks(ctx, r.health, req, d, r.s.clock, r.sink())
			}
			return ev, err
		})
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			evidence = append(evidence, fmt.Sprintf("%s baked: %s", name, ev))
		case r.stopping():
			// not a failure: the bake is journaled as interrupted and resumed
		default:
			failed++
			evidence = append(evidence, fmt.Sprintf("%s FAILED during bake: %v", name, err))
			r.emit(RunEvent{Batch: batch, Target: name, Step: StepBake, State: EventFailed, Message: "bake failed: " + err.Error()})
		}
	})
	return evidence, failed
}

func bakeByChecks(ctx context.Context, h HealthChecker, req StepRequest, d time.Duration, now func() time.Time, log LogSink) (string, error) {
	deadline := now().Add(d)
	rounds := 0
	var ev string
	for {
		var err error
		if ev, err = h.Check(ctx, req, log); err != nil {
			return "", fmt.Errorf("round %d: %w", rounds+1, err)
		}
		rounds++
		left := deadline.Sub(now())
		if left <= 0 {
			return fmt.Sprintf("bake %s: %d rounds ok; last: %s", d, rounds, ev), nil
		}
		if err := sleepCtx(ctx, min(time.Second, left)); err != nil {
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

// rollbackAll journals the decision to roll back, then returns every
// target the journal shows touched — by this process or any earlier holder
// of the run — to the previous release, and verifies each by its version
// probe before claiming it restored. A rollback is not interrupted by a
// stop signal; only a lost lease ends it (and then recovery continues it).
func (r *runner) rollbackAll(cause error) (runOutcome, error) {
	ctx := r.work
	err := r.s.store.Atomic(ctx, func(tx Tx) error {
		if err := tx.CheckFence(ctx, r.fence); err != nil {
			return err
		}
		run, err := tx.DecideRollback(ctx, r.run.ID, cause.Error())
		if err != nil {
			return err
		}
		r.run = run
		first, err := tx.RecordFact(ctx, r.run.ID, "decision:rollback")
		if err != nil || !first {
			return err
		}
		return r.s.audit(ctx, tx, Event{
			Action: "run.rollback_decided", Subject: r.run.ID, Environment: r.env.Name, UpdateID: r.u.ID,
			ChangeNumber: r.u.ChangeNumber, Result: "rollback", Detail: map[string]any{"cause": cause.Error(), "to_version": r.from.Version},
		})
	})
	if err != nil {
		return r.abort(err)
	}
	if r.onRollback != nil && r.earlyStop == nil {
		r.onRollback() // before the rollback's first event
	}
	steps, err := r.s.store.Steps(ctx, r.run.ID)
	if err != nil {
		r.stopNow(err)
		return r.stopped()
	}
	view := readJournal(steps)
	touched := view.touched()
	r.emit(RunEvent{State: EventRollback, Message: fmt.Sprintf("rolling back %d target(s) to %s: %v", len(touched), orNone(r.from.Version), cause)})
	if r.from.Version == "" {
		return r.finishFailed(touched, fmt.Errorf("%v; nothing to roll back to (first release of %s)", cause, r.env.Name))
	}
	targets := r.targets()
	var (
		mu      sync.Mutex
		failed  []string
		wasBusy bool
	)
	if br, ok := r.exec.(BatchRollbacker); ok {
		failed, wasBusy = r.rollbackTouched(br, touched, view, targets) // one program for all (batch.go)
	} else {
		fanOut(len(touched), r.env.Strategy.MaxParallel, func(i int) {
			name := touched[i]
			if view.target(name).restored {
				return // an earlier holder of the run restored it; verified below
			}
			if err := r.rollbackTarget(targets[name]); err != nil {
				mu.Lock()
				defer mu.Unlock()
				if busy(err) {
					wasBusy = true
					return
				}
				failed = append(failed, fmt.Sprintf("%s: %v", name, err))
			}
		})
	}
	if r.lost.Load() {
		return r.fenced()
	}
	if wasBusy {
		r.stopNow(errors.New("a target is still locked by another process's step"))
		return r.stopped()
	}
	verified, unverified, verr := r.verifyRestored(touched, targets)
	if r.lost.Load() {
		return r.fenced()
	}
	failed = append(failed, verr...)
	if len(failed) > 0 {
		return r.finishFailed(touched, fmt.Errorf("%v; rollback failed on %s", cause, strings.Join(failed, "; ")))
	}
	return r.finishRolledBack(touched, cause, verified, unverified)
}

func (r *runner) rollbackTarget(t Target) error {
	r.emit(RunEvent{Target: t.Name, Step: StepRollback, State: EventStarted, Message: fmt.Sprintf("rolling back to %s", r.from.Version)})
	err := r.step(0, t.Name, StepRollback, r.from.Version, r.request(t), func(ctx context.Context, req StepRequest) (string, error) {
		req.Rollback = true
		if rb, ok := r.exec.(Rollbacker); ok {
			return "", rb.Rollback(ctx, req, r.sink())
		}
		back := r.back(t)
		back.RunID, back.Epoch, back.OnStart = req.RunID, req.Epoch, req.OnStart
		return "", r.exec.Deploy(ctx, back, r.sink())
	})
	if err == nil && r.health != nil && len(r.env.Health) > 0 {
		err = r.step(0, t.Name, StepHealth, r.from.Version, r.back(t), func(ctx context.Context, req StepRequest) (string, error) {
			return r.health.Check(ctx, req, r.sink())
		})
	}
	if busy(err) {
		return err
	}
	state := EventSucceeded
	msg := "back on " + r.from.Version
	if err != nil {
		state, msg = EventFailed, "rollback failed: "+err.Error()
	}
	r.emit(RunEvent{Target: t.Name, Step: StepRollback, State: state, Message: msg})
	return err
}

// verifyRestored asks every touched target which version it runs (a
// journaled verify step each) when the environment has a version probe.
// It returns how many were verified, how many could not be (no probe),
// and a failure per target that reports another version or cannot say.
func (r *runner) verifyRestored(touched []string, targets map[string]Target) (verified, unverified int, failed []string) {
	var prober VersionProber
	if r.s.probers != nil && (r.env.VersionProbe.HTTP != nil || len(r.env.VersionProbe.Command) > 0) {
		p, err := r.s.probers(r.env)
		if err != nil {
			return 0, 0, []string{fmt.Sprintf("cannot build the version probe: %v", err)}
		}
		prober = p
	}
	if prober == nil {
		return 0, len(touched), nil
	}
	var mu sync.Mutex
	fanOut(len(touched), r.env.Strategy.MaxParallel, func(i int) {
		name := touched[i]
		err := r.step(0, name, StepVerify, r.from.Version, r.back(targets[name]), func(ctx context.Context, req StepRequest) (string, error) {
			got, err := prober.Probe(ctx, r.env.Name, targets[name])
			if err != nil {
				return "", fmt.Errorf("version probe failed: %w", err)
			}
			if got != r.from.Version {
				return "", fmt.Errorf("reports %s after the rollback, expected %s", orNone(got), r.from.Version)
			}
			return "reports " + got, nil
		})
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", name, err))
			r.emit(RunEvent{Target: name, Step: StepVerify, State: EventFailed, Message: "not restored: " + err.Error()})
			return
		}
		verified++
		r.emit(RunEvent{Target: name, Step: StepVerify, State: EventSucceeded, Message: "verified on " + r.from.Version})
	})
	return verified, 0, failed
}

// stopped ends this process's part of the run at a step boundary without
// deciding anything: the run stays running in the journal, the lease is
// released for whoever resumes it, and the change gets one note saying so.
func (r *runner) stopped() (runOutcome, error) {
	if r.lost.Load() {
		return r.fenced()
	}
	if cause := context.Cause(r.stop); r.earlyStop == nil && stopsEarly(cause) {
		r.earlyStop = cause // bundle.go
		r.emit(RunEvent{State: EventStopped, Message: fmt.Sprintf("run %s: %v; rolling back what it touched", r.run.ID, cause)})
		return r.rollbackAll(cause)
	}
	ctx := r.work
	cause := context.Cause(r.stop)
	if cause == nil {
		cause = context.Canceled
	}
	msg := fmt.Sprintf("run %s stopped at a step boundary (%v); it is left resumable and continues when daytwo recovers it", r.run.ID, cause)
	r.emit(RunEvent{State: EventStopped, Message: msg})
	r.logs.flush()
	err := r.s.store.Atomic(ctx, func(tx Tx) error {
		if err := tx.CheckFence(ctx, r.fence); err != nil {
			return err
		}
		first, err := tx.RecordFact(ctx, r.run.ID, fmt.Sprintf("stopped:%d", r.fence.Epoch))
		if err != nil || !first {
			return err
		}
		if r.env.RequiresChange {
			note := fmt.Sprintf("daytwo run %s paused by %s at a step boundary (%v). No target is between steps; the run resumes when daytwo recovers it (or rolls back if its gate has closed by then).",
				r.run.ID, r.s.holder, cause)
			if err := r.s.enqueue(ctx, tx, r.u.outboxKey(), OutboxWorkNote, notePayload{UpdateID: r.u.ID, Note: note}); err != nil {
				return err
			}
		}
		return r.s.audit(ctx, tx, Event{
			Action: "run.stopped", Subject: r.run.ID, Environment: r.env.Name, UpdateID: r.u.ID,
			ChangeNumber: r.u.ChangeNumber, Result: "resumable", Detail: map[string]any{"cause": cause.Error(), "holder": r.s.holder, "epoch": r.fence.Epoch},
		})
	})
	if err != nil && r.check(err) {
		return r.fenced()
	}
	r.s.kickOutbox(ctx, r.u.outboxKey())
	out := r.outcome(ctx)
	return out, fmt.Errorf("run %s: %v: %w", r.run.ID, cause, ErrRunInterrupted)
}

// fenced ends a run whose lease was lost: it writes nothing more.
func (r *runner) fenced() (runOutcome, error) {
	r.emit(RunEvent{State: EventFenced, Message: fmt.Sprintf("run %s: the lease was taken over by another process; this process stopped and wrote nothing more", r.run.ID)})
	return runOutcome{run: r.run, update: r.u}, fmt.Errorf("run %s (epoch %d): %w", r.run.ID, r.fence.Epoch, ErrLeaseLost)
}

func (r *runner) outcome(ctx context.Context) runOutcome {
	out := runOutcome{run: r.run, update: r.u}
	if run, err := r.s.store.GetRun(ctx, r.run.ID); err == nil {
		out.run = run
	}
	if u, err := r.s.store.GetUpdate(ctx, r.u.ID); err == nil {
		out.update = u
	}
	return out
}

func (r *runner) finishSucceeded() (runOutcome, error) {
	ctx := r.work
	targets := 0
	for _, b := range r.plan.Batches {
		targets += len(b.Targets)
	}
	summary := fmt.Sprintf("Rolled out %s to %d target(s) of %s in %d batch(es); run %s; every health check passed.",
		r.u.Version, targets, r.env.Name, len(r.plan.Batches), r.run.ID)
	if afterClose(r.env, r.u) {
		summary += fmt.Sprintf(" The verification window (%s) continues after this close.", r.env.Verify.Window)
	}
	r.emit(RunEvent{State: EventSucceeded, Message: summary})
	r.logs.flush()
	var out runOutcome
	err := r.s.store.Atomic(ctx, func(tx Tx) error {
		if err := tx.CheckFence(ctx, r.fence); err != nil {
			return err
		}
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
		// The chain head goes out before the close: an instance may refuse
		// work notes on a closed change.
		if err := r.s.queueAuditAnchor(ctx, tx, u); err != nil {
			return err
		}
		if r.env.RequiresChange {
			if err := r.queueEvidence(ctx, tx); err != nil {
				return err
			}
			if afterClose(r.env, r.u) {
				if err := r.windowOpened(ctx, tx); err != nil {
					return err
				}
			}
			// A bundle's change is closed once, after its last member
			// (bundle.go); an emergency change once it is authorized.
			if r.u.emergencyRollback() {
				if err := r.emergencyFinished(ctx, tx, true, summary); err != nil {
					return err
				}
			} else if r.u.BundleID == "" {
				if err := r.s.enqueue(ctx, tx, r.u.outboxKey(), OutboxCloseChange, closePayload{UpdateID: r.u.ID, Code: "successful", Notes: summary}); err != nil {
					return err
				}
			}
		}
		return r.s.audit(ctx, tx, Event{
			Action: "run.succeeded", Subject: r.run.ID, Environment: r.env.Name, UpdateID: r.u.ID,
			ChangeNumber: r.u.ChangeNumber, Result: "ok", Detail: map[string]any{"version": r.u.Version, "targets": targets},
		})
	})
	if err != nil {
		return r.abort(err)
	}
	r.s.kickOutbox(ctx, r.u.outboxKey())
	out.run, _ = r.s.store.GetRun(ctx, r.run.ID)
	return out, nil
}

func (r *runner) finishRolledBack(touched []string, cause error, verified, unverified int) (runOutcome, error) {
	how := fmt.Sprintf("each verified by its version probe (%d)", verified)
	if unverified > 0 {
		how = fmt.Sprintf("rollback and health checks passed, but %d target(s) were NOT verified: the environment has no version_probe", unverified)
	}
	return r.finishFailure(touched, cause, RunRolledBack, UpdateRolledBack,
		fmt.Sprintf("Rollout of %s to %s failed and was rolled back: %d target(s) returned to %s, %s. Cause: %v",
			r.u.Version, r.env.Name, len(touched), r.from.Version, how, cause))
}

func (r *runner) finishFailed(touched []string, cause error) (runOutcome, error) {
	return r.finishFailure(touched, cause, RunFailed, UpdateFailed,
		fmt.Sprintf("Rollout of %s to %s failed and could NOT be fully rolled back; targets need attention: %s. Cause: %v", r.u.Version, r.env.Name, strings.Join(touched, ", "), cause))
}

func (r *runner) finishFailure(touched []string, cause error, runState RunState, final UpdateState, summary string) (runOutcome, error) {
	ctx := r.work
	ended := UpdateFailed
	if r.earlyStop != nil { // not failed: stopped because another bundle member failed
		ended, final = UpdateStopped, UpdateStopped
		summary = strings.Replace(strings.Replace(summary, " failed and was rolled back", " was stopped early and rolled back", 1),
			" failed and could NOT", " was stopped early and could NOT", 1)
	}
	r.emit(RunEvent{State: RunEventState(runState), Message: summary})
	r.logs.flush()
	var out runOutcome
	err := r.s.store.Atomic(ctx, func(tx Tx) error {
		if err := tx.CheckFence(ctx, r.fence); err != nil {
			return err
		}
		if err := tx.FinishRun(ctx, r.run.ID, runState, cause.Error()); err != nil {
			return err
		}
		u, err := r.saveUpdate(ctx, tx, ended, cause.Error())
		if err != nil {
			return err
		}
		if final == UpdateRolledBack {
			if u, err = r.saveUpdateFrom(ctx, tx, u, UpdateRolledBack, cause.Error()); err != nil {
				return err
			}
		}
		out.update = u
		if err := r.s.queueAuditAnchor(ctx, tx, u); err != nil {
			return err
		}
		if r.env.RequiresChange {
			if err := r.s.enqueue(ctx, tx, r.u.outboxKey(), OutboxWorkNote, notePayload{UpdateID: r.u.ID, Note: summary}); err != nil {
				return err
			}
			if err := r.queueEvidence(ctx, tx); err != nil {
				return err
			}
		}
		// A bundle closes its change and opens one incident once every
		// touched member is rolled back (bundle.go); an emergency change is
		// closed once it is authorized, its incident already opened.
		if r.env.RequiresChange && r.u.emergencyRollback() {
			if err := r.emergencyFinished(ctx, tx, false, summary); err != nil {
				return err
			}
		} else if r.env.RequiresChange && r.u.BundleID == "" {
			if err := r.s.enqueue(ctx, tx, r.u.outboxKey(), OutboxCloseChange, closePayload{UpdateID: r.u.ID, Code: "unsuccessful", Notes: summary}); err != nil {
				return err
			}
			inc := environmentIncident(r.env, r.s.correlationID(r.u.ID)+":incident",
				fmt.Sprintf("daytwo: rollout of %s to %s failed", r.u.Version, r.env.Name),
				fmt.Sprintf("%s\n\nChange %s, update %s, run %s.", summary, r.u.ChangeNumber, r.u.ID, r.run.ID))
			if err := r.s.enqueue(ctx, tx, r.u.outboxKey(), OutboxCreateIncident, incidentPayload{UpdateID: r.u.ID, Request: inc}); err != nil {
				return err
			}
		}
		return r.s.audit(ctx, tx, Event{
			Action: "run." + string(runState), Subject: r.run.ID, Environment: r.env.Name, UpdateID: r.u.ID,
			ChangeNumber: r.u.ChangeNumber, Result: string(runState), Detail: map[string]any{
				"version":        r.u.Version,
				"rolled_back_to": r.from.Version, "touched": touched, "cause": cause.Error(), "update_state": string(final),
			},
		})
	})
	if err != nil {
		return r.abort(err)
	}
	r.s.kickOutbox(ctx, r.u.outboxKey())
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
	return r.s.enqueue(ctx, tx, r.u.outboxKey(), OutboxAttach, attachPayload{
		UpdateID: r.u.ID,
		Name:     fmt.Sprintf("daytwo-%s-%s.log", r.env.Name, r.run.ID), ContentType: "text/plain", Data: text,
	})
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
// each pay a transaction per line. Flushes are serialised, so lines land in
// the order they were added; a fenced-off runner's lines are refused.
type logBuffer struct {
	store interface {
		AppendLog(ctx context.Context, f Fence, lines []LogLine) error
	}
	fence  Fence
	runID  string
	log    interface{ Error(string, ...any) }
	now    func() time.Time
	onFail func(error) bool

	mu      sync.Mutex
	pending []LogLine
	flushMu sync.Mutex
	wake    chan struct{}
	done    chan struct{}
	exited  chan struct{}
	stopped sync.Once
}

func newLogBuffer(st Store, f Fence, runID string, log interface{ Error(string, ...any) }, now func() time.Time, onFail func(error) bool) *logBuffer {
	b := &logBuffer{
		store: st, fence: f, runID: runID, log: log, now: now, onFail: onFail,
		wake: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{}),
	}
	go b.loop()
	return b
}

func (b *logBuffer) add(l LogLine) {
	if l.Time.IsZero() {
		l.Time = b.now()
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
	defer close(b.exited)
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

// flush writes what is pending now, after any flush already under way.
func (b *logBuffer) flush() {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	lines := b.pending
	b.pending = nil
	b.mu.Unlock()
	if len(lines) == 0 {
		return
	}
	if err := b.store.AppendLog(context.Background(), b.fence, lines); err != nil {
		if b.onFail != nil && b.onFail(err) {
			return // fenced off: the lines of a runner that lost its lease are not evidence
		}
		b.log.Error("run log lost lines", "run", b.runID, "lines", len(lines), "err", err)
	}
}

// close flushes what is left and waits for the flusher to end.
func (b *logBuffer) close() {
	b.stopped.Do(func() { close(b.done) })
	<-b.exited
}

// Journal is the run journal. StepStarted and StepFinished commit on their
// own: the journal must be durable before and after each step runs. Each
// write names the lease it is made under and fails with ErrLeaseLost,
// writing nothing, when that lease is no longer current (fencing).
type Journal interface {
	StepStarted(ctx context.Context, f Fence, s StepRecord) (int64, error)
	// StepProcess records the process group a step's program runs in.
	StepProcess(ctx context.Context, f Fence, id int64, pgid int) error
	StepFinished(ctx context.Context, f Fence, id int64, state StepState, detail string) error
	AppendLog(ctx context.Context, f Fence, lines []LogLine) error
	GetRun(ctx context.Context, id string) (Run, error)
	Runs(ctx context.Context, updateID string, states ...RunState) ([]Run, error)
	// LatestRuns returns every running run and each environment's newest
	// run that is not running, newest first.
	LatestRuns(ctx context.Context) ([]Run, error)
	// LatestRun returns the newest run of any environment.
	LatestRun(ctx context.Context) (Run, bool, error)
	Steps(ctx context.Context, runID string) ([]StepRecord, error)
	// LogLines returns lines of runID's log after line id after, in id
	// order; with runID empty, of every run's log.
	LogLines(ctx context.Context, runID string, after int64, limit int) ([]LogLine, error)
	// LastLogLine returns the id of the newest line of any run's log.
	LastLogLine(ctx context.Context) (int64, error)
	TargetVersions(ctx context.Context, env string) (versions map[string]string, unknown []string, err error)
}
