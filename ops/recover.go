package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RecoverRuns finishes runs that another process left running: its
// process died, it stopped at a step boundary (a signal), or it stopped
// renewing its lease (paused, partitioned). For each, it takes the lease
// over — a new epoch, which fences the old holder off — makes sure no
// program of an earlier holder still runs a step (stopping any that do),
// and then follows the journal:
//   - a run that had decided to roll back only continues the rollback, over
//     every target the journal shows touched by any process;
//   - otherwise, if the update may still run (approved, inside its window,
//     plan unchanged, no freeze), it resumes: targets already deployed and
//     checked are kept, the others are deployed;
//   - otherwise it decides to roll back.
//
// Restored targets are verified by their version probe before the run
// claims them restored.
func (s *Service) RecoverRuns(ctx context.Context, progress func(RunEvent)) ([]RunResult, error) {
	runs, err := s.store.Runs(ctx, "", RunRunning)
	if err != nil {
		return nil, err
	}
	leases, err := s.store.Leases(ctx)
	if err != nil {
		return nil, err
	}
	live := map[string]Lease{}
	for _, l := range leases {
		live[l.Environment] = l
	}
	var out []RunResult
	var errs []error
	for _, run := range runs {
		if ctx.Err() != nil {
			break
		}
		if _, mine := s.active.LoadOrStore(run.ID, true); mine {
			continue // this process is running (or recovering) it
		}
		dead := ""
		if l, ok := live[run.Environment]; ok && l.Holder != s.holder {
			if !holderDead(l.Holder) {
				s.active.Delete(run.ID)
				continue // its process is alive and renewing
			}
			dead = l.Holder // a process on this host that is gone: no need to wait for its lease to expire
		}
		res, err := s.recoverRun(ctx, run, dead, progress)
		s.active.Delete(run.ID)
		out = append(out, res)
		if err != nil && !errors.Is(err, ErrRunFailed) && !errors.Is(err, ErrRunInterrupted) {
			errs = append(errs, fmt.Errorf("recover run %s: %w", run.ID, err))
		}
	}
	return out, errors.Join(errs...)
}

