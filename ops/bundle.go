package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// A bundle is several services' updates in one stage raised under one
// change request and run as one release train: members run in bundle_seq
// order (members sharing a seq run at once, --parallel), and when one
// fails every member that was touched is rolled back, the members not
// started are canceled, and the change is closed unsuccessful once with
// one incident naming the failed service.
//
// The bundle's id is its first member's update id: the change's
// correlation id and the outbox key of every write to the change are that
// update's, as for an update of its own, so the writes of all members to
// the one change are delivered in the order they were made.
//
// A member that succeeded is rolled back by a compensating update: a
// rollback update of the same unit and bundle, approved by the bundle's
// change, run like any other (own run, journal, lease), so a crash in the
// middle of it is recovered by the same rules. The member is recorded
// rolled back only once that run has restored (and verified) its targets.

// BundleMember is one service's part of a bundle request.
type BundleMember struct {
	Service string            `json:"service"`
	Version string            `json:"version"`
	Set     map[string]string `json:"set,omitempty"`
}

// BundleRequest asks to release several services to one stage under one
// change.
type BundleRequest struct {
	// Stage is the shared environment (staging, production).
	Stage   string
	Members []BundleMember
	// Parallel runs every member at once instead of in the given order.
	Parallel   bool
	ChangeType ChangeType
	Start, End time.Time
	Force      bool
	DryRun     bool
}

// BundleProposal is the outcome of ProposeBundle.
type BundleProposal struct {
	ID       string     `json:"id"`
	Stage    string     `json:"stage"`
	Parallel bool       `json:"parallel"`
	Members  []Proposal `json:"members"`
	// Change is the short description of the change raised for the
	// bundle ("" for an ungated stage).
	Change string       `json:"change_short_description,omitempty"`
	Queued []OutboxKind `json:"queued,omitempty"`
}

// AffectedCIAdder attaches further configuration items to a change (ServiceNow: task_ci).
type AffectedCIAdder interface {
	// AddAffectedCIs associates every named CI (names or sys_ids) with the change as affected; a CI already
	// associated is not associated twice, so a retry is safe.
	AddAffectedCIs(ctx context.Context, changeSysID string, cis []string) error
}

// OutboxAddAffectedCIs attaches a bundle's CIs to its change.
const OutboxAddAffectedCIs OutboxKind = "change.add_affected_cis"

type affectedCIsPayload struct {
	UpdateID string   `json:"update_id"`
	CIs      []string `json:"cis"`
}

// outboxKey is the ordering key of the update's writes to its change: the
// bundle's for a bundle member (one change, one order), its own otherwise.
func (u Update) outboxKey() string {
	if u.BundleID != "" {
		return u.BundleID
	}
	return u.ID
}

// bundleRollback reports a compensating update: the rollback of a bundle
// member because another member failed.
func (u Update) bundleRollback() bool { return u.BundleID != "" && u.Rollback }

// Unit returns the configured (service, stage) pair (ResolveEnvironment
// with both named).
func (s *Service) Unit(service, stage string) (Environment, error) {
	if service == "" {
		return Environment{}, fmt.Errorf("no service named: %w", ErrNotFound)
	}
	return s.ResolveEnvironment(service, stage)
}

