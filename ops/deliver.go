package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// DeliveryStats counts one pass over the outbox.
type DeliveryStats struct {
	Delivered int `json:"delivered"`
	Retrying  int `json:"retrying"`
	Failed    int `json:"failed"`
}

// outboxClaimTTL bounds how long a delivery pass holds an item; longer
// than any single ServiceNow call with its retries (a pass that died
// mid-send releases the item after this).
const outboxClaimTTL = 3 * time.Minute

// Outbox retry schedule: exponential from 2s, capped at 5 minutes, with
// jitter so that many daemons do not retry in step.
const (
	outboxBaseDelay = 2 * time.Second
	outboxMaxDelay  = 5 * time.Minute
)

func outboxBackoff(attempts int) time.Duration {
	d := outboxBaseDelay << min(attempts, 10)
	d = min(d, outboxMaxDelay)
	return d/2 + rand.N(d/2+1)
}

// DeliverOutbox delivers every due outbox item, in order per key. A write
// refused by ServiceNow (business rule, ACL, bad input) fails permanently
// and holds back its key until `outbox retry`; anything else is retried
// with backoff. Items whose key is given in onlyKeys (if any) are the only
// ones delivered.
func (s *Service) DeliverOutbox(ctx context.Context, onlyKeys ...string) (_ DeliveryStats, err error) {
	var st DeliveryStats
	if s.changes == nil {
		return st, nil
	}
	// Each pass claims what it sends, so two passes — another process, or
	// this one's background delivery — never send one item twice.
	claimer := s.holder + ":" + newRunID()[2:]
	defer func() {
		if err != nil { // it may have returned holding a claim
			s.endedPasses.add(claimer, s.now())
		}
	}()
	skipped := map[int64]bool{}
	silent := silentDaemons{}
	for {
		due, err := s.store.DueOutbox(ctx, s.now(), 100)
		if err != nil {
			return st, err
		}
		progressed := false
		for _, it := range due {
			if len(onlyKeys) > 0 && !slices.Contains(onlyKeys, it.Key) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return st, err
			}
			if skipped[it.ID] {
				continue
			}
			ok, err := s.store.ClaimOutbox(ctx, it.ID, claimer, outboxClaimTTL)
			if err == nil && !ok && s.endedPasses.has(it.ClaimedBy, s.now()) {
				// An earlier pass of this process claimed it and returned
				// without releasing it (it lost the store mid-delivery):
				// take it now, not when the claim expires. The release
				// records an attempt of unknown outcome, so it is looked up
				// before it is sent again.
				s.log.Warn("outbox claim of an ended delivery pass released", "id", it.ID, "holder", it.ClaimedBy)
				if err = s.store.ReleaseOutbox(ctx, it.ID, it.ClaimedBy); err == nil {
					ok, err = s.store.ClaimOutbox(ctx, it.ID, claimer, outboxClaimTTL)
				}
			}
			if err == nil && !ok && it.ClaimHolderGone() {
				// Its pass died on this host (pid gone): take the item now,
				// not when the claim expires, as with leases.
				s.log.Warn("outbox claim of a dead process released", "id", it.ID, "holder", it.ClaimedBy)
				if err = s.store.ReleaseOutbox(ctx, it.ID, it.ClaimedBy); err == nil {
					ok, err = s.store.ClaimOutbox(ctx, it.ID, claimer, outboxClaimTTL)
				}
			}
			if err == nil && !ok && it.ClaimedBy != "" && !it.ClaimHolderGone() && silent.has(ctx, s, it.ClaimHolder()) {
				// Its daemon, on another host, stopped heartbeating longer
				// than a lease lasts: it died. Take the item now, not when
				// the claim expires, as its leases are taken over.
				s.log.Warn("outbox claim of a silent daemon released", "id", it.ID, "holder", it.ClaimedBy)
				if err = s.store.ReleaseOutbox(ctx, it.ID, it.ClaimedBy); err == nil {
					ok, err = s.store.ClaimOutbox(ctx, it.ID, claimer, outboxClaimTTL)
				}
			}
			if err != nil {
				return st, err
			} else if !ok {
				skipped[it.ID] = true // another pass is sending it
				continue
			}
			err = s.deliver(ctx, it)
			switch {
			case err == nil:
				st.Delivered++
				progressed = true
			case errors.Is(err, ErrRefused):
				st.Failed++
				s.log.Error("outbox write refused", "id", it.ID, "kind", it.Kind, "key", it.Key, "err", err)
				superseded, ferr := s.failOutbox(ctx, it, err)
				if ferr != nil {
					return st, ferr
				}
				// A later decision on the change replaced the refused
				// one: it is due now.
				progressed = progressed || superseded
			case ctx.Err() != nil:
				// The caller gave up; not the item's fault. Let another pass
				// (the daemon) take it now rather than when the claim expires;
				// the release records an attempt of unknown outcome, so that
				// pass looks the write up before sending it again.
				_ = s.store.ReleaseOutbox(context.WithoutCancel(ctx), it.ID, claimer)
				return st, ctx.Err()
			default:
				st.Retrying++
				wait := outboxBackoff(it.Attempts)
				var later *RetryLaterError
				if errors.As(err, &later) && later.After > wait {
					wait = later.After // the instance said when (429 Retry-After)
				}
				next := s.now().Add(wait)
				s.log.Warn("outbox delivery failed; will retry", "id", it.ID, "kind", it.Kind, "key", it.Key, "next", next, "err", err)
				if ferr := s.store.MarkAttemptFailed(ctx, it.ID, err.Error(), next, false); ferr != nil {
					return st, ferr
				}
			}
		}
		// Delivering one item can make the next one on its key due.
		if progressed {
			continue
		}
		// A targeted delivery (an operator waiting on one update or
		// change) waits for items another pass is sending, so that it
		// returns once they are out, not while they are in flight.
		if len(onlyKeys) == 0 || len(skipped) == 0 || !s.claimedElsewhere(ctx, skipped) {
			return st, nil
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return st, err
		}
		clear(skipped)
	}
}