func (s *Service) recoverRun(ctx context.Context, run Run, deadHolder string, progress func(RunEvent)) (RunResult, error) {
	env, err := s.Environment(run.Environment)
	if err != nil {
		return RunResult{Run: run}, fmt.Errorf("run %s: its environment is no longer configured: %w", run.ID, err)
	}
	var fence Fence
	err = s.store.Atomic(ctx, func(tx Tx) error {
		l, err := tx.AcquireLease(ctx, LeaseRequest{Environment: env.Name, Holder: s.holder, RunID: run.ID, TTL: s.leaseTTL, DeadHolder: deadHolder})
		if err != nil {
			return fmt.Errorf("%w: %w", err, ErrBlocked)
		}
		fence = Fence{Environment: env.Name, Holder: s.holder, Epoch: l.Epoch}
		return nil
	})
	if err != nil {
		return RunResult{Run: run}, err
	}
	defer s.store.ReleaseLease(context.WithoutCancel(ctx), fence)

	// No step of an earlier holder may still be running when we act: stop
	// the programs it left behind on this host (they carry the run id and
	// an older epoch), and wait until they are gone.
	if s.reaper != nil {
		stoppedProcs, err := s.reaper.Reap(ctx, run.ID, fence.Epoch)
		if err != nil {
			return RunResult{Run: run}, fmt.Errorf("run %s: stopping the programs its previous holder left running: %w", run.ID, err)
		}
		for _, p := range stoppedProcs {
			s.log.Warn("stopped a step program of the previous holder", "run", run.ID, "process", p)
		}
	}
	if err := s.store.Atomic(ctx, func(tx Tx) error { return tx.TakeOverRun(ctx, run.ID, fence) }); err != nil {
		return RunResult{Run: run}, err
	}
	if run, err = s.store.GetRun(ctx, run.ID); err != nil {
		return RunResult{Run: run}, err
	}
	u, err := s.store.GetUpdate(ctx, run.UpdateID)
	if err != nil {
		return RunResult{Run: run}, err
	}
	var plan Plan
	if err := json.Unmarshal(u.Plan, &plan); err != nil {
		return RunResult{Run: run, Update: u}, fmt.Errorf("update %s: stored plan: %w", u.ID, err)
	}
	releases, err := s.store.CurrentReleases(ctx)
	if err != nil {
		return RunResult{Run: run, Update: u}, err
	}
	steps, err := s.store.Steps(ctx, run.ID)
	if err != nil {
		return RunResult{Run: run, Update: u}, err
	}
	view := readJournal(steps)
	hasHealth := len(env.Health) > 0
	done, touched, unknown := view.summary(hasHealth, hasHealth && env.Strategy.Bake > 0)

	g, err := s.Gate(ctx, u)
	if err != nil {
		return RunResult{Run: run, Update: u}, err
	}
	// May it still run? Everything the gate checks except the update's own
	// state (running) and the lease (ours now).
	var blockers []string
	for _, r := range g.Reasons {
		if r.Code != GateState && r.Code != GateLease && (!u.bundleRollback() && !u.emergencyRollback() || r.Code == GatePlan) {
			blockers = append(blockers, r.Message)
		}
	}
	r := s.newRunner(ctx, env, u, run, releases[env.Name], plan, fence, progress)
	defer r.close()
	if run.Decision != DecisionRollback {
		// A member of a bundle another member of which failed while it ran
		// is not resumed: it was being stopped early (bundle.go).
		if stop := s.bundleFailedBeside(ctx, u); stop != nil {
			r.earlyStop = stop
			blockers = append(blockers, stop.Error())
		}
	}
	course := "resume"
	switch {
	case run.Decision == DecisionRollback:
		course = "continue the rollback"
	case len(blockers) > 0:
		course = "roll back"
	}
	note := fmt.Sprintf("run %s was left by %s; %s took it over (epoch %d): %d target(s) done, %d touched, %d in an unknown state%s; it will %s",
		run.ID, orNone(steps0Holder(steps)), s.holder, fence.Epoch, len(done), len(touched), len(unknown), listSuffix(unknown), course)
	r.emit(RunEvent{State: EventRecover, Message: note})
	if err := s.store.Atomic(ctx, func(tx Tx) error {
		if err := tx.CheckFence(ctx, fence); err != nil {
			return err
		}
		return s.audit(ctx, tx, Event{
			Action: "run.recovered", Subject: run.ID, Environment: env.Name, UpdateID: u.ID,
			ChangeNumber: u.ChangeNumber, Result: "ok", Detail: map[string]any{
				"done": len(done), "touched": touched, "unknown": unknown,
				"blockers": blockers, "course": course, "epoch": fence.Epoch,
			},
		})
	}); err != nil {
		return RunResult{Run: run, Update: u}, err
	}
	var out runOutcome
	switch course {
	case "resume":
		r.emit(RunEvent{State: EventResume, Message: "the gate is still open: resuming"})
		out, err = r.execute(view)
	default:
		cause := fmt.Errorf("run interrupted and may no longer run: %s", strings.Join(blockers, "; "))
		if r.earlyStop != nil {
			cause = r.earlyStop // its rollback decision keeps the prefix
		}
		if run.Decision == DecisionRollback {
			cause = fmt.Errorf("continuing the rollback decided earlier: %s", run.DecisionReason)
			if strings.HasPrefix(run.DecisionReason, stopEarlyPrefix) {
				r.earlyStop = errors.New(run.DecisionReason) // a bundle member stopped early stays stopped
			}
		}
		if r.exec, r.health, err = s.executors(env); err != nil {
			out, err = r.finishFailed(touched, fmt.Errorf("%v; cannot build the executor: %w", cause, err))
		} else {
			out, err = r.rollbackAll(cause)
		}
	}
	return RunResult{Run: out.run, Update: out.update, Gate: g}, err
}

// steps0Holder names the process that last wrote the journal before us.
func steps0Holder(steps []StepRecord) string {
	for i := len(steps) - 1; i >= 0; i-- {
		if steps[i].Holder != "" {
			return steps[i].Holder
		}
	}
	return ""
}

func listSuffix(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return " (" + strings.Join(names, ", ") + ")"
}

// targetJournal is what a run's journal says about one target.
type targetJournal struct {
	// touched: a deploy was started on it, by any holder of the run.
	touched bool
	// deployed and healthy: its last deploy succeeded, and the health
	// check after it.
	deployed, healthy bool
	baked             bool
	// restored: its last deploy-or-rollback step is a successful rollback.
	restored bool
	last     StepState
}

func (t targetJournal) unknown() bool { return t.last == StepStarted || t.last == StepAbandoned }

// deployedOK: deployed and checked, and nothing unfinished after that.
func (t targetJournal) deployedOK(hasHealth bool) bool {
	return t.deployed && (!hasHealth || t.healthy) && !t.unknown()
}

// journalView is a run's journal read per target, in the order targets
// first appear in it.
type journalView struct {
	targets map[string]*targetJournal
	order   []string
}