// ProposeBundle proposes one update per member in req.Stage, all under one
// change (for a gated stage) whose description lists every member's plan
// and to which every member's CI is attached. Every member goes through
// Propose's checks; if any is refused, the whole bundle is refused with
// every reason and nothing is stored.
func (s *Service) ProposeBundle(ctx context.Context, req BundleRequest) (BundleProposal, error) {
	if len(req.Members) < 2 {
		return BundleProposal{}, fmt.Errorf("a bundle needs at least two services (got %d): propose one service on its own", len(req.Members))
	}
	releases, err := s.store.CurrentReleases(ctx)
	if err != nil {
		return BundleProposal{}, err
	}
	var (
		drafts  []proposalDraft
		refused []string
		blocked bool
		seen    = map[string]bool{}
	)
	for _, m := range req.Members {
		if seen[m.Service] {
			return BundleProposal{}, fmt.Errorf("service %s is named twice in the bundle", m.Service)
		}
		seen[m.Service] = true
		env, err := s.Unit(m.Service, req.Stage)
		if err != nil {
			return BundleProposal{}, err
		}
		d, err := s.draftProposal(ctx, ProposeRequest{
			Environment: env.Name, Version: m.Version, Set: m.Set, ChangeType: req.ChangeType, Force: req.Force, DryRun: req.DryRun,
		}, releases)
		if err != nil {
			if errors.Is(err, ErrBlocked) {
				blocked = true
			}
			refused = append(refused, fmt.Sprintf("%s: %v", m.Service, err))
			continue
		}
		if d.p.Blocked {
			blocked = true
			refused = append(refused, fmt.Sprintf("%s: %s", m.Service, d.p.Update.Reason))
		}
		drafts = append(drafts, d)
	}
	if len(drafts) == len(req.Members) {
		for _, d := range drafts[1:] {
			if d.env.RequiresChange != drafts[0].env.RequiresChange {
				return BundleProposal{}, fmt.Errorf("the services of a bundle share one gate: %s requires a change in %s and %s does not",
					svcOf(drafts[0].env), req.Stage, svcOf(d.env))
			}
		}
	}
	if !req.DryRun {
		for _, d := range drafts {
			open, err := s.store.ListUpdates(ctx, UpdateFilter{Environment: d.env.Name, States: OpenUpdateStates()})
			if err != nil {
				return BundleProposal{}, err
			}
			for _, o := range open {
				blocked = true
				refused = append(refused, fmt.Sprintf("%s: %v", svcOf(d.env), openUpdateErr(o, false)))
			}
		}
	}
	if len(refused) > 0 {
		err := fmt.Errorf("bundle refused, nothing was created: %s", strings.Join(refused, "; "))
		if blocked {
			err = fmt.Errorf("%w: %w", err, ErrBlocked)
		}
		return BundleProposal{}, err
	}

	id := drafts[0].p.Update.ID
	bp := BundleProposal{ID: id, Stage: req.Stage, Parallel: req.Parallel}
	ids := make([]string, len(drafts))
	for i := range drafts {
		u := &drafts[i].p.Update
		u.BundleID, u.BundleSeq = id, i+1
		if req.Parallel {
			u.BundleSeq = 1
		}
		ids[i] = u.ID
	}
	lead := drafts[0]
	var outbox []OutboxItem
	if lead.env.RequiresChange {
		start, end := req.Start, req.End
		if start.IsZero() {
			start = lead.now
		}
		if end.IsZero() {
			end = start.Add(lead.env.Change.Window)
		}
		if !end.After(start) {
			return BundleProposal{}, fmt.Errorf("change window ends (%s) before it starts (%s)", end.Format(time.RFC3339), start.Format(time.RFC3339))
		}
		creq := ChangeRequest{
			CorrelationID: s.correlationID(id), Type: lead.env.Change.Type, Template: lead.env.Change.Template,
			ShortDescription: bundleShortDescription(id, req.Stage, drafts), Description: s.bundleDescription(id, req, drafts),
			CmdbCI: lead.env.Change.CmdbCI, AssignmentGroup: lead.env.Change.AssignmentGroup,
			Risk: lead.env.Change.Risk, Impact: lead.env.Change.Impact, Start: start, End: end,
		}
		bp.Change = creq.ShortDescription
		var cis []string
		for _, d := range drafts {
			if ci := d.env.Change.CmdbCI; ci != "" && !slices.Contains(cis, ci) {
				cis = append(cis, ci)
			}
		}
		items := []struct {
			kind    OutboxKind
			payload any
		}{{OutboxCreateChange, createChangePayload{UpdateID: id, Request: creq, Members: ids}}}
		if len(cis) > 0 {
			items = append(items, struct {
				kind    OutboxKind
				payload any
			}{OutboxAddAffectedCIs, affectedCIsPayload{UpdateID: id, CIs: cis}})
		}
		items = append(items, struct {
			kind    OutboxKind
			payload any
		}{OutboxRequestApproval, updatePayload{UpdateID: id}})
		if lead.env.Change.CheckConflicts {
			items = append(items, struct {
				kind    OutboxKind
				payload any
			}{OutboxCheckConflicts, updatePayload{UpdateID: id}})
		}
		for _, it := range items {
			item, err := NewOutboxItem(id, it.kind, it.payload)
			if err != nil {
				return BundleProposal{}, err
			}
			outbox = append(outbox, item)
			bp.Queued = append(bp.Queued, it.kind)
		}
	} else {
		for i := range drafts {
			u := &drafts[i].p.Update
			u.State, u.ApprovedDigest = UpdateApproved, u.PlanDigest // ungated: nothing to wait for
		}
	}
	for _, d := range drafts {
		bp.Members = append(bp.Members, d.p)
	}
	if req.DryRun {
		return bp, nil
	}
	err = s.store.Atomic(ctx, func(tx Tx) error {
		for _, d := range drafts {
			open, err := tx.OpenUpdates(ctx, d.env.Name)
			if err != nil {
				return err
			}
			if len(open) > 0 {
				return fmt.Errorf("bundle refused, nothing was created: %s: %w", svcOf(d.env), openUpdateErr(open[0], false))
			}
			u := d.p.Update
			if err := tx.InsertUpdate(ctx, u); err != nil {
				if errors.Is(err, ErrConflict) {
					return fmt.Errorf("%s has another open update (proposed at the same moment): %w", u.Environment, ErrBlocked)
				}
				return err
			}
			if err := s.audit(ctx, tx, Event{
				Action: "update.proposed", Subject: u.ID, Environment: u.Environment, UpdateID: u.ID, Result: "ok",
				Detail: map[string]any{
					"version": u.Version, "from_version": u.FromVersion, "plan_digest": u.PlanDigest, "state": string(u.State),
					"verdicts": verdictDetail(d.p.Verdicts), "bundle": id, "bundle_seq": u.BundleSeq,
				},
			}); err != nil {
				return err
			}
		}
		for _, it := range outbox {
			if _, err := tx.Enqueue(ctx, it); err != nil {
				return err
			}
		}
		return s.audit(ctx, tx, Event{
			Action: "bundle.proposed", Subject: id, Environment: req.Stage, UpdateID: id, Result: "ok",
			Detail: map[string]any{"members": ids, "parallel": req.Parallel, "queued": len(outbox)},
		})
	})
	if err != nil {
		return BundleProposal{}, fmt.Errorf("ops: propose bundle in %s: %w", req.Stage, err)
	}
	return bp, nil
}

func svcOf(env Environment) string {
	if env.Service != "" {
		return env.Service
	}
	return env.Name
}

func bundleShortDescription(id, stage string, drafts []proposalDraft) string {
	parts := make([]string, len(drafts))
	for i, d := range drafts {
		parts[i] = fmt.Sprintf("%s %s → %s", svcOf(d.env), orNew(d.p.Update.FromVersion), d.p.Update.Version)
	}
	sd := fmt.Sprintf("daytwo: bundle %s to %s: %s", id, stage, strings.Join(parts, ", "))
	const limit = 160 // short_description's length on a stock instance
	if utf8.RuneCountInString(sd) > limit {
		sd = string([]rune(sd)[:limit-1]) + "…"
	}
	return sd
}

func orNew(v string) string {
	if v == "" {
		return "new"
	}
	return v
}

// bundleDescription is what approvers read: every member's plan, in the
// order they run.
func (s *Service) bundleDescription(id string, req BundleRequest, drafts []proposalDraft) string {
	var b strings.Builder
	order := "one after the other, in this order"
	if req.Parallel {
		order = "all at once"
	}
	fmt.Fprintf(&b, "Raised by daytwo for bundle %s (proposed by %s): %d services released to %s under this one change, %s.\n",
		id, orUnknown(s.cfg.Actor), len(drafts), req.Stage, order)
	b.WriteString("If one service fails, every service of the bundle already touched is rolled back and the others are not started.\n")
	for i, d := range drafts {
		u := d.p.Update
		fmt.Fprintf(&b, "\n%d. Service %s (update %s, CI %s): %s → %s\n", i+1, svcOf(d.env), u.ID, orNone(d.env.Change.CmdbCI), orNew(u.FromVersion), u.Version)
		b.WriteString(d.p.Plan.Text())
	}
	b.WriteString("\nApproving this change approves these plans:")
	for _, d := range drafts {
		fmt.Fprintf(&b, " %s sha256:%s;", svcOf(d.env), d.p.Update.PlanDigest)
	}
	b.WriteString(" if a plan changes, daytwo raises a new change.\n")
	return b.String()
}