// failOutbox records a refused write with an audit event. A refused
// decision with a later decision queued behind it on the same change is
// superseded by that one at once (reported true), so it does not hold it
// back.
func (s *Service) failOutbox(ctx context.Context, it OutboxItem, cause error) (bool, error) {
	if err := s.store.MarkAttemptFailed(ctx, it.ID, cause.Error(), s.now(), true); err != nil {
		return false, err
	}
	var later int64
	if it.Kind == OutboxDecide {
		items, err := s.store.ListOutbox(ctx, OutboxFilter{Key: it.Key, States: []OutboxState{OutboxPending}})
		if err != nil {
			return false, err
		}
		for _, n := range items {
			if n.Kind == OutboxDecide && n.ID > it.ID {
				later = n.ID
				break
			}
		}
	}
	return later != 0, s.store.Atomic(ctx, func(tx Tx) error {
		if later != 0 {
			old, err := tx.SupersedeFailed(ctx, it.Key, OutboxDecide, later)
			if err != nil {
				return err
			}
			if len(old) > 0 {
				if err := s.audit(ctx, tx, Event{
					Action: "outbox.superseded", Subject: it.Key, ChangeNumber: it.Key, Result: "ok",
					Detail: map[string]any{"superseded": old, "by": later},
				}); err != nil {
					return err
				}
			}
		}
		ev := Event{
			Action: "outbox.failed", Subject: fmt.Sprintf("%s #%d", it.Kind, it.ID),
			UpdateID: updateIDOf(it), Result: "failed", Detail: map[string]any{"error": cause.Error(), "attempts": it.Attempts + 1},
		}
		if it.Kind == OutboxDecide {
			var p decidePayload
			_ = json.Unmarshal(it.Payload, &p)
			ev.Action, ev.Subject, ev.ChangeNumber = "change.decision_refused", p.Number, p.Number
			ev.Detail["outbox_id"], ev.Detail["as"], ev.Detail["approve"] = it.ID, p.As, p.Approve
		}
		return s.audit(ctx, tx, ev)
	})
}

func updateIDOf(it OutboxItem) string {
	var p updatePayload
	_ = json.Unmarshal(it.Payload, &p)
	return p.UpdateID
}

