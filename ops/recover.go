package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// RecoverRuns finishes runs that a dead process left running: their
// environment's lease expired (or was never renewed) and their journal
// ends mid-way. For each, it takes the lease over and, if the update may
// still run (approved, inside its window, plan unchanged, no freeze), it
// resumes: targets this run already deployed and checked are kept, the
// others (including any whose last step never finished) are deployed
// again. Otherwise it rolls every target the run touched back to the
// previous release. Either way no target is left on an unknown release.
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
		if _, mine := s.active.LoadOrStore(run.ID, true); mine {
			continue // this process is running (or recovering) it
		}
		steal := ""
		if l, ok := live[run.Environment]; ok && l.Holder != s.holder {
			if !holderDead(l.Holder) {
				s.active.Delete(run.ID)
				continue // its process is alive and renewing
			}
			steal = l.Holder // a process on this host that is gone: no need to wait for its lease to expire
		}
		res, err := s.recoverRun(ctx, run, steal, progress)
		s.active.Delete(run.ID)
		out = append(out, res)
		if err != nil && !errors.Is(err, ErrRunFailed) {
			errs = append(errs, fmt.Errorf("recover run %s: %w", run.ID, err))
		}
	}
	return out, errors.Join(errs...)
}

func (s *Service) recoverRun(ctx context.Context, run Run, deadHolder string, progress func(RunEvent)) (RunResult, error) {
	env, err := s.Environment(run.Environment)
	if err != nil {
		return RunResult{Run: run}, err
	}
	if deadHolder != "" {
		_, err = s.store.StealLease(ctx, env.Name, deadHolder, s.holder, run.ID, leaseTTL)
	} else {
		_, err = s.store.AcquireLease(ctx, env.Name, s.holder, run.ID, leaseTTL)
	}
	if err != nil {
		return RunResult{Run: run}, fmt.Errorf("%v: %w", err, ErrBlocked)
	}
	defer s.store.ReleaseLease(context.WithoutCancel(ctx), env.Name, s.holder)
	if err := s.store.TakeOverRun(ctx, run.ID, s.holder); err != nil {
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
	done, touched, unknown := journalState(steps, len(env.Health) > 0, env.Strategy.Bake > 0)

	// May it still run? Everything the gate checks except the update's own
	// state (running) and the lease (ours now).
	g, err := s.Gate(ctx, u)
	if err != nil {
		return RunResult{Run: run, Update: u}, err
	}
	var blockers []string
	for _, r := range g.Reasons {
		if r.Code != GateState && r.Code != GateLease {
			blockers = append(blockers, r.Message)
		}
	}
	r := s.newRunner(ctx, env, u, run, releases[env.Name], plan, progress)
	defer r.close()
	note := fmt.Sprintf("run %s was interrupted (its process died); %s took over: %d target(s) done, %d touched, %d in an unknown state (%s)",
		run.ID, s.holder, len(done), len(touched), len(unknown), strings.Join(unknown, ", "))
	r.emit(RunEvent{State: "recover", Message: note})
	if err := s.store.Atomic(ctx, func(tx Tx) error {
		return s.audit(ctx, tx, Event{Action: "run.recovered", Subject: run.ID, Environment: env.Name, UpdateID: u.ID,
			ChangeNumber: u.ChangeNumber, Result: "ok", Detail: map[string]any{"done": len(done), "unknown": unknown, "blockers": blockers}})
	}); err != nil {
		return RunResult{Run: run, Update: u}, err
	}
	var out runOutcome
	if len(blockers) == 0 {
		r.emit(RunEvent{State: "resume", Message: "the gate is still open: resuming"})
		out, err = r.execute(ctx, done)
	} else {
		cause := fmt.Errorf("run interrupted and may no longer run: %s", strings.Join(blockers, "; "))
		if r.exec, r.health, err = s.executors(env); err != nil {
			out, err = r.finishFailed(ctx, touched, fmt.Errorf("%v; cannot build the executor: %w", cause, err))
		} else {
			out, err = r.rollbackAll(ctx, touched, cause)
		}
	}
	return RunResult{Run: out.run, Update: out.update, Gate: g}, err
}

// journalState reads a run's journal: targets deployed and checked (done),
// every target a deploy was started on (touched), and targets whose last
// step never finished (unknown).
func journalState(steps []StepRecord, hasHealth, hasBake bool) (done map[string]bool, touched, unknown []string) {
	type st struct {
		deployed, healthy, baked, started bool
		last                              StepState
	}
	per := map[string]*st{}
	var order []string
	for _, s := range steps {
		t := per[s.Target]
		if t == nil {
			t = &st{}
			per[s.Target] = t
			order = append(order, s.Target)
		}
		t.last = s.State
		ok := s.State == StepSucceeded
		switch s.Step {
		case StepDeploy:
			t.started = true
			t.deployed, t.healthy, t.baked = ok, false, false
		case StepHealth:
			t.healthy = ok
		case StepBake:
			t.baked = ok
		case StepRollback:
			t.deployed = false
		}
	}
	done = map[string]bool{}
	for _, name := range order {
		t := per[name]
		if t.started {
			touched = append(touched, name)
		}
		if t.last == StepStarted {
			unknown = append(unknown, name)
		}
		if t.deployed && (!hasHealth || t.healthy) && (!hasBake || t.baked) && t.last != StepStarted {
			done[name] = true
		}
	}
	return done, touched, unknown
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