// bundleView is a bundle as the store shows it now.
type bundleView struct {
	id string
	// members are the proposed updates in run order; rollbacks the
	// compensating updates, by unit (the newest of each).
	members   []Update
	rollbacks map[string]Update
}

func (s *Service) readBundle(ctx context.Context, id string) (bundleView, error) {
	ups, err := s.store.ListUpdates(ctx, UpdateFilter{Bundle: id})
	if err != nil {
		return bundleView{}, err
	}
	if len(ups) == 0 {
		return bundleView{}, fmt.Errorf("bundle %s: %w", id, ErrNotFound)
	}
	v := bundleView{id: id, rollbacks: map[string]Update{}}
	for _, u := range ups { // newest first
		if u.Rollback {
			if _, ok := v.rollbacks[u.Environment]; !ok {
				v.rollbacks[u.Environment] = u
			}
			continue
		}
		v.members = append(v.members, u)
	}
	sort.SliceStable(v.members, func(i, j int) bool {
		a, b := v.members[i], v.members[j]
		if a.BundleSeq != b.BundleSeq {
			return a.BundleSeq < b.BundleSeq
		}
		if a.ID == id || b.ID == id {
			return a.ID == id && b.ID != id // the first member first
		}
		return a.ID < b.ID
	})
	return v, nil
}

func (v bundleView) lead() Update {
	for _, m := range v.members {
		if m.ID == v.id {
			return m
		}
	}
	return v.members[0]
}

// failed lists the members whose own run failed (not those rolled back
// by a compensating update afterwards).
func (v bundleView) failed() []Update {
	var out []Update
	for _, m := range v.members {
		if _, compensated := v.rollbacks[m.Environment]; compensated {
			continue
		}
		if m.State == UpdateFailed || m.State == UpdateRolledBack || m.State == UpdateCanceled && strings.HasPrefix(m.Reason, bundleGateClosed) {
			out = append(out, m)
		}
	}
	return out
}

// BundleState is where a bundle stands.
type BundleState string

// Bundle states.
const (
	BundleWaiting    BundleState = "waiting" // for its approval or its window
	BundleRunning    BundleState = "running"
	BundleSucceeded  BundleState = "succeeded"
	BundleRolledBack BundleState = "rolled_back"
	// BundleFailed: a member failed and a rollback did not restore every
	// touched member: targets need attention.
	BundleFailed BundleState = "failed"
	// BundleEnded: the change was rejected or canceled before anything ran.
	BundleEnded BundleState = "ended"
)

// BundleResult is the outcome of RunBundle.
type BundleResult struct {
	ID      string      `json:"id"`
	State   BundleState `json:"state"`
	Updates []Update    `json:"updates"`
	// Rollbacks are the compensating updates run for members that had
	// succeeded before another failed.
	Rollbacks []Update    `json:"rollbacks,omitempty"`
	Runs      []RunResult `json:"runs,omitempty"`
	// FailedService names the member whose failure rolled the bundle back.
	FailedService string `json:"failed_service,omitempty"`
}

// RunBundle runs the bundle that idOrMember (a bundle id, a member's id or
// the bundle's change number) belongs to, until it has ended or cannot go
// on now: members in bundle_seq order (a seq shared by several members:
// at once, each under its own lease), and on a member's failure the
// bundle's rollback. It may be called again at any time, by any process:
// what to do next is read from the store.
func (s *Service) RunBundle(ctx context.Context, idOrMember string, progress func(RunEvent)) (BundleResult, error) {
	u, err := s.store.GetUpdate(ctx, idOrMember)
	if err != nil {
		return BundleResult{}, err
	}
	if u.BundleID == "" {
		return BundleResult{}, fmt.Errorf("update %s is not part of a bundle", u.ID)
	}
	var runs []RunResult
	for {
		res, ran, progressed, err := s.advanceBundle(ctx, u.BundleID, progress, true)
		runs = append(runs, ran...)
		res.Runs = runs
		if err != nil || !progressed || ctx.Err() != nil {
			if err == nil && ctx.Err() != nil {
				err = fmt.Errorf("bundle %s: %w", u.BundleID, ErrRunInterrupted)
			}
			return res, err
		}
	}
}

// AdvanceBundles is the daemon's step for bundles: every bundle with a
// member still open, or that ended lately, is taken as far as it can go
// now — and on the process's first pass every bundle that started and is
// not settled (its close not queued), however long ago it stopped, so a
// bundle whose last process died after its last member is closed by the
// next daemon. A bundle is started when its stage has auto_run (the
// bundle is one release, gated once by its change); once started, its
// next members, its rollback and its closing are done whatever the
// setting (they finish what was started).
func (s *Service) AdvanceBundles(ctx context.Context, progress func(RunEvent)) ([]RunResult, error) {
	ids, err := s.bundlesToAdvance(ctx)
	if err != nil {
		return nil, err
	}
	return s.advanceBundles(ctx, ids, progress, nil)
}

// bundleRecency is how long after its last member ended the daemon's
// later passes still look at a bundle.
const bundleRecency = 10 * time.Minute

// UnsettledBundleLister lists the bundles that started and whose change is
// not closed yet (a store ability).
type UnsettledBundleLister interface {
	UnsettledBundles(ctx context.Context) ([]string, error)
}