// deliver performs one item and records its effects in one transaction.
func (s *Service) deliver(ctx context.Context, it OutboxItem) error {
	switch it.Kind {
	case OutboxCreateChange:
		var p createChangePayload
		if err := json.Unmarshal(it.Payload, &p); err != nil {
			return fmt.Errorf("%w: bad payload: %v", ErrRefused, err)
		}
		ch, dups, err := s.raiseChange(ctx, it, p.Request)
		if err != nil {
			return err
		}
		ctx := context.WithoutCancel(ctx) // ServiceNow acted: record it even if the caller gave up
		return s.store.Atomic(ctx, func(tx Tx) error {
			u, err := tx.GetUpdate(ctx, p.UpdateID)
			if err != nil {
				return err
			}
			expect := u.State
			u.ChangeSysID, u.ChangeNumber = ch.SysID, ch.Number
			if err := tx.SaveUpdate(ctx, u, expect); err != nil {
				return err
			}
			if err := setBundleChange(ctx, tx, p.Members, u.ID, ch); err != nil {
				return err
			}
			if _, err := tx.UpsertChanges(ctx, []Change{ch}); err != nil {
				return err
			}
			result := map[string]any{"number": ch.Number, "sys_id": ch.SysID}
			detail := map[string]any{"type": ch.Type, "correlation_id": p.Request.CorrelationID, "plan_digest": u.PlanDigest}
			if p.Request.Parent != "" {
				detail["parent_sys_id"] = p.Request.Parent // an emergency change's original (verify_after_close.go)
			}
			if len(dups) > 0 {
				result["duplicates_canceled"], detail["duplicates_canceled"] = dups, dups
			}
			if err := tx.MarkDelivered(ctx, it.ID, result); err != nil {
				return err
			}
			return s.audit(ctx, tx, Event{
				Action: "change.created", Subject: ch.Number, Environment: u.Environment,
				UpdateID: u.ID, ChangeNumber: ch.Number, Result: "ok", Detail: detail,
			})
		})
	case OutboxRequestApproval:
		return s.deliverForChange(ctx, it, func(u Update) (Change, string, error) {
			ch, err := s.changes.RequestApproval(ctx, u.ChangeSysID)
			return ch, "change.approval_requested", err
		}, func(u *Update) {
			if u.State == UpdateProposed {
				u.State = UpdateAwaitingApproval
			}
		}, s.bundleAwaitsApproval())
	case OutboxMoveChange:
		var p movePayload
		if err := json.Unmarshal(it.Payload, &p); err != nil {
			return fmt.Errorf("%w: bad payload: %v", ErrRefused, err)
		}
		return s.deliverForChange(ctx, it, func(u Update) (Change, string, error) {
			ch, err := s.changes.MoveChange(ctx, u.ChangeSysID, p.To)
			return ch, "change.moved", err
		}, nil)
	case OutboxWorkNote:
		var p notePayload
		if err := json.Unmarshal(it.Payload, &p); err != nil {
			return fmt.Errorf("%w: bad payload: %v", ErrRefused, err)
		}
		return s.deliverForChange(ctx, it, func(u Update) (Change, string, error) {
			if done, err := s.alreadyLanded(ctx, it, func(ec EvidenceChecker) (bool, error) {
				return ec.HasWorkNote(ctx, u.ChangeSysID, p.Note)
			}); done || err != nil {
				return Change{}, "change.work_note", err
			}
			return Change{}, "change.work_note", s.changes.AddWorkNote(ctx, u.ChangeSysID, p.Note)
		}, nil)
	case OutboxAttach:
		var p attachPayload
		if err := json.Unmarshal(it.Payload, &p); err != nil {
			return fmt.Errorf("%w: bad payload: %v", ErrRefused, err)
		}
		return s.deliverForChange(ctx, it, func(u Update) (Change, string, error) {
			if done, err := s.alreadyLanded(ctx, it, func(ec EvidenceChecker) (bool, error) {
				return ec.HasAttachment(ctx, u.ChangeSysID, p.Name)
			}); done || err != nil {
				return Change{}, "change.attached", err
			}
			return Change{}, "change.attached", s.changes.AttachFile(ctx, u.ChangeSysID, p.Name, p.ContentType, []byte(p.Data))
		}, nil)
	case OutboxCloseChange:
		var p closePayload
		if err := json.Unmarshal(it.Payload, &p); err != nil {
			return fmt.Errorf("%w: bad payload: %v", ErrRefused, err)
		}
		return s.deliverForChange(ctx, it, func(u Update) (Change, string, error) {
			ch, err := s.changes.CloseChange(ctx, u.ChangeSysID, p.Code, p.Notes)
			return ch, "change.closed", err
		}, nil)
	case OutboxDecide:
		return s.deliverDecision(ctx, it)
	case OutboxCreateIncident:
		var p incidentPayload
		if err := json.Unmarshal(it.Payload, &p); err != nil {
			return fmt.Errorf("%w: bad payload: %v", ErrRefused, err)
		}
		var inc Incident
		return s.deliverForChange(ctx, it, func(u Update) (Change, string, error) {
			req := p.Request
			req.CausedBy = u.ChangeSysID
			var err error
			inc, err = s.changes.CreateIncident(ctx, req)
			return Change{}, "incident.created", err
		}, nil, func(ctx context.Context, tx Tx, u Update) error {
			inc.UpdateID, inc.ChangeSysID = u.ID, u.ChangeSysID
			return tx.UpsertIncident(ctx, inc)
		})
	case OutboxCheckConflicts:
		return s.deliverConflictCheck(ctx, it)
	case OutboxAddAffectedCIs:
		return s.deliverAffectedCIs(ctx, it)
	default:
		return fmt.Errorf("%w: unknown outbox kind %q", ErrRefused, it.Kind)
	}
}

