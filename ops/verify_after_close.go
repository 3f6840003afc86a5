package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The verification window after the close (verify.after_close on a gated
// environment). The run closes the original change successful when its
// last batch ends and records the window as opened in the same
// transaction; the window then watches every target under the run's
// lease (no other run starts on the environment meanwhile). Its verdict
// is one transaction, made once under the lease (a fact of the run):
//   - passed: recorded;
//   - failed, on_failure alert: recorded;
//   - failed, on_failure incident: an incident caused_by the original
//     change, naming the failing checks and their numbers;
//   - failed, on_failure rollback: the same incident, plus an emergency
//     rollback update (id: the original's + emergencySuffix) whose
//     emergency change — same CI and assignment group, parent = the
//     original change — is raised, asked for authorization and given the
//     evidence, all through the outbox. The rollback runs at once:
//     self-healing cannot wait for the ECAB. Its change is left awaiting
//     retrospective authorization; once ServiceNow shows it authorized,
//     the daemon closes it, successful only if the rollback restored every
//     target (CloseEmergencyChanges).
//
// A process that dies (or is stopped) in the window judged nothing: the
// daemon's next pass finds the window opened and not closed, takes the
// lease and watches what is left of it (or, when it ended unwatched, for
// reJudge more), and runs an emergency rollback that was decided but not
// started; a rollback run that died mid-way is recovered like any run.

const (
	actionWindowOpened = "verify.window_opened"
	actionWindowClosed = "verify.window_closed"
	// emergencySuffix makes the emergency rollback's update id from the
	// original's: the link between them, and a second verdict cannot
	// insert a second rollback.
	emergencySuffix = "-emergency"
	// reJudge is how long a window that ended while no process watched it
	// is watched again before it is judged: a window nobody watched
	// proves nothing.
	reJudge = time.Minute
)

// afterClose reports whether u's verification window runs after its
// change is closed.
func afterClose(env Environment, u Update) bool {
	v := env.Verify
	return v != nil && v.AfterClose && v.Window > 0 && env.RequiresChange && len(env.Health) > 0 &&
		u.BundleID == "" && !u.Rollback
}

// emergencyRollback reports an update daytwo raised to roll a release
// back after its after_close verification window failed.
func (u Update) emergencyRollback() bool {
	return u.Rollback && u.BundleID == "" && strings.HasSuffix(u.ID, emergencySuffix)
}

// emergencyRollbackMayRun reports whether an emergency rollback may run
// although its gate is closed: its change awaits (retrospective)
// authorization, and a window, freeze or policy no more stops it than it
// stops a failed run's own rollback. Only what would make it unsafe
// (another run holds the unit, the plan changed, it is not runnable) does.
func emergencyRollbackMayRun(u Update, g GateResult) bool {
	return u.emergencyRollback() && onlyGatingReasons(g)
}

// windowOpened records, inside the run's closing transaction, that the
// verification window continues after the close: a work note on the
// change (queued before the close) and the audit event recovery reads.
func (r *runner) windowOpened(ctx context.Context, tx Tx) error {
	v := r.env.Verify
	until := tx.Now().Add(v.Window)
	note := fmt.Sprintf("daytwo run %s: every batch passed; the change is closed successful now and the verification window continues after the close: "+
		"every target is watched for %s (until %s), on failure: %s. A failure then is handled as unplanned work: %s.",
		r.run.ID, v.Window, until.UTC().Format(TimeLayout), onFailure(v), afterCloseConsequence(onFailure(v)))
	if err := r.s.enqueue(ctx, tx, r.u.outboxKey(), OutboxWorkNote, notePayload{UpdateID: r.u.ID, Note: note}); err != nil {
		return err
	}
	return r.s.audit(ctx, tx, Event{
		Action: actionWindowOpened, Subject: r.run.ID, Environment: r.env.Name, UpdateID: r.u.ID,
		ChangeNumber: r.u.ChangeNumber, Result: "open", Detail: map[string]any{
			"run": r.run.ID, "window": v.Window.String(), "until": until.UTC().Format(time.RFC3339Nano), "on_failure": onFailure(v),
		},
	})
}

func afterCloseConsequence(mode string) string {
	switch mode {
	case "incident":
		return "an incident caused by this change, the release kept"
	case "alert":
		return "recorded in the run log and the audit log, the release kept"
	}
	return "an emergency change linked to this one rolls the release back, and an incident caused by this change is opened"
}

// errWindowFailed reports a failed after_close window (its consequences
// were recorded).
var errWindowFailed = errors.New("verification window after the close failed")

// afterCloseWindow watches the release until until (at least reJudge when
// that has passed) and records the verdict once. It returns nil when the
// window passed or failed with the release kept (on_failure incident or
// alert), an error wrapping ErrRunFailed when the release was rolled back
// (or should have been and could not be), ErrRunInterrupted when
// stopped before the verdict (the daemon resumes it), ErrLeaseLost when
// another process took it over.
func (r *runner) afterCloseWindow(until time.Time) error {
	v := r.env.Verify
	left := until.Sub(r.s.now())
	if left <= 0 {
		left = min(v.Window, reJudge)
	}
	r.emit(RunEvent{Step: StepBake, State: EventVerify, Message: fmt.Sprintf(
		"verification window after the close: watching every target for %s (on failure: %s); change %s is closed successful",
		left.Round(time.Millisecond), onFailure(v), r.u.ChangeNumber)})
	failures := r.watchWindow(left)
	if r.lost.Load() {
		_, err := r.fenced()
		return err
	}
	if r.stopping() {
		cause := context.Cause(r.stop)
		r.emit(RunEvent{State: EventStopped, Message: fmt.Sprintf("verification window after the close stopped before its verdict (%v); daytwo resumes it", cause)})
		return fmt.Errorf("run %s: verification window after the close: %v: %w", r.run.ID, cause, ErrRunInterrupted)
	}
	eu, first, err := r.windowVerdict(failures)
	if err != nil {
		if r.check(err) {
			_, err = r.fenced()
		}
		return err
	}
	if len(failures) == 0 {
		r.emit(RunEvent{Step: StepBake, State: EventVerified, Message: "verification window after the close passed: every target verified"})
		return nil
	}
	summary := fmt.Sprintf("%v: %s", errWindowFailed, strings.Join(failures, "; "))
	r.emit(RunEvent{Step: StepBake, State: EventVerifyFailed, Message: fmt.Sprintf("%s (on failure: %s)", summary, onFailure(v))})
	if onFailure(v) != "rollback" {
		return nil // the release is kept, as the environment asks; the failure is recorded
	}
	if !first {
		return fmt.Errorf("%s (judged by another process): %w", summary, ErrRunFailed)
	}
	if eu.ID == "" {
		return fmt.Errorf("%s; the release could NOT be rolled back (the audit log and the incident say why): %w", summary, ErrRunFailed)
	}
	// The emergency rollback runs under its own lease: let ours go, its
	// log written first (a line flushed after the release would be refused
	// as a lost lease's, and stop this runner and the rollback with it).
	r.stopRenew()
	<-r.renewDone
	r.logs.close()
	r.s.store.ReleaseLease(context.WithoutCancel(r.work), r.fence)
	res, rerr := r.s.Run(r.stop, RunRequest{Update: eu.ID, Progress: r.progress})
	if rerr != nil && !errors.Is(rerr, ErrRunFailed) {
		return fmt.Errorf("%s; emergency rollback %s: %w", summary, eu.ID, rerr)
	}
	return fmt.Errorf("%s; emergency rollback %s %s: %w", summary, eu.ID, res.Update.State, ErrRunFailed)
}

// windowVerdict records the window's verdict, once (false: another holder
// of the run already recorded one), with its consequences, in one
// transaction under the run's lease. It returns the emergency rollback
// update it stored, if any.
func (r *runner) windowVerdict(failures []string) (eu Update, first bool, err error) {
	v := r.env.Verify
	mode := onFailure(v)
	ctx := context.WithoutCancel(r.work)
	result := "passed"
	if len(failures) > 0 {
		result = "failed"
	}
	err = r.s.store.Atomic(ctx, func(tx Tx) error {
		eu = Update{}
		if err := tx.CheckFence(ctx, r.fence); err != nil {
			return err
		}
		var err error
		if first, err = tx.RecordFact(ctx, r.run.ID, "verify:after_close:verdict"); err != nil || !first {
			return err
		}
		detail := map[string]any{"run": r.run.ID, "window": v.Window.String(), "on_failure": mode, "failures": failures}
		what := "The release was kept (verify.on_failure: incident)."
		if len(failures) > 0 && mode == "rollback" {
			var perr error
			if eu, perr = r.proposeEmergencyRollback(ctx, tx, failures); perr != nil && !errors.Is(perr, errNoEmergencyRollback) {
				return perr
			} else if perr != nil {
				// Nothing to roll back to, or another update open: the
				// incident says so, and so does the record.
				detail["emergency_rollback_refused"] = perr.Error()
				r.s.log.Error("emergency rollback not possible", "update", r.u.ID, "err", perr)
				eu = Update{}
				what = fmt.Sprintf("daytwo could NOT roll the release back: %v. The release is still in place.", perr)
			} else {
				detail["emergency_update"] = eu.ID
				what = fmt.Sprintf("daytwo rolls the release back under an emergency change (update %s) linked to change %s.", eu.ID, r.u.ChangeNumber)
			}
		}
		if len(failures) > 0 && mode != "alert" {
			inc := r.windowIncident(failures, what)
			if err := r.s.enqueue(ctx, tx, r.u.outboxKey(), OutboxCreateIncident, incidentPayload{UpdateID: r.u.ID, Request: inc}); err != nil {
				return err
			}
			detail["incident_correlation_id"] = inc.CorrelationID
		}
		return r.s.audit(ctx, tx, Event{
			Action: actionWindowClosed, Subject: r.run.ID, Environment: r.env.Name, UpdateID: r.u.ID,
			ChangeNumber: r.u.ChangeNumber, Result: result, Detail: detail,
		})
	})
	if err == nil && first {
		r.s.kickOutbox(ctx, r.u.outboxKey())
		if eu.ID != "" {
			r.s.kickOutbox(ctx, eu.outboxKey())
		}
	}
	return eu, first, err
}

func (r *runner) windowIncident(failures []string, what string) IncidentRequest {
	v := r.env.Verify
	return environmentIncident(r.env, r.s.correlationID(r.u.ID)+":verify-after-close",
		fmt.Sprintf("daytwo: %s on %s failed its verification window after change %s closed", r.u.Version, r.env.Name, r.u.ChangeNumber),
		fmt.Sprintf("%v (window %s after change %s closed successful):\n%s\n\n%s Caused by change %s, update %s, run %s.",
			errWindowFailed, v.Window, r.u.ChangeNumber, strings.Join(failures, "\n"), what, r.u.ChangeNumber, r.u.ID, r.run.ID))
}

// errNoEmergencyRollback refuses an emergency rollback that cannot be
// made (nothing to roll back to, another update open); the verdict is
// recorded without it.
var errNoEmergencyRollback = errors.New("no emergency rollback")

// proposeEmergencyRollback stores, inside tx, the update that returns the
// environment to the release before r.u, runnable at once, and queues its
// emergency change: create (parent: the original change), authorization
// request and the evidence as a work note.
func (r *runner) proposeEmergencyRollback(ctx context.Context, tx Tx, failures []string) (Update, error) {
	cur, back, err := r.s.releaseAndPrevious(ctx, r.env.Name, r.u.ID)
	if errors.Is(err, ErrNotFound) {
		return Update{}, fmt.Errorf("%w: %w", errNoEmergencyRollback, err)
	} else if err != nil {
		return Update{}, err
	}
	plan, err := BuildPlan(r.env, cur, back.Version, back.Config)
	if err != nil {
		return Update{}, fmt.Errorf("%w: %w", errNoEmergencyRollback, err)
	}
	open, err := tx.OpenUpdates(ctx, r.env.Name)
	if err != nil {
		return Update{}, err
	}
	if len(open) > 0 {
		return Update{}, fmt.Errorf("%w: cannot roll %s back: %w", errNoEmergencyRollback, r.env.Name, openUpdateErr(open[0], false))
	}
	v := r.env.Verify
	u := Update{
		ID: r.u.ID + emergencySuffix, Environment: r.env.Name, Version: back.Version, Config: back.Config, FromVersion: cur.Version,
		PlanDigest: plan.Digest(), State: UpdateApproved, ChangeType: ChangeEmergency, Rollback: true,
		Reason:    fmt.Sprintf("verification window %s after change %s closed failed; emergency rollback of %s", v.Window, r.u.ChangeNumber, r.u.Version),
		CreatedBy: r.s.cfg.Actor, CreatedAt: r.s.now(),
	}
	// Self-healing cannot wait for the ECAB: the rollback runs now and
	// its change is authorized retrospectively (the closing notes say so).
	u.ApprovedDigest = u.PlanDigest
	if u.Plan, err = json.Marshal(plan); err != nil {
		return Update{}, err
	}
	if err := tx.InsertUpdate(ctx, u); err != nil {
		return Update{}, err
	}
	evidence := strings.Join(failures, "\n")
	creq := ChangeRequest{
		CorrelationID: r.s.correlationID(u.ID), Type: ChangeEmergency,
		ShortDescription: fmt.Sprintf("daytwo emergency rollback: %s on %s back to %s (failed verification after %s)",
			r.u.Version, r.env.Name, back.Version, r.u.ChangeNumber),
		Description: fmt.Sprintf("Emergency change raised by daytwo for unplanned work: release %s on %s, shipped by change %s (update %s, run %s, closed successful), "+
			"failed its verification window (%s after the close):\n%s\n\n"+
			"daytwo rolls every target back to %s at once (self-healing cannot wait for the emergency CAB); this change is raised to record it and is "+
			"to be authorized retrospectively. daytwo closes it once it is authorized. Parent change: %s.\n\n%s",
			r.u.Version, r.env.Name, r.u.ChangeNumber, r.u.ID, r.run.ID, v.Window, evidence, back.Version, r.u.ChangeNumber, changeDescription(u, plan)),
		CmdbCI: r.env.Change.CmdbCI, AssignmentGroup: r.env.Change.AssignmentGroup,
		Risk: r.env.Change.Risk, Impact: r.env.Change.Impact, Start: r.s.now(), End: r.s.now().Add(max(r.env.Change.Window, time.Hour)),
		Parent: r.u.ChangeSysID,
	}
	note := fmt.Sprintf("daytwo: verification window %s after change %s closed failed on %s %s; the failing checks, with their numbers:\n%s",
		v.Window, r.u.ChangeNumber, r.env.Name, r.u.Version, evidence)
	for _, it := range []struct {
		kind    OutboxKind
		payload any
	}{
		{OutboxCreateChange, createChangePayload{UpdateID: u.ID, Request: creq}},
		{OutboxRequestApproval, updatePayload{UpdateID: u.ID}},
		{OutboxWorkNote, notePayload{UpdateID: u.ID, Note: note}},
	} {
		if err := r.s.enqueue(ctx, tx, u.outboxKey(), it.kind, it.payload); err != nil {
			return Update{}, err
		}
	}
	return u, r.s.audit(ctx, tx, Event{
		Action: "verify.emergency_rollback", Subject: u.ID, Environment: r.env.Name, UpdateID: u.ID,
		ChangeNumber: r.u.ChangeNumber, Result: "proposed", Detail: map[string]any{
			"original_update": r.u.ID, "original_change": r.u.ChangeNumber, "original_change_sys_id": r.u.ChangeSysID,
			"version": u.Version, "from_version": u.FromVersion, "failures": failures,
		},
	})
}

// releaseAndPrevious returns the release update id put in place and the
// release before it that was not rolled back.
func (s *Service) releaseAndPrevious(ctx context.Context, env, updateID string) (cur, back Release, err error) {
	rels, err := s.store.Releases(ctx, env, 0)
	if err != nil {
		return cur, back, err
	}
	found := false
	for _, r := range rels {
		switch {
		case !found && r.UpdateID == updateID:
			cur, found = r, true
		case found && r.Status != ReleaseRolledBack:
			return cur, r, nil
		}
	}
	if !found {
		return cur, back, fmt.Errorf("%s: update %s put no release in place: %w", env, updateID, ErrNotFound)
	}
	return cur, back, fmt.Errorf("%s: no release before %s to roll back to: %w", env, cur.Version, ErrNotFound)
}

// verifyEmergency asks every target of an emergency rollback, once its
// batches passed, which version it runs (journaled verify steps): it is
// claimed restored only when each reports the release it went back to.
// done reports that the run ended here (failed, stopped or fenced off).
func (r *runner) verifyEmergency() (out runOutcome, err error, done bool) {
	if !r.u.emergencyRollback() {
		return out, nil, false
	}
	names := make([]string, len(r.env.Targets))
	for i, t := range r.env.Targets {
		names[i] = t.Name
	}
	// The runner's "previous release" is the one rolled back from; the
	// probe must find the update's own version.
	from := r.from
	r.from = Release{Environment: r.env.Name, Version: r.u.Version, Config: r.u.Config}
	verified, unverified, failed := r.verifyRestored(names, r.targets())
	r.from = from
	switch {
	case r.lost.Load():
		out, err = r.fenced()
		return out, err, true
	case len(failed) > 0:
		out, err = r.finishFailed(names, fmt.Errorf("emergency rollback to %s: not every target is back: %s", r.u.Version, strings.Join(failed, "; ")))
		return out, err, true
	case unverified > 0:
		r.restored = "its health checks passed on every target, but none was verified by a version probe (the environment has no version_probe)"
	default:
		r.restored = fmt.Sprintf("every target was restored: each of the %d verified on %s by its version probe", verified, r.u.Version)
	}
	return out, nil, false
}

// emergencyFinished replaces, inside the closing transaction of an
// emergency rollback's run, the close a normal run queues: the change
// cannot be closed before it is authorized, so the run's outcome goes to
// its work notes and CloseEmergencyChanges closes it later.
func (r *runner) emergencyFinished(ctx context.Context, tx Tx, restored bool, summary string) error {
	what := r.restored
	if !restored {
		what = "the rollback did NOT restore every target"
	}
	note := fmt.Sprintf("%s\n\nThe rollback ran before this emergency change was authorized (self-healing); %s. "+
		"The change awaits retrospective authorization: daytwo closes it %s once it is authorized.",
		summary, what, map[bool]string{true: "successful", false: "unsuccessful"}[restored])
	return r.s.enqueue(ctx, tx, r.u.outboxKey(), OutboxWorkNote, notePayload{UpdateID: r.u.ID, Note: note})
}

// AfterCloseWindows is the daemon's part of the windows after the close:
// it resumes (or re-judges) every window a process left opened and not
// judged, runs an emergency rollback that was decided but not started,
// and closes emergency changes that ServiceNow shows authorized. It
// returns the runs it made.
func (s *Service) AfterCloseWindows(ctx context.Context, progress func(RunEvent)) ([]RunResult, error) {
	var (
		out      []RunResult
		errs     []error
		releases map[string]Release
		loaded   bool
	)
	for _, env := range s.Environments() {
		if ctx.Err() != nil {
			break
		}
		v := env.Verify
		if v == nil || !v.AfterClose || !env.RequiresChange {
			continue
		}
		// Read only by a pass that has a window to look at: most
		// configurations set no after_close, and this runs every pass.
		if !loaded {
			var err error
			if releases, err = s.store.CurrentReleases(ctx); err != nil {
				return nil, err
			}
			loaded = true
		}
		rel, ok := releases[env.Name]
		if !ok || rel.UpdateID == "" {
			continue
		}
		u, err := s.store.GetUpdate(ctx, rel.UpdateID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		orig := u
		if u.emergencyRollback() {
			if orig, err = s.store.GetUpdate(ctx, strings.TrimSuffix(u.ID, emergencySuffix)); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		res, err := s.afterCloseWindow(ctx, env, orig, progress)
		out = append(out, res...)
		if err != nil && !errors.Is(err, ErrRunFailed) && !errors.Is(err, ErrRunInterrupted) && !errors.Is(err, ErrBlocked) {
			errs = append(errs, fmt.Errorf("%s: verification window after the close: %w", env.Name, err))
		}
	}
	return out, errors.Join(errs...)
}

// afterCloseWindow does what is due for original update u's window.
func (s *Service) afterCloseWindow(ctx context.Context, env Environment, u Update, progress func(RunEvent)) ([]RunResult, error) {
	if !afterClose(env, u) || u.State != UpdateSucceeded {
		return nil, nil
	}
	evs, err := s.store.ListEvents(ctx, EventFilter{UpdateID: u.ID})
	if err != nil {
		return nil, err
	}
	var opened, closed *Event
	for i := range evs {
		switch evs[i].Action {
		case actionWindowOpened:
			opened = &evs[i]
		case actionWindowClosed:
			closed = &evs[i]
		}
	}
	switch {
	case opened == nil:
		return nil, nil
	case closed == nil:
		return nil, s.resumeWindow(ctx, env, u, *opened, progress)
	}
	eu, err := s.store.GetUpdate(ctx, u.ID+emergencySuffix)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	switch eu.State {
	case UpdateApproved, UpdateScheduled:
		// Decided, not started (its process died in between).
		res, err := s.Run(ctx, RunRequest{Update: eu.ID, Progress: progress})
		return []RunResult{res}, err
	case UpdateSucceeded, UpdateFailed, UpdateRolledBack:
		return nil, s.closeEmergencyChange(ctx, eu)
	}
	return nil, nil
}

// resumeWindow takes over an opened, unjudged window whose process is
// gone (its lease free, expired or held by a dead process on this host).
func (s *Service) resumeWindow(ctx context.Context, env Environment, u Update, opened Event, progress func(RunEvent)) error {
	runID, _ := opened.Detail["run"].(string)
	untilText, _ := opened.Detail["until"].(string)
	until, err := time.Parse(time.RFC3339Nano, untilText)
	if runID == "" || err != nil {
		return fmt.Errorf("update %s: the opened window's record names no run or end (%q, %q)", u.ID, runID, untilText)
	}
	key := "verify:" + runID
	if _, mine := s.active.LoadOrStore(key, true); mine {
		return nil // this process watches it
	}
	defer s.active.Delete(key)
	dead := ""
	leases, err := s.store.Leases(ctx)
	if err != nil {
		return err
	}
	for _, l := range leases {
		if l.Environment == env.Name && l.Holder != s.holder {
			if !holderDead(l.Holder) && l.ExpiresAt.After(s.now()) {
				return nil // its process is alive and renewing
			}
			dead = l.Holder
		}
	}
	var fence Fence
	if err := s.store.Atomic(ctx, func(tx Tx) error {
		l, err := tx.AcquireLease(ctx, LeaseRequest{Environment: env.Name, Holder: s.holder, RunID: runID, TTL: s.leaseTTL, DeadHolder: dead})
		if err != nil {
			return fmt.Errorf("%w: %w", err, ErrBlocked)
		}
		fence = Fence{Environment: env.Name, Holder: s.holder, Epoch: l.Epoch}
		return nil
	}); err != nil {
		return err
	}
	defer s.store.ReleaseLease(context.WithoutCancel(ctx), fence)
	run, err := s.store.GetRun(ctx, runID)
	if err != nil {
		return err
	}
	var plan Plan
	if err := json.Unmarshal(u.Plan, &plan); err != nil {
		return fmt.Errorf("update %s: stored plan: %w", u.ID, err)
	}
	_, back, _ := s.releaseAndPrevious(ctx, env.Name, u.ID) // the previous release only informs the checks' templates
	r := s.newRunner(ctx, env, u, run, back, plan, fence, progress)
	defer r.close()
	if r.exec, r.health, err = s.executors(env); err != nil {
		return fmt.Errorf("cannot build the health checks for %s: %w", env.Name, err)
	}
	how := "resuming"
	if !until.After(s.now()) {
		how = "re-judging (it ended while no process watched it)"
	}
	r.emit(RunEvent{Step: StepBake, State: EventVerify, Message: fmt.Sprintf("%s on %s %s the verification window after change %s closed, opened by run %s until %s",
		s.holder, how, env.Name, u.ChangeNumber, run.ID, until.UTC().Format(TimeLayout))})
	return r.afterCloseWindow(until)
}

// closeEmergencyChange closes the change of a finished emergency rollback
// once ServiceNow shows it authorized (Scheduled or later), once:
// successful when the rollback restored every target, unsuccessful
// otherwise. A change still awaiting authorization is left as it is.
func (s *Service) closeEmergencyChange(ctx context.Context, eu Update) error {
	if eu.ChangeSysID == "" {
		return nil // its create is still in the outbox
	}
	ch, err := s.store.GetChange(ctx, eu.ChangeSysID)
	if errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	switch ch.State {
	case ChangeScheduled, ChangeImplement, ChangeReview:
	default:
		return nil // New/Authorize: awaiting authorization; Closed/Canceled: done
	}
	if ch.Approval != ApprovalApproved {
		return nil
	}
	runs, err := s.store.Runs(ctx, eu.ID)
	if err != nil || len(runs) == 0 {
		return err
	}
	run := runs[len(runs)-1]
	code, what := "successful", "every target was restored, each verified by its version probe"
	if env, err := s.Environment(eu.Environment); err == nil && env.VersionProbe.HTTP == nil && len(env.VersionProbe.Command) == 0 {
		what = "its health checks passed on every target; none was verified by a version probe (the environment has none)"
	}
	if eu.State != UpdateSucceeded {
		code, what = "unsuccessful", "the rollback did NOT restore every target ("+run.Error+")"
	}
	notes := fmt.Sprintf("Emergency rollback of %s on %s (update %s, run %s): %s. The rollback ran before this change was authorized "+
		"(self-healing after the verification window of update %s failed); authorized retrospectively, closed by daytwo.",
		eu.FromVersion, eu.Environment, eu.ID, run.ID, what, strings.TrimSuffix(eu.ID, emergencySuffix))
	ctx = context.WithoutCancel(ctx)
	err = s.store.Atomic(ctx, func(tx Tx) error {
		first, err := tx.RecordFact(ctx, run.ID, "emergency:close")
		if err != nil || !first {
			return err
		}
		if err := s.enqueue(ctx, tx, eu.outboxKey(), OutboxCloseChange, closePayload{UpdateID: eu.ID, Code: code, Notes: notes}); err != nil {
			return err
		}
		return s.audit(ctx, tx, Event{
			Action: "verify.emergency_close", Subject: eu.ChangeNumber, Environment: eu.Environment, UpdateID: eu.ID,
			ChangeNumber: eu.ChangeNumber, Result: code, Detail: map[string]any{
				"original_update": strings.TrimSuffix(eu.ID, emergencySuffix), "run": run.ID, "authorized": ch.State.String(),
			},
		})
	})
	if err == nil {
		s.kickOutbox(ctx, eu.outboxKey())
	}
	return err
}
