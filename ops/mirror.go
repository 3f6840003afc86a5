package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"
)

// Mirror tables (watermark names).
const (
	TableChanges = "change_request"
	TableDeletes = "sys_audit_delete"
)

// deleteLookback widens each deletion query to absorb clock skew.
const deleteLookback = 5 * time.Minute

// SyncReport summarises one sync cycle.
type SyncReport struct {
	Outbox      DeliveryStats `json:"outbox"`
	Fetched     int           `json:"fetched"`
	Upserted    int           `json:"upserted"`
	Unchanged   int           `json:"unchanged"`
	Deleted     int           `json:"deleted"`
	Approvals   int           `json:"approvals"`
	Transitions int           `json:"transitions"`
	Requests    int           `json:"requests"`
	Duration    time.Duration `json:"duration_ns"`
}

// SyncOnce runs one full cycle: deliver the outbox, mirror changed change
// requests (keyset on sys_updated_on, sys_id), the approvals of every open
// daytwo change (one request), and deletions; then move updates whose
// change was approved, rejected or canceled.
func (s *Service) SyncOnce(ctx context.Context) (SyncReport, error) {
	return s.syncOnce(ctx, true)
}

// MirrorOnce is SyncOnce without a single write to ServiceNow: it mirrors
// changes, approvals and deletions and moves updates accordingly, but
// delivers no outbox item and starts no conflict check. Read-only mode
// syncs with it.
func (s *Service) MirrorOnce(ctx context.Context) (SyncReport, error) {
	return s.syncOnce(ctx, false)
}