// deliverForChange runs call for the change of the item's update, then in
// one transaction mirrors the returned change (if any), applies mutate to
// the update, runs after (if any), marks the item delivered and audits it.
func (s *Service) deliverForChange(ctx context.Context, it OutboxItem, call func(u Update) (Change, string, error),
	mutate func(u *Update), after ...func(ctx context.Context, tx Tx, u Update) error,
) error {
	id := updateIDOf(it)
	u, err := s.store.GetUpdate(ctx, id)
	if err != nil {
		return fmt.Errorf("%w: outbox item %d: update %s: %v", ErrRefused, it.ID, id, err)
	}
	if u.ChangeSysID == "" {
		return fmt.Errorf("outbox item %d: %w", it.ID, errNoChange)
	}
	ch, action, err := call(u)
	if err != nil {
		return err
	}
	ctx = context.WithoutCancel(ctx) // ServiceNow acted: record it even if the caller gave up
	return s.store.Atomic(ctx, func(tx Tx) error {
		cur, err := tx.GetUpdate(ctx, id)
		if err != nil {
			return err
		}
		if mutate != nil {
			expect := cur.State
			mutate(&cur)
			if cur.State != expect {
				if err := tx.SaveUpdate(ctx, cur, expect); err != nil {
					return err
				}
			}
		}
		if ch.SysID != "" {
			if _, err := tx.UpsertChanges(ctx, []Change{ch}); err != nil {
				return err
			}
		}
		for _, fn := range after {
			if err := fn(ctx, tx, cur); err != nil {
				return err
			}
		}
		if err := tx.MarkDelivered(ctx, it.ID, map[string]string{"number": u.ChangeNumber, "state": ch.State.String()}); err != nil {
			return err
		}
		detail := map[string]any{"outbox_id": it.ID}
		if ch.SysID != "" {
			detail["change_state"] = ch.State.String()
		}
		return s.audit(ctx, tx, Event{
			Action: action, Subject: u.ChangeNumber, Environment: u.Environment,
			UpdateID: u.ID, ChangeNumber: u.ChangeNumber, Result: "ok", Detail: detail,
		})
	})
}

// More outbox payloads.
type (
	movePayload struct {
		UpdateID string      `json:"update_id"`
		To       ChangeState `json:"to"`
	}
	notePayload struct {
		UpdateID string `json:"update_id"`
		Note     string `json:"note"`
	}
	attachPayload struct {
		UpdateID    string `json:"update_id"`
		Name        string `json:"name"`
		ContentType string `json:"content_type"`
		Data        string `json:"data"`
	}
	closePayload struct {
		UpdateID string `json:"update_id"`
		Code     string `json:"code"`
		Notes    string `json:"notes"`
	}
	incidentPayload struct {
		UpdateID string          `json:"update_id"`
		Request  IncidentRequest `json:"request"`
	}
)