// bundlesToAdvance is what AdvanceBundles looks at: bundles with an open
// member or that ended within bundleRecency, and on this process's first
// pass every unsettled bundle.
func (s *Service) bundlesToAdvance(ctx context.Context) ([]string, error) {
	var ids []string
	sweep := !s.bundlesSwept.Load()
	if sweep {
		if l, ok := s.store.(UnsettledBundleLister); ok {
			unsettled, err := l.UnsettledBundles(ctx)
			if err != nil {
				return nil, err // the next pass sweeps again
			}
			ids = append(ids, unsettled...)
		}
	}
	open, err := s.store.ListUpdates(ctx, UpdateFilter{States: OpenUpdateStates()})
	if err != nil {
		return nil, err
	}
	ended, err := s.store.ListUpdates(ctx, UpdateFilter{States: []UpdateState{UpdateSucceeded, UpdateFailed, UpdateRolledBack, UpdateStopped}, Limit: 50})
	if err != nil {
		return nil, err
	}
	recent := s.now().Add(-bundleRecency)
	for _, u := range append(open, ended...) {
		if u.BundleID == "" || slices.Contains(ids, u.BundleID) || (u.State.Terminal() && u.UpdatedAt.Before(recent)) {
			continue
		}
		ids = append(ids, u.BundleID)
	}
	if sweep {
		s.bundlesSwept.Store(true)
	}
	return ids, nil
}