func (s *Service) syncOnce(ctx context.Context, write bool) (SyncReport, error) {
	start := time.Now()
	var rep SyncReport
	if _, err := s.changeSystem(); err != nil {
		return rep, fmt.Errorf("sync: %w", err)
	}
	var err error
	if write {
		if rep.Outbox, err = s.DeliverOutbox(ctx); err != nil {
			return rep, err
		}
	}
	since, err := s.store.GetWatermark(ctx, TableChanges)
	if err != nil {
		return rep, err
	}
	req := MirrorRequest{Since: since, CorrelationPrefix: s.cfg.CorrelationPrefix + ":"}
	var cached map[string]CachedCI
	if s.cfg.MirrorCIChanges {
		req.CIs = s.configuredCIs()
		if cached, err = s.store.CachedCIs(ctx); err != nil {
			return rep, err
		}
		req.KnownCIs = map[string]string{}
		for _, n := range req.CIs {
			if c, ok := cached[n]; ok && s.now().Sub(c.ResolvedAt) < ciCacheTTL {
				req.KnownCIs[n] = c.SysID
			}
		}
	}
	ms, err := s.mirrorPipelined(ctx, req, &rep)
	rep.Requests += ms.Requests
	if err != nil {
		return rep, fmt.Errorf("sync: mirror changes: %w", err)
	}
	if len(ms.UnknownCIs) > 0 {
		s.log.Warn("configured CIs not found in ServiceNow, or ambiguous (use the sys_id): other changes on them are not mirrored (check change.cmdb_ci / services[].cmdb_ci)", "cis", ms.UnknownCIs)
	}
	if s.cfg.MirrorCIChanges {
		if err := s.keepCIs(ctx, req.CIs, cached, ms.ResolvedCIs); err != nil {
			return rep, err
		}
	}

	approvals, err := s.changes.OpenApprovals(ctx, s.cfg.CorrelationPrefix+":")
	rep.Requests++
	if err != nil {
		return rep, fmt.Errorf("sync: approvals: %w", err)
	}
	rep.Approvals = len(approvals)

	// The change mirror lags by the pager's skew; an approval decided since
	// the last cycle means its change has probably moved. Read just those
	// changes now (no request when nothing was decided).
	refresh, known, err := s.changesBehindApprovals(ctx, approvals)
	if err != nil {
		return rep, err
	}
	// Store only the approvals that moved: the upsert would skip the
	// others anyway (not newer than the stored copy), but 1,000 no-op
	// statements per idle cycle were a good part of its work.
	changed := approvals[:0:0]
	for _, a := range approvals {
		if k, ok := known[a.SysID]; !ok || a.SysModCount > k.SysModCount || a.SysUpdatedOn.After(k.SysUpdatedOn) {
			changed = append(changed, a)
		}
	}
	// Refresh before the approvals are stored: if a read fails, the next
	// cycle still sees the decision as new and reads the change again,
	// instead of waiting for the mirror's skew window to pass.
	for _, id := range refresh {
		ch, err := s.changes.GetChange(ctx, id)
		rep.Requests++
		if err != nil {
			return rep, fmt.Errorf("sync: refresh change %s: %w", id, err)
		}
		if err := s.store.Atomic(ctx, func(tx Tx) error {
			st, err := tx.UpsertChanges(ctx, []Change{ch})
			rep.Upserted += st.Written
			return err
		}); err != nil {
			return rep, err
		}
	}

	delSince, err := s.store.GetWatermark(ctx, TableDeletes)
	if err != nil {
		return rep, err
	}
	delUntil := s.now().Add(-time.Second).Truncate(time.Second)
	// Deleting is idempotent, so look back a little further than the
	// watermark: clock skew between us and the instance loses nothing.
	var lookback time.Time
	if !delSince.UpdatedOn.IsZero() {
		lookback = delSince.UpdatedOn.Add(-deleteLookback)
	}
	deleted, err := s.changes.DeletedChanges(ctx, lookback)
	rep.Requests++
	if err != nil {
		return rep, fmt.Errorf("sync: deletions: %w", err)
	}
	// One commit for the cycle's bookkeeping: the change cursor (the pages
	// stored their own; this moves it over an empty window), the
	// approvals that moved, the deletions and their cursor. An idle
	// `sync --once` made two, each a WAL write the process's close then
	// checkpointed. A failure before it only re-reads an empty window.
	err = s.store.Atomic(ctx, func(tx Tx) error {
		if err := tx.SetWatermark(ctx, TableChanges, ms.Cursor); err != nil {
			return err
		}
		if _, err := tx.UpsertApprovals(ctx, changed); err != nil {
			return err
		}
		n, err := tx.DeleteChanges(ctx, deleted)
		if err != nil {
			return err
		}
		rep.Deleted = n
		return tx.SetWatermark(ctx, TableDeletes, Watermark{UpdatedOn: delUntil})
	})
	if err != nil {
		return rep, err
	}
	if write {
		if err := s.recheckConflicts(ctx); err != nil {
			return rep, err
		}
	}
	if rep.Transitions, err = s.reconcile(ctx); err != nil {
		return rep, err
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

// ciCacheTTL is how long a CI's cached sys_id is trusted before it is
// looked up again (a CI replaced in the CMDB under the same name): the
// itsm client's own look-up cache keeps names as long.
const ciCacheTTL = 15 * time.Minute

// CachedCI is a configured CI's sys_id and when it was looked up.
type CachedCI struct {
	SysID      string
	ResolvedAt time.Time
}

// CICache keeps the sys_ids of the configured CIs between processes: a
// `sync --once` looked every one up again on each run.
type CICache interface {
	// CachedCIs returns the cache by configured CI name.
	CachedCIs(ctx context.Context) (map[string]CachedCI, error)
	// CacheCIs replaces the cache.
	CacheCIs(ctx context.Context, cis map[string]CachedCI) error
}

// keepCIs stores the CI sys_ids of this cycle: the cached ones still
// configured plus those just resolved. It writes only when that differs
// from the cache (a name configured, dropped or looked up again).
func (s *Service) keepCIs(ctx context.Context, configured []string, cached map[string]CachedCI, resolved map[string]string) error {
	next := map[string]CachedCI{}
	for _, n := range configured {
		if id, ok := resolved[n]; ok {
			next[n] = CachedCI{SysID: id, ResolvedAt: s.now()}
		} else if c, ok := cached[n]; ok {
			next[n] = c
		}
	}
	if len(next) == len(cached) {
		same := true
		for n, c := range next {
			if o, ok := cached[n]; !ok || o != c {
				same = false
				break
			}
		}
		if same {
			return nil
		}
	}
	return s.store.CacheCIs(ctx, next)
}

// configuredCIs lists the CIs of gated environments.
func (s *Service) configuredCIs() []string {
	var cis []string
	for _, e := range s.cfg.Environments {
		if e.RequiresChange && e.Change.CmdbCI != "" && !slices.Contains(cis, e.Change.CmdbCI) {
			cis = append(cis, e.Change.CmdbCI)
		}
	}
	return cis
}

// reconcile moves updates that wait on ServiceNow according to their
// mirrored change: approved (Scheduled or Implement with approval
// approved, or any standard change past New) → approved; rejected →
// rejected; canceled → canceled. It returns how many moved.
func (s *Service) reconcile(ctx context.Context) (int, error) {
	// One read joins every waiting update with the state of its mirrored
	// change (no update's config or plan, no change's raw JSON), compared
	// in memory; only the updates that move are read whole and written.
	waiting, err := s.store.WaitingChanges(ctx, reconcileFilter)
	if err != nil {
		return 0, err
	}
	moved := 0
	for _, w := range waiting {
		ch := w.Change
		if next, _ := changeOutcome(Update{State: w.State}, ch); next == "" || next == w.State || !w.State.CanTransition(next) {
			continue
		}
		did := false
		err = s.store.Atomic(ctx, func(tx Tx) error {
			// Read whole, and decided again, inside the transaction that
			// moves it: it may have moved since the join.
			did = false
			u, err := tx.GetUpdate(ctx, w.UpdateID)
			if errors.Is(err, ErrNotFound) {
				return nil
			} else if err != nil {
				return err
			}
			next, reason := changeOutcome(u, ch)
			if next == "" || next == u.State || !u.State.CanTransition(next) {
				return nil
			}
			did = true
			expect := u.State
			u.State = next
			if next == UpdateApproved {
				u.ApprovedDigest = u.PlanDigest
			}
			u.Reason = reason
			if err := tx.SaveUpdate(ctx, u, expect); err != nil {
				return err
			}
			return s.audit(ctx, tx, Event{
				Actor: "servicenow", Action: "update." + string(next), Subject: u.ID,
				Environment: u.Environment, UpdateID: u.ID, ChangeNumber: ch.Number, Result: "ok",
				Detail: map[string]any{"change_state": ch.State.String(), "approval": ch.Approval, "from": string(expect)},
			})
		})
		if err != nil {
			return moved, err
		}
		if did {
			moved++
		}
	}
	return moved, nil
}

// reconcileFilter selects what reconcile reads: the updates that wait on
// ServiceNow, and of them only those whose change is in a shape
// changeOutcome acts on (canceled, rejected, or scheduled/implementing).
// The rest cannot move, so an idle cycle with 1,000 changes in Assess
// reads no rows (TestReconcileFilterHoldsEveryMove keeps the two in step).
var reconcileFilter = WaitingFilter{
	States:       []UpdateState{UpdateProposed, UpdateAwaitingApproval, UpdateApproved, UpdateScheduled},
	ChangeStates: []ChangeState{ChangeCanceled, ChangeScheduled, ChangeImplement},
	Approvals:    []ApprovalState{ApprovalRejected},
}

// changeOutcome maps a mirrored change onto what it means for the update
// waiting on it.
func changeOutcome(u Update, ch Change) (UpdateState, string) {
	switch {
	case ch.State == ChangeCanceled:
		return UpdateCanceled, fmt.Sprintf("change %s was canceled", ch.Number)
	case ch.Rejected():
		return UpdateRejected, fmt.Sprintf("change %s was rejected", ch.Number)
	case u.State == UpdateProposed || u.State == UpdateAwaitingApproval:
		approved := ch.State == ChangeScheduled || ch.State == ChangeImplement
		if approved && ch.Approved() {
			return UpdateApproved, ""
		}
	}
	return "", ""
}

// changesBehindApprovals returns the sys_ids of active mirrored changes
// with an approval that is new or changed since the last cycle: a decision
// was taken, so the change has probably moved. Idle cycles return none.
// It also returns what the mirror knew of the approvals, by sys_id.
func (s *Service) changesBehindApprovals(ctx context.Context, approvals []Approval) ([]string, map[string]Approval, error) {
	byChange := map[string][]Approval{}
	for _, a := range approvals {
		byChange[a.ChangeSysID] = append(byChange[a.ChangeSysID], a)
	}
	if len(approvals) == 0 {
		return nil, nil, nil
	}
	// Two local queries whatever the number of changes: the open changes,
	// and what the mirror knew of the fetched approvals.
	open, err := s.store.OpenChangeSysIDs(ctx, s.cfg.CorrelationPrefix+":")
	if err != nil {
		return nil, nil, err
	}
	ids := make([]string, 0, len(approvals))
	for _, a := range approvals {
		ids = append(ids, a.SysID)
	}
	known, err := s.store.ApprovalsByID(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	isOpen := map[string]bool{}
	for _, id := range open {
		isOpen[id] = true
	}
	ids = ids[:0]
	for id, fresh := range byChange {
		if !isOpen[id] {
			continue
		}
		if s.decidedButNotMoved(ctx, id, fresh) {
			ids = append(ids, id)
			continue
		}
		for _, a := range fresh {
			if k, ok := known[a.SysID]; !ok || k.State != a.State || k.SysModCount != a.SysModCount {
				ids = append(ids, id)
				break
			}
		}
	}
	sort.Strings(ids)
	return ids, known, nil
}

// mirrorPipelined runs the change mirror with fetching and storing
// overlapped: while page n is written (with the watermark after it, in one
// transaction), page n+1 is already being fetched. Pages are stored in
// order, so an interruption still resumes exactly after the last page
// stored.
func (s *Service) mirrorPipelined(ctx context.Context, req MirrorRequest, rep *SyncReport) (MirrorStats, error) {
	type pageMsg struct {
		page   []Change
		cursor Watermark
	}
	fetchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan pageMsg, mirrorQueue)
	done := make(chan struct{})
	var werr error
	go func() {
		defer close(done)
		for pm := range pages {
			if werr != nil {
				continue // drain what was fetched before the stop
			}
			// Store this page and the pages already fetched behind it in
			// one transaction (up to mirrorQueue+1): a page's random keys
			// dirty most leaf pages of the sys_id, number and correlation
			// indexes, and every commit wrote them all to the WAL again, so
			// the commits, not the rows, were most of the mirror's writes.
			// Only pages already here are taken: the write lock is never
			// held while waiting for ServiceNow.
			batch := []pageMsg{pm}
		more:
			for len(batch) <= mirrorQueue {
				select {
				case next, ok := <-pages:
					if !ok {
						break more
					}
					batch = append(batch, next)
				default:
					break more
				}
			}
			for _, pm := range batch {
				rep.Fetched += len(pm.page)
			}
			werr = s.store.Atomic(ctx, func(tx Tx) error {
				for _, pm := range batch {
					st, err := tx.UpsertChanges(ctx, pm.page)
					if err != nil {
						return err
					}
					rep.Upserted += st.Written
					rep.Unchanged += st.Unchanged
				}
				return tx.SetWatermark(ctx, TableChanges, batch[len(batch)-1].cursor)
			})
			if werr != nil {
				cancel()
			}
		}
	}()
	ms, err := s.changes.MirrorChanges(fetchCtx, req, func(page []Change, cursor Watermark) error {
		select {
		case pages <- pageMsg{page, cursor}:
			return nil
		case <-fetchCtx.Done():
			return fetchCtx.Err()
		}
	})
	close(pages)
	<-done
	if werr != nil {
		return ms, werr
	}
	return ms, err
}

// mirrorQueue is how many fetched pages may wait for the store (about
// 3 MB each at 1,000 rows: the body, which the raw JSON of each change
// keeps, and the decoded strings). One keeps the fetch and the store
// overlapped and the mirror's peak RSS at ~62 MiB at 100k changes (3
// made it ~77 MiB); a store that falls behind still commits two pages
// at once (BENCHMARKS.md).
const mirrorQueue = 1

// conflictRecheck is how often a change that had conflicts is checked
// again: the conflicting change may have been withdrawn, the blackout may
// have ended.
const conflictRecheck = time.Minute

// recheckConflicts polls the conflict checks still running, and queues a
// new check for waiting updates whose last check found conflicts and is
// older than conflictRecheck, failed, or has been running for longer than
// conflictRunningMax. Updates without conflicts cost nothing: a few
// queries find the checks due.
func (s *Service) recheckConflicts(ctx context.Context) error {
	if err := s.pollConflictChecks(ctx); err != nil {
		return err
	}
	due, err := s.store.ConflictChecks(ctx, ConflictFound, s.now().Add(-conflictRecheck))
	if err != nil {
		return err
	}
	failed, err := s.store.ConflictChecks(ctx, ConflictFailed, s.now().Add(time.Second))
	if err != nil {
		return err
	}
	stuck, err := s.store.ConflictChecks(ctx, ConflictRunning, s.now().Add(-conflictRunningMax))
	if err != nil {
		return err
	}
	due = append(append(due, failed...), stuck...)
	for _, chk := range due {
		u, err := s.store.GetUpdate(ctx, chk.UpdateID)
		if errors.Is(err, ErrNotFound) {
			continue
		} else if err != nil {
			return err
		}
		switch u.State {
		case UpdateProposed, UpdateAwaitingApproval, UpdateApproved, UpdateScheduled:
		default:
			continue
		}
		env, err := s.Environment(u.Environment)
		if err != nil || !env.RequiresChange || !env.Change.CheckConflicts || u.ChangeSysID == "" {
			continue
		}
		pending, err := s.store.ListOutbox(ctx, OutboxFilter{Key: u.ID})
		if err != nil {
			return err
		}
		queued := false
		for _, it := range pending {
			queued = queued || it.Kind == OutboxCheckConflicts
		}
		if queued {
			continue
		}
		if err := s.store.Atomic(ctx, func(tx Tx) error {
			return s.enqueue(ctx, tx, u.ID, OutboxCheckConflicts, updatePayload{UpdateID: u.ID})
		}); err != nil {
			return err
		}
		s.kickOutbox(ctx, u.ID)
	}
	return nil
}

// decidedButNotMoved reports a change whose approvals are all decided while
// the mirror still shows it awaiting approval: the decision was stored by
// an earlier cycle that read the change a moment too early. Re-read it
// (this costs a request only in that state, which the re-read ends).
func (s *Service) decidedButNotMoved(ctx context.Context, changeSysID string, approvals []Approval) bool {
	for _, a := range approvals {
		if a.State == ApprovalRequested {
			return false
		}
	}
	ch, err := s.store.GetChange(ctx, changeSysID)
	return err == nil && (ch.State == ChangeAssess || ch.State == ChangeAuthorize)
}

// WaitingChange is an update waiting on ServiceNow and the mirrored state
// of its change: what reconcile compares.
type WaitingChange struct {
	UpdateID string
	State    UpdateState
	Change   Change
}

// WaitingFilter selects WaitingChanges' rows: the updates in one of
// States whose change is mirrored and, when ChangeStates or Approvals is
// set, whose change is in one of ChangeStates or has one of Approvals.
type WaitingFilter struct {
	States       []UpdateState
	ChangeStates []ChangeState
	Approvals    []ApprovalState
}

// ChangeMirror reads the local mirror of ServiceNow.
type ChangeMirror interface {
	GetChange(ctx context.Context, numberOrSysID string) (Change, error)
	ListChanges(ctx context.Context, f ChangeFilter) ([]Change, error)
	CountChanges(ctx context.Context, f ChangeFilter) (int, error)
	Approvals(ctx context.Context, changeSysID string) ([]Approval, error)
	// ApprovalsByID returns the mirrored approvals among sysIDs, by sys_id,
	// with the columns a sync cycle compares (sys_id, change_sys_id, state,
	// sys_updated_on, sys_mod_count).
	ApprovalsByID(ctx context.Context, sysIDs []string) (map[string]Approval, error)
	// WaitingChanges returns the updates f selects, newest first, each with
	// what reconcile reads of its change (sys_id, number, type, state,
	// approval, active).
	WaitingChanges(ctx context.Context, f WaitingFilter) ([]WaitingChange, error)
	Incidents(ctx context.Context, updateID string) ([]Incident, error)
	OpenChangeSysIDs(ctx context.Context, correlationPrefix string) ([]string, error)
	GetWatermark(ctx context.Context, table string) (Watermark, error)
}