// alreadyLanded reports whether a retried evidence write (an earlier
// attempt may have been applied before its answer was lost) is already in
// the change system, so it is not written twice. First attempts and change
// systems that cannot tell are never checked; an item another pass had
// claimed is no first attempt, even with no attempt recorded (that pass may
// have sent it and died before recording it: a daemon killed mid-send).
func (s *Service) alreadyLanded(ctx context.Context, it OutboxItem, check func(EvidenceChecker) (bool, error)) (bool, error) {
	ec, ok := s.changes.(EvidenceChecker)
	if !ok || (it.Attempts == 0 && it.ClaimedBy == "") {
		return false, nil
	}
	return check(ec)
}

// claimedElsewhere reports whether any of the items is still pending (being
// sent by another delivery pass).
func (s *Service) claimedElsewhere(ctx context.Context, ids map[int64]bool) bool {
	items, err := s.store.ListOutbox(ctx, OutboxFilter{States: []OutboxState{OutboxPending}})
	if err != nil {
		return false
	}
	for _, it := range items {
		if ids[it.ID] {
			return true
		}
	}
	return false
}

// OutboxStore is the outbox as delivery sees it.
type OutboxStore interface {
	DueOutbox(ctx context.Context, now time.Time, limit int) ([]OutboxItem, error)
	NextOutboxAttempt(ctx context.Context) (time.Time, error)
	ListOutbox(ctx context.Context, f OutboxFilter) ([]OutboxItem, error)
	// ClaimOutbox gives one delivery pass the item for ttl; false when
	// another pass holds it or it is no longer pending.
	ClaimOutbox(ctx context.Context, id int64, claimer string, ttl time.Duration) (bool, error)
	// ReleaseOutbox drops claimer's claim and records, in the same write,
	// an attempt whose outcome is unknown (the write may have landed).
	ReleaseOutbox(ctx context.Context, id int64, claimer string) error
	MarkAttemptFailed(ctx context.Context, id int64, cause string, next time.Time, permanent bool) error
	RetryOutbox(ctx context.Context, id int64) (int, error)
	GetOutbox(ctx context.Context, id int64) (OutboxItem, error)
}

// DaemonLister lists the daemons working on the store with their last
// heartbeats (a store that keeps a daemon registry).
type DaemonLister interface {
	Daemons(ctx context.Context) ([]Daemon, error)
}

// silentDaemons are the daemons whose last heartbeat is older than a lease
// lasts, read once per delivery pass when first asked: a daemon on another
// host that died (daemons heartbeat every cycle from their own goroutine,
// and remove themselves when they stop cleanly).
type silentDaemons struct {
	loaded bool
	ids    map[string]bool
}

// has reports whether holder ("host:pid") is a silent daemon. Holders that
// are no daemon (a console, a one-off command) are never presumed dead:
// their claims expire instead.
func (d *silentDaemons) has(ctx context.Context, s *Service, holder string) bool {
	if holder == s.holder {
		return false // this process: alive
	}
	if !d.loaded {
		d.loaded = true
		r, ok := s.store.(DaemonLister)
		if !ok {
			return false
		}
		ds, err := r.Daemons(ctx)
		if err != nil {
			s.log.Warn("daemons not read; outbox claims of dead daemons wait for their expiry", "err", err)
			return false
		}
		d.ids = map[string]bool{}
		for _, dm := range ds {
			if s.now().Sub(dm.HeartbeatAt) > s.leaseTTL {
				d.ids[dm.ID] = true
			}
		}
	}
	return d.ids[holder]
}

// endedPasses remembers the delivery passes of this process that returned
// with an error, for as long as a claim lasts: any claim one of them still
// holds belongs to nobody.
type endedPasses struct {
	mu     sync.Mutex
	passes map[string]time.Time
}

func (e *endedPasses) add(claimer string, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.passes == nil {
		e.passes = map[string]time.Time{}
	}
	for c, at := range e.passes {
		if now.Sub(at) > outboxClaimTTL {
			delete(e.passes, c)
		}
	}
	e.passes[claimer] = now
}

func (e *endedPasses) has(claimer string, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	at, ok := e.passes[claimer]
	return ok && now.Sub(at) <= outboxClaimTTL
}