// advanceBundles takes each bundle as far as it can go now. mayStart, when
// set, says whether a bundle's members may be started; nil: when its
// stage has auto_run (the daemon).
func (s *Service) advanceBundles(ctx context.Context, ids []string, progress func(RunEvent), mayStart func(bundleView) bool) ([]RunResult, error) {
	if mayStart == nil {
		mayStart = s.bundleAutoRuns
	}
	var (
		out  []RunResult
		errs []error
	)
	for _, id := range ids {
		v, err := s.readBundle(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		start := mayStart(v)
		for ctx.Err() == nil {
			_, ran, progressed, err := s.advanceBundle(ctx, id, progress, start)
			out = append(out, ran...)
			if err != nil {
				if !errors.Is(err, ErrRunFailed) && !errors.Is(err, ErrBlocked) && !errors.Is(err, ErrApprovalPending) {
					errs = append(errs, fmt.Errorf("bundle %s: %w", id, err))
				}
				break
			}
			if !progressed {
				break
			}
		}
	}
	return out, errors.Join(errs...)
}

// bundleAutoRuns reports whether the daemon starts the bundle's members:
// when its stage has auto_run, or once the bundle has started (someone
// ran it; the process that did is gone): a bundle is one release, gated
// once, and is not left half released for want of auto_run. The stage's
// gating (auto_run sits on the shared environments[] entry) is read from
// the first member that is still configured.
func (s *Service) bundleAutoRuns(v bundleView) bool {
	for _, m := range v.members {
		switch m.State {
		case UpdateProposed, UpdateAwaitingApproval, UpdateApproved, UpdateScheduled, UpdateCanceled, UpdateRejected, UpdateBlocked:
		default:
			return true // started
		}
	}
	for _, m := range append([]Update{v.lead()}, v.members...) {
		if env, err := s.Environment(m.Environment); err == nil {
			return env.AutoRun
		}
	}
	return false
}

// advanceBundle does the bundle's next step: start the next members, roll
// back after a failure, or close the bundle. It returns the runs it made
// and whether it did anything (false: nothing more to do now).
func (s *Service) advanceBundle(ctx context.Context, id string, progress func(RunEvent), mayStart bool) (BundleResult, []RunResult, bool, error) {
	v, err := s.readBundle(ctx, id)
	if err != nil {
		return BundleResult{}, nil, false, err
	}
	res := v.result()
	for _, m := range v.members {
		if m.State == UpdateRunning {
			return res, nil, false, fmt.Errorf("bundle %s: %s is running (update %s) in another process; the bundle goes on once it ends: %w",
				id, s.svcName(m), m.ID, ErrBlocked)
		}
	}
	for _, r := range v.rollbacks {
		if r.State == UpdateRunning {
			return res, nil, false, fmt.Errorf("bundle %s: the rollback of %s (update %s) is running in another process: %w", id, s.svcName(r), r.ID, ErrBlocked)
		}
	}
	if failed := v.failed(); len(failed) > 0 {
		return s.unwindBundle(ctx, v, failed[0], progress)
	}
	var next []Update
	done := 0
	for _, m := range v.members {
		switch m.State {
		case UpdateSucceeded:
			done++
			continue
		case UpdateApproved, UpdateScheduled:
			if len(next) == 0 || next[0].BundleSeq == m.BundleSeq {
				next = append(next, m)
			}
			continue
		case UpdateProposed, UpdateAwaitingApproval:
			g, err := s.Gate(ctx, m)
			if err != nil {
				return res, nil, false, err
			}
			return res, nil, false, fmt.Errorf("bundle %s may not run: %w", id, g.Err())
		default: // rejected, canceled, blocked: the bundle cannot go on
			if len(next) == 0 {
				res.State = BundleEnded
				return res, nil, false, nil
			}
		}
	}
	if done == len(v.members) {
		res.State = BundleSucceeded
		return res, nil, false, s.settleBundle(ctx, v, Update{})
	}
	if len(next) == 0 {
		res.State = BundleEnded
		return res, nil, false, nil
	}
	for _, m := range v.members {
		if m.BundleSeq < next[0].BundleSeq && m.State != UpdateSucceeded {
			return res, nil, false, fmt.Errorf("bundle %s: %s (update %s) is %s; the members after it wait: %w", id, s.svcName(m), m.ID, m.State, ErrBlocked)
		}
	}
	if !mayStart {
		return res, nil, false, nil
	}
	for _, m := range next {
		g, err := s.Gate(ctx, m)
		if err != nil {
			return res, nil, false, err
		}
		if !g.Open && done > 0 && !g.Pending && g.NextOpen.IsZero() {
			// Started, and the rest can no longer run (the window closed,
			// a policy now blocks): roll the bundle back rather than leave
			// it half released.
			if err := s.abandonBundleMember(ctx, m, g); err != nil {
				return res, nil, false, err
			}
			return s.resultOf(ctx, id, res), nil, true, nil
		}
		if !g.Open {
			return res, nil, false, fmt.Errorf("bundle %s: %s may not run: %w", id, s.svcName(m), g.Err())
		}
	}
	// Members run at once: the first to fail stops the others early (each
	// at its next step boundary, rolling back what it touched).
	gctx, stopOthers := context.WithCancelCause(ctx)
	defer stopOthers(nil)
	ran := make([]RunResult, len(next))
	errs := make([]error, len(next))
	fanOut(len(next), len(next), func(i int) {
		failed := func() {
			if len(next) > 1 {
				stopOthers(&stopEarlyError{fmt.Sprintf("%s%s failed in bundle %s (update %s)", stopEarlyPrefix, s.svcName(next[i]), id, next[i].ID)})
			}
		}
		ran[i], errs[i] = s.Run(gctx, RunRequest{Update: next[i].ID, Progress: progress, inBundle: true, onRollback: failed})
		if errors.Is(errs[i], ErrRunFailed) && ran[i].Update.State != UpdateStopped {
			failed() // failed without a rollback decision (e.g. no executor); a no-op after the first cause
		}
	})
	early := stopsEarly(context.Cause(gctx))
	for _, err := range errs {
		if err == nil || errors.Is(err, ErrRunFailed) {
			continue
		}
		if early && ctx.Err() == nil && (errors.Is(err, context.Canceled) || errors.Is(err, ErrRunInterrupted)) {
			continue // stopped before it started (canceled with the rest below), or at a boundary it could not roll back from
		}
		return s.resultOf(ctx, id, res), ran, false, err
	}
	return s.resultOf(ctx, id, res), ran, true, nil
}

// bundleFailedBeside returns why bundle member u, whose run a dead
// process left, is to be stopped early: another member of its bundle
// failed (or decided to roll back) — nil otherwise.
func (s *Service) bundleFailedBeside(ctx context.Context, u Update) error {
	if u.BundleID == "" || u.Rollback {
		return nil
	}
	v, err := s.readBundle(ctx, u.BundleID)
	if err != nil {
		return nil
	}
	for _, m := range v.members {
		if m.ID == u.ID {
			continue
		}
		failed := slices.ContainsFunc(v.failed(), func(f Update) bool { return f.ID == m.ID })
		if !failed && m.State == UpdateRunning {
			runs, err := s.store.Runs(ctx, m.ID, RunRunning)
			failed = err == nil && slices.ContainsFunc(runs, func(r Run) bool {
				return r.Decision == DecisionRollback && !strings.HasPrefix(r.DecisionReason, stopEarlyPrefix)
			})
		}
		if failed {
			return &stopEarlyError{fmt.Sprintf("%s%s failed in bundle %s (update %s)", stopEarlyPrefix, s.svcName(m), v.id, m.ID)}
		}
	}
	return nil
}

// stopEarlyPrefix starts why a bundle member's run was stopped early: its
// journaled rollback decision keeps it, so a recovery ends it stopped too.
const stopEarlyPrefix = "stopped early: "

// stopEarlyError stops the other members running at once with one that
// failed.
type stopEarlyError struct{ msg string }

func (e *stopEarlyError) Error() string { return e.msg }

func stopsEarly(cause error) bool {
	var e *stopEarlyError
	return errors.As(cause, &e)
}

func (s *Service) resultOf(ctx context.Context, id string, fallback BundleResult) BundleResult {
	v, err := s.readBundle(ctx, id)
	if err != nil {
		return fallback
	}
	return v.result()
}

func (s *Service) svcName(u Update) string {
	if env, err := s.Environment(u.Environment); err == nil {
		return svcOf(env)
	}
	return u.Environment
}

func (v bundleView) result() BundleResult {
	res := BundleResult{ID: v.id, Updates: v.members, State: BundleWaiting}
	for _, m := range v.members {
		if m.State == UpdateRunning || m.State == UpdateSucceeded {
			res.State = BundleRunning
		}
	}
	for _, r := range v.rollbacks {
		res.Rollbacks = append(res.Rollbacks, r)
	}
	sort.Slice(res.Rollbacks, func(i, j int) bool { return res.Rollbacks[i].BundleSeq > res.Rollbacks[j].BundleSeq })
	return res
}

// unwindBundle handles a failed member: members not started are canceled,
// members that succeeded are rolled back (by compensating updates), and
// once nothing runs any more the bundle is closed.
func (s *Service) unwindBundle(ctx context.Context, v bundleView, failed Update, progress func(RunEvent)) (BundleResult, []RunResult, bool, error) {
	res := v.result()
	res.FailedService = s.svcName(failed)
	reason := fmt.Sprintf("bundle %s: %s failed (update %s)", v.id, res.FailedService, failed.ID)
	again := func() BundleResult {
		out := s.resultOf(ctx, v.id, res)
		out.FailedService = res.FailedService
		return out
	}
	var cancel []Update
	for _, m := range v.members {
		if m.State.CanTransition(UpdateCanceled) { // not started (a failed member not restored is not: it stays failed)
			cancel = append(cancel, m)
		}
	}
	if len(cancel) > 0 {
		err := s.store.Atomic(ctx, func(tx Tx) error {
			for _, m := range cancel {
				cur, err := tx.GetUpdate(ctx, m.ID)
				if err != nil {
					return err
				}
				if !cur.State.CanTransition(UpdateCanceled) {
					continue // started meanwhile: it is rolled back below, once it ends
				}
				expect := cur.State
				cur.State, cur.Reason = UpdateCanceled, reason+"; not started"
				if err := tx.SaveUpdate(ctx, cur, expect); err != nil {
					return err
				}
				if err := s.audit(ctx, tx, Event{
					Action: "update.canceled", Subject: cur.ID, Environment: cur.Environment, UpdateID: cur.ID,
					ChangeNumber: cur.ChangeNumber, Result: "ok", Detail: map[string]any{"reason": cur.Reason, "from": string(expect), "bundle": v.id},
				}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return res, nil, false, err
		}
		return again(), nil, true, nil
	}
	// Roll back, last started first, every member that succeeded.
	for i := len(v.members) - 1; i >= 0; i-- {
		m := v.members[i]
		if m.State != UpdateSucceeded || m.FromVersion == "" {
			continue // m.FromVersion "": its first release, nothing to return to (the closing notes say so)
		}
		rb, ok := v.rollbacks[m.Environment]
		if !ok {
			created, err := s.proposeBundleRollback(ctx, v, m, reason)
			if err != nil {
				return res, nil, false, err
			}
			rb = created
		}
		switch rb.State {
		case UpdateApproved, UpdateScheduled:
			r, err := s.Run(ctx, RunRequest{Update: rb.ID, Progress: progress, inBundle: true})
			if err != nil && !errors.Is(err, ErrRunFailed) {
				return again(), []RunResult{r}, false, err
			}
			return again(), []RunResult{r}, true, nil
		case UpdateSucceeded:
			if err := s.markMemberRolledBack(ctx, m, rb); err != nil {
				return res, nil, false, err
			}
			return again(), nil, true, nil
		default:
			// Its rollback failed: the closing notes say it could not be
			// rolled back.
		}
	}
	err := s.settleBundle(ctx, v, failed)
	out := again()
	out.State = BundleRolledBack
	for _, m := range out.Updates {
		if m.State == UpdateFailed || m.State == UpdateSucceeded || m.State == UpdateStopped && !s.runRestored(ctx, m) {
			out.State = BundleFailed // not restored
		}
	}
	if err == nil {
		err = fmt.Errorf("bundle %s: %s failed; the bundle was rolled back (%s): %w", v.id, res.FailedService, out.State, ErrRunFailed)
	}
	return out, nil, false, err
}

// proposeBundleRollback stores the compensating update of member m: back
// to the release m replaced, approved by the bundle's change.
func (s *Service) proposeBundleRollback(ctx context.Context, v bundleView, m Update, reason string) (Update, error) {
	env, err := s.Environment(m.Environment)
	if err != nil {
		return Update{}, err
	}
	rels, err := s.store.Releases(ctx, env.Name, 0)
	if err != nil {
		return Update{}, err
	}
	var current, back *Release
	for i := range rels {
		r := &rels[i]
		switch {
		case current == nil && r.UpdateID == m.ID:
			current = r
		case current != nil && r.Status != ReleaseRolledBack:
			back = r
		}
		if back != nil {
			break
		}
	}
	if current == nil || back == nil {
		return Update{}, fmt.Errorf("bundle %s: %s has no release before %s to roll back to", v.id, svcOf(env), m.Version)
	}
	plan, err := BuildPlan(env, *current, back.Version, back.Config)
	if err != nil {
		return Update{}, err
	}
	lead := v.lead()
	u := Update{
		ID: s.newID(), Environment: env.Name, Version: back.Version, Config: back.Config, FromVersion: current.Version,
		PlanDigest: plan.Digest(), State: UpdateApproved, ChangeType: m.ChangeType, ChangeSysID: lead.ChangeSysID, ChangeNumber: lead.ChangeNumber,
		Rollback: true, BundleID: v.id, BundleSeq: m.BundleSeq, Reason: reason + "; rolling " + svcOf(env) + " back",
		CreatedBy: s.cfg.Actor, CreatedAt: s.now(),
	}
	u.ApprovedDigest = u.PlanDigest // the bundle's change approved rolling back what it touched
	if u.Plan, err = json.Marshal(plan); err != nil {
		return Update{}, err
	}
	err = s.store.Atomic(ctx, func(tx Tx) error {
		open, err := tx.OpenUpdates(ctx, env.Name)
		if err != nil {
			return err
		}
		if len(open) > 0 {
			return fmt.Errorf("bundle %s: cannot roll %s back: %w", v.id, svcOf(env), openUpdateErr(open[0], false))
		}
		if err := tx.InsertUpdate(ctx, u); err != nil {
			return err
		}
		return s.audit(ctx, tx, Event{
			Action: "bundle.rollback_proposed", Subject: u.ID, Environment: env.Name, UpdateID: u.ID, ChangeNumber: u.ChangeNumber, Result: "ok",
			Detail: map[string]any{"bundle": v.id, "member": m.ID, "version": u.Version, "from_version": u.FromVersion, "reason": reason},
		})
	})
	return u, err
}

// markMemberRolledBack records that member m's targets were returned to
// its previous release by its compensating update rb (which succeeded:
// its run restored and checked every target).
func (s *Service) markMemberRolledBack(ctx context.Context, m, rb Update) error {
	return s.store.Atomic(ctx, func(tx Tx) error {
		cur, err := tx.GetUpdate(ctx, m.ID)
		if err != nil {
			return err
		}
		if cur.State != UpdateSucceeded {
			return nil
		}
		// Not a lifecycle transition (succeeded is final for an update of
		// its own): a bundle member's release was undone by rb's run.
		cur.State, cur.Reason = UpdateRolledBack, fmt.Sprintf("rolled back to %s by update %s", rb.Version, rb.ID)
		if rb.Reason != "" {
			cur.Reason += " (" + rb.Reason + ")"
		}
		if err := tx.SaveUpdate(ctx, cur, UpdateSucceeded); err != nil {
			return err
		}
		return s.audit(ctx, tx, Event{
			Action: "update.rolled_back", Subject: m.ID, Environment: m.Environment, UpdateID: m.ID, ChangeNumber: m.ChangeNumber, Result: "ok",
			Detail: map[string]any{"bundle": m.BundleID, "by": rb.ID, "to_version": rb.Version},
		})
	})
}

// settleBundle closes the bundle once: its change successful (failed is
// zero) or unsuccessful with one incident naming the failed service; the
// closing notes cover every member. The fact is recorded on a member's
// run, so whichever process settles the bundle, it is settled once.
func (s *Service) settleBundle(ctx context.Context, v bundleView, failed Update) error {
	v, err := s.readBundle(ctx, v.id)
	if err != nil {
		return err
	}
	var anchor string
	for _, m := range v.members {
		runs, err := s.store.Runs(ctx, m.ID)
		if err != nil {
			return err
		}
		if len(runs) > 0 {
			anchor = runs[len(runs)-1].ID
			break
		}
	}
	if anchor == "" {
		return nil // nothing ran
	}
	lead := v.lead()
	env, _ := s.Environment(lead.Environment)
	if env.RequiresChange {
		// Settled already (the daemon looks at a bundle for a while after
		// it ended): its close is queued or delivered.
		items, err := s.store.ListOutbox(ctx, OutboxFilter{Key: v.id, States: []OutboxState{OutboxPending, OutboxFailed, OutboxDelivered}})
		if err != nil {
			return err
		}
		for _, it := range items {
			if it.Kind == OutboxCloseChange {
				return nil
			}
		}
	}
	notes := s.bundleNotes(ctx, v, failed)
	err = s.store.Atomic(ctx, func(tx Tx) error {
		first, err := tx.RecordFact(ctx, anchor, "bundle:"+v.id+":closed")
		if err != nil || !first {
			return err
		}
		action, result := "bundle.succeeded", "ok"
		if failed.ID != "" {
			action, result = "bundle.failed", "rolled_back"
		}
		if env.RequiresChange && lead.ChangeSysID != "" {
			code := "successful"
			if failed.ID != "" {
				code = "unsuccessful"
				if err := s.enqueue(ctx, tx, v.id, OutboxWorkNote, notePayload{UpdateID: lead.ID, Note: notes}); err != nil {
					return err
				}
			}
			if err := s.enqueue(ctx, tx, v.id, OutboxCloseChange, closePayload{UpdateID: lead.ID, Code: code, Notes: notes}); err != nil {
				return err
			}
			if failed.ID != "" {
				fenv, _ := s.Environment(failed.Environment)
				svc := svcOf(fenv)
				inc := environmentIncident(fenv, s.correlationID(v.id)+":incident",
					fmt.Sprintf("daytwo: bundle %s: %s %s failed in %s", v.id, svc, failed.Version, fenv.StageName()),
					fmt.Sprintf("Service %s failed during bundle %s (change %s, update %s).\n\n%s", svc, v.id, lead.ChangeNumber, failed.ID, notes))
				if err := s.enqueue(ctx, tx, v.id, OutboxCreateIncident, incidentPayload{UpdateID: failed.ID, Request: inc}); err != nil {
					return err
				}
			}
		}
		return s.audit(ctx, tx, Event{
			Action: action, Subject: v.id, Environment: env.StageName(), UpdateID: lead.ID, ChangeNumber: lead.ChangeNumber, Result: result,
			Detail: map[string]any{"failed": failed.ID, "notes": notes},
		})
	})
	if err != nil {
		return err
	}
	s.kickOutbox(ctx, v.id)
	return nil
}

// bundleNotes is the closing note: one line per member, what it ran and
// where it ended.
func (s *Service) bundleNotes(ctx context.Context, v bundleView, failed Update) string {
	var b strings.Builder
	if failed.ID == "" {
		fmt.Fprintf(&b, "Bundle %s succeeded: %d service(s) released.\n", v.id, len(v.members))
	} else {
		fmt.Fprintf(&b, "Bundle %s failed: %s failed; every service touched was rolled back, the others were stopped early or not started.\n", v.id, s.svcName(failed))
	}
	for i, m := range v.members {
		what := string(m.State)
		switch m.State {
		case UpdateSucceeded:
			what = "succeeded"
			if failed.ID != "" {
				what = "succeeded, but could NOT be rolled back"
				if m.FromVersion == "" {
					what = "succeeded; first release, nothing to roll back to"
				}
			}
		case UpdateRolledBack:
			what = "rolled back to " + orNew(m.FromVersion)
			if rb, ok := v.rollbacks[m.Environment]; ok && rb.State == UpdateSucceeded && m.ID != failed.ID {
				what = fmt.Sprintf("succeeded, then rolled back to %s by update %s", rb.Version, rb.ID)
			}
		case UpdateFailed:
			what = "failed and could NOT be fully rolled back: targets need attention"
		case UpdateCanceled:
			what = "not started (canceled)"
		case UpdateStopped:
			what = "stopped early, what it touched rolled back to " + orNew(m.FromVersion)
			if !s.runRestored(ctx, m) {
				what = "stopped early and could NOT be fully rolled back: targets need attention"
			}
		}
		if m.ID == failed.ID {
			what = "FAILED; " + what
		}
		fmt.Fprintf(&b, "%d. %s %s → %s (update %s): %s", i+1, s.svcName(m), orNew(m.FromVersion), m.Version, m.ID, what)
		if runs, err := s.store.Runs(ctx, m.ID); err == nil && len(runs) > 0 {
			fmt.Fprintf(&b, "; run %s", runs[len(runs)-1].ID)
		}
		b.WriteString(".\n")
	}
	return b.String()
}

// runRestored reports whether m's last run ended with its targets
// restored (a member stopped early rolls back in its own run).
func (s *Service) runRestored(ctx context.Context, m Update) bool {
	runs, err := s.store.Runs(ctx, m.ID)
	return err == nil && len(runs) > 0 && runs[len(runs)-1].State == RunRolledBack
}

// bundleRollbackMayRun reports whether a compensating update may run
// although its gate is closed: it finishes what the bundle's approved
// change started, so only what would make it unsafe (another run holds
// the unit, the plan changed, it is not runnable) stops it — not the
// window, a freeze or a policy, no more than they stop a failed run's own
// rollback.
func bundleRollbackMayRun(u Update, g GateResult) bool {
	return u.bundleRollback() && onlyGatingReasons(g)
}

// onlyGatingReasons reports whether g is closed only by what gates new
// work (window, freeze, policy, approval) and by nothing that makes
// running unsafe: another run holds the unit, the plan changed, or the
// update is not runnable. Rollbacks that must run whatever the gate says
// (a bundle's compensation, an emergency rollback) ask it.
func onlyGatingReasons(g GateResult) bool {
	for _, r := range g.Reasons {
		switch r.Code {
		case GateState, GateLease, GatePlan:
			return false
		}
	}
	return true
}

// runInBundle runs the bundle of member u (Run on a member) and returns
// that member's run.
func (s *Service) runInBundle(ctx context.Context, u Update, progress func(RunEvent)) (RunResult, error) {
	res, err := s.RunBundle(ctx, u.ID, progress)
	for _, r := range res.Runs {
		if r.Update.ID == u.ID {
			r.Update, _ = s.store.GetUpdate(ctx, u.ID)
			return r, err
		}
	}
	cur, gerr := s.store.GetUpdate(ctx, u.ID)
	if gerr != nil {
		cur = u
	}
	return RunResult{Update: cur}, err
}

// setBundleChange gives every member of a bundle (but lead, done) the
// change just raised for it.
func setBundleChange(ctx context.Context, tx Tx, members []string, lead string, ch Change) error {
	for _, id := range members {
		if id == lead {
			continue
		}
		m, err := tx.GetUpdate(ctx, id)
		if err != nil {
			return err
		}
		expect := m.State
		m.ChangeSysID, m.ChangeNumber = ch.SysID, ch.Number
		if err := tx.SaveUpdate(ctx, m, expect); err != nil {
			return err
		}
	}
	return nil
}

// bundleAwaitsApproval moves the other members of a bundle whose approval
// was just requested to awaiting_approval with its lead (a no-op for an
// update of its own).
func (s *Service) bundleAwaitsApproval() func(ctx context.Context, tx Tx, u Update) error {
	return func(ctx context.Context, tx Tx, u Update) error {
		if u.BundleID == "" {
			return nil
		}
		v, err := s.readBundle(ctx, u.BundleID)
		if err != nil {
			return err
		}
		for _, m := range v.members {
			if m.ID == u.ID {
				continue
			}
			cur, err := tx.GetUpdate(ctx, m.ID)
			if err != nil {
				return err
			}
			if cur.State == UpdateProposed {
				cur.State = UpdateAwaitingApproval
				if err := tx.SaveUpdate(ctx, cur, UpdateProposed); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

// deliverAffectedCIs attaches a bundle's CIs to its change. A change
// system that cannot do it gets the item delivered as "unsupported" in the
// audit log, so it does not hold back the bundle's other writes.
func (s *Service) deliverAffectedCIs(ctx context.Context, it OutboxItem) error {
	var p affectedCIsPayload
	if err := json.Unmarshal(it.Payload, &p); err != nil {
		return fmt.Errorf("%w: bad payload: %v", ErrRefused, err)
	}
	return s.deliverForChange(ctx, it, func(u Update) (Change, string, error) {
		adder, ok := s.changes.(AffectedCIAdder)
		if !ok {
			s.log.Warn("the change system cannot attach affected CIs; not attached", "change", u.ChangeNumber, "cis", p.CIs)
			return Change{}, "change.affected_cis_unsupported", nil
		}
		return Change{}, "change.affected_cis_added", adder.AddAffectedCIs(ctx, u.ChangeSysID, p.CIs)
	}, nil)
}

// bundleLead is the update whose change checks stand for the whole
// bundle: its first member (u itself when it is not in a bundle).
func (s *Service) bundleLead(ctx context.Context, u Update) Update {
	if u.BundleID == "" || u.BundleID == u.ID {
		return u
	}
	if lead, err := s.store.GetUpdate(ctx, u.BundleID); err == nil {
		return lead
	}
	return u
}

// cancelBundle withdraws a bundle (Cancel on any member) while none of its
// members has started: every member is canceled and the change once.
// Once one has started, the bundle is finished by running it (or by its
// rollback), never by canceling part of it.
func (s *Service) cancelBundle(ctx context.Context, u Update, reason string) (Update, error) {
	v, err := s.readBundle(ctx, u.BundleID)
	if err != nil {
		return u, err
	}
	for _, m := range v.members {
		if !m.State.CanTransition(UpdateCanceled) && m.State != UpdateCanceled {
			return u, fmt.Errorf("update %s is part of bundle %s, whose %s is %s: a started bundle is not canceled (it runs to its end or rolls back): %w",
				u.ID, v.id, s.svcName(m), m.State, ErrIllegalTransition)
		}
	}
	lead := v.lead()
	env, _ := s.Environment(lead.Environment)
	var out Update
	err = s.store.Atomic(ctx, func(tx Tx) error {
		for _, m := range v.members {
			cur, err := tx.GetUpdate(ctx, m.ID)
			if err != nil {
				return err
			}
			if cur.State == UpdateCanceled {
				continue
			}
			expect := cur.State
			cur.State, cur.Reason = UpdateCanceled, reason
			if err := tx.SaveUpdate(ctx, cur, expect); err != nil {
				return err
			}
			if cur.ID == u.ID {
				out = cur
			}
			if err := s.audit(ctx, tx, Event{
				Action: "update.canceled", Subject: cur.ID, Environment: cur.Environment, UpdateID: cur.ID,
				ChangeNumber: cur.ChangeNumber, Result: "ok", Detail: map[string]any{"reason": reason, "from": string(expect), "bundle": v.id},
			}); err != nil {
				return err
			}
		}
		if env.RequiresChange {
			note := fmt.Sprintf("Bundle %s canceled in daytwo by %s: %s", v.id, s.cfg.Actor, orNone(reason))
			if err := s.enqueue(ctx, tx, v.id, OutboxWorkNote, notePayload{UpdateID: lead.ID, Note: note}); err != nil {
				return err
			}
			if err := s.enqueue(ctx, tx, v.id, OutboxMoveChange, movePayload{UpdateID: lead.ID, To: ChangeCanceled}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return u, err
	}
	s.kickOutbox(ctx, v.id)
	return out, nil
}

// bundleGateClosed starts the reason of a member canceled because its gate
// closed for good after the bundle had started: the bundle counts it as
// failed and rolls back.
const bundleGateClosed = "bundle gate closed: "

func (s *Service) abandonBundleMember(ctx context.Context, m Update, g GateResult) error {
	return s.store.Atomic(ctx, func(tx Tx) error {
		cur, err := tx.GetUpdate(ctx, m.ID)
		if err != nil {
			return err
		}
		if !cur.State.CanTransition(UpdateCanceled) {
			return nil // it started meanwhile
		}
		expect := cur.State
		cur.State, cur.Reason = UpdateCanceled, bundleGateClosed+g.Summary()
		if err := tx.SaveUpdate(ctx, cur, expect); err != nil {
			return err
		}
		return s.audit(ctx, tx, Event{
			Action: "update.canceled", Subject: cur.ID, Environment: cur.Environment, UpdateID: cur.ID, ChangeNumber: cur.ChangeNumber,
			Result: "rollback", Detail: map[string]any{"reason": cur.Reason, "from": string(expect), "bundle": cur.BundleID},
		})
	})
}
