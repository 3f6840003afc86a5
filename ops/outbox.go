package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// OutboxKind names a write to ServiceNow waiting in the outbox.
type OutboxKind string

// The writes daytwo makes to ServiceNow. Each is delivered in order with
// the other items of its ordering key (the update, or the change).
const (
	OutboxCreateChange    OutboxKind = "change.create"
	OutboxRequestApproval OutboxKind = "change.request_approval"
	OutboxMoveChange      OutboxKind = "change.move"
	OutboxWorkNote        OutboxKind = "change.work_note"
	OutboxAttach          OutboxKind = "change.attach"
	OutboxCloseChange     OutboxKind = "change.close"
	OutboxDecide          OutboxKind = "change.decide"
	OutboxCreateIncident  OutboxKind = "incident.create"
	OutboxCheckConflicts  OutboxKind = "change.check_conflicts"
)

// OutboxState is where an outbox item stands.
type OutboxState string

// Outbox states. A failed item needs an operator (`daytwo outbox retry`,
// or `daytwo outbox discard`); items queued after it on the same key wait
// for it. Discarded and superseded items were closed without being sent:
// they hold nothing back and are never retried.
const (
	OutboxPending   OutboxState = "pending"
	OutboxDelivered OutboxState = "delivered"
	OutboxFailed    OutboxState = "failed"
	// OutboxDiscarded: an operator gave the write up (`outbox discard`).
	OutboxDiscarded OutboxState = "discarded"
	// OutboxSuperseded: a later decision on the same change replaced this
	// refused one.
	OutboxSuperseded OutboxState = "superseded"
)

// OutboxItem is one write to ServiceNow, stored in the same transaction as
// the local state change that caused it, so that neither is lost without
// the other.
type OutboxItem struct {
	ID          int64           `json:"id"`
	Key         string          `json:"key"`
	Kind        OutboxKind      `json:"kind"`
	Payload     json.RawMessage `json:"payload"`
	State       OutboxState     `json:"state"`
	Attempts    int             `json:"attempts"`
	NextAttempt time.Time       `json:"next_attempt_at"`
	LastError   string          `json:"last_error,omitempty"`
	Result      json.RawMessage `json:"result,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	DeliveredAt time.Time       `json:"delivered_at,omitzero"`
	// ClaimedBy is the delivery pass sending the item now ("host:pid:pass"),
	// until ClaimedUntil; empty when nobody holds it.
	ClaimedBy    string    `json:"claimed_by,omitempty"`
	ClaimedUntil time.Time `json:"claimed_until,omitzero"`
}

// ClaimHolder is the process ("host:pid") holding the item's claim, "" when
// unclaimed.
func (it OutboxItem) ClaimHolder() string {
	if i := strings.LastIndexByte(it.ClaimedBy, ':'); i > 0 && strings.Count(it.ClaimedBy, ":") >= 2 {
		return it.ClaimedBy[:i]
	}
	return it.ClaimedBy
}

// Claimed reports whether a delivery pass holds the item at now.
func (it OutboxItem) Claimed(now time.Time) bool {
	return it.ClaimedBy != "" && it.ClaimedUntil.After(now)
}

// ClaimHolderGone reports whether the item's claim is held by a process on
// this host that no longer exists: a delivery pass takes such claims at
// once instead of waiting for them to expire.
func (it OutboxItem) ClaimHolderGone() bool {
	return it.ClaimedBy != "" && holderDead(it.ClaimHolder())
}

// NewOutboxItem builds a pending item with payload encoded as JSON.
func NewOutboxItem(key string, kind OutboxKind, payload any) (OutboxItem, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return OutboxItem{}, err
	}
	return OutboxItem{Key: key, Kind: kind, Payload: b, State: OutboxPending}, nil
}

// DiscardOutbox gives up an undelivered write (pending or failed) without
// sending it, so it no longer holds back the writes queued after it on its
// key, and records who did it and why in the audit chain. Delivered items
// and items a live delivery pass is sending now are refused.
func (s *Service) DiscardOutbox(ctx context.Context, id int64, reason string) (OutboxItem, error) {
	cur, err := s.store.GetOutbox(ctx, id)
	if err != nil {
		return OutboxItem{}, err
	}
	if cur.ClaimHolderGone() {
		_ = s.store.ReleaseOutbox(ctx, id, cur.ClaimedBy)
	}
	var it OutboxItem
	err = s.store.Atomic(ctx, func(tx Tx) error {
		var err error
		if it, err = tx.DiscardOutbox(ctx, id); err != nil {
			return err
		}
		ev := Event{
			Action: "outbox.discarded", Subject: fmt.Sprintf("%s #%d", it.Kind, it.ID), UpdateID: updateIDOf(it), Result: "ok",
			Detail: map[string]any{"outbox_id": it.ID, "key": it.Key, "kind": string(it.Kind), "last_error": it.LastError, "reason": reason},
		}
		if it.Kind == OutboxDecide {
			ev.ChangeNumber = it.Key
		}
		return s.audit(ctx, tx, ev)
	})
	return it, err
}

// GetOutbox returns one outbox item.
func (s *Service) GetOutbox(ctx context.Context, id int64) (OutboxItem, error) {
	return s.store.GetOutbox(ctx, id)
}