func readJournal(steps []StepRecord) *journalView {
	v := &journalView{targets: map[string]*targetJournal{}}
	for _, s := range steps {
		t := v.targets[s.Target]
		if t == nil {
			t = &targetJournal{}
			v.targets[s.Target] = t
			v.order = append(v.order, s.Target)
		}
		t.last = s.State
		ok := s.State == StepSucceeded
		switch s.Step {
		case StepDeploy:
			t.touched = true
			t.deployed, t.healthy, t.baked, t.restored = ok, false, false, false
		case StepHealth:
			if t.deployed {
				t.healthy = ok
			}
		case StepBake:
			t.baked = ok
		case StepRollback:
			t.deployed, t.healthy, t.baked = false, false, false
			t.restored = ok
		}
	}
	return v
}

// target is one target's journal (zero for a fresh run or an untouched
// target).
func (v *journalView) target(name string) targetJournal {
	if v == nil || v.targets[name] == nil {
		return targetJournal{}
	}
	return *v.targets[name]
}

// touched lists every target a deploy was started on, by any holder.
func (v *journalView) touched() []string {
	if v == nil {
		return nil
	}
	var out []string
	for _, name := range v.order {
		if v.targets[name].touched {
			out = append(out, name)
		}
	}
	return out
}

// summary: targets deployed and checked (done), touched, and whose last
// step never finished (unknown).
func (v *journalView) summary(hasHealth, hasBake bool) (done map[string]bool, touched, unknown []string) {
	done = map[string]bool{}
	for _, name := range v.order {
		t := v.targets[name]
		if t.unknown() {
			unknown = append(unknown, name)
		}
		if t.deployedOK(hasHealth) && (!hasBake || t.baked) {
			done[name] = true
		}
	}
	return done, v.touched(), unknown
}

// journalState reads a run's journal: targets deployed and checked (done),
// every target a deploy was started on (touched), and targets whose last
// step never finished (unknown).
func journalState(steps []StepRecord, hasHealth, hasBake bool) (done map[string]bool, touched, unknown []string) {
	return readJournal(steps).summary(hasHealth, hasBake)
}

// holderDead reports whether a lease holder ("host:pid") is a process on
// this host that no longer exists. Holders on other hosts are never
// presumed dead: their leases expire instead.
func holderDead(holder string) bool {
	host, pidText, ok := strings.Cut(holder, ":")
	if !ok {
		return false
	}
	me, err := os.Hostname()
	if err != nil || host != me {
		return false
	}
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// LeaseStore keeps environment leases: at most one process rolls an
// environment at a time (leases are taken inside a transaction: Tx).
type LeaseStore interface {
	// RenewLease extends a lease still held under f's epoch and fails with
	// ErrLeaseLost otherwise; it never re-acquires a lost lease.
	RenewLease(ctx context.Context, f Fence, ttl time.Duration) error
	// ReleaseLease gives the lease back if f still holds it; the epoch is
	// kept so the next holder's is newer.
	ReleaseLease(ctx context.Context, f Fence) error
	Leases(ctx context.Context) ([]Lease, error)
}

// ResumeRuns is `daytwo run --resume`: RecoverRuns, then every bundle a
// dead process left unfinished — one whose member's run was just
// recovered, or that started and is not settled — is run on as RunBundle
// (`daytwo run CHG`) would: its next members, or its compensating
// rollbacks, and its one close. A bundle that rolled back is an outcome
// (in its result), not an error; one whose member another live process
// runs is left to it.
func (s *Service) ResumeRuns(ctx context.Context, progress func(RunEvent)) ([]RunResult, []BundleResult, error) {
	runs, err := s.RecoverRuns(ctx, progress)
	errs := []error{err}
	var ids []string
	for _, r := range runs {
		if r.Update.BundleID != "" && !slices.Contains(ids, r.Update.BundleID) {
			ids = append(ids, r.Update.BundleID)
		}
	}
	if l, ok := s.store.(UnsettledBundleLister); ok && ctx.Err() == nil {
		unsettled, err := l.UnsettledBundles(ctx)
		errs = append(errs, err)
		for _, id := range unsettled {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	var bundles []BundleResult
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		res, err := s.RunBundle(ctx, id, progress)
		runs = append(runs, res.Runs...)
		bundles = append(bundles, res)
		if err != nil && !errors.Is(err, ErrRunFailed) && !errors.Is(err, ErrBlocked) {
			errs = append(errs, err)
		}
	}
	return runs, bundles, errors.Join(errs...)
}
