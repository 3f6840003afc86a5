package ops

import (
	"encoding/json"
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

// Outbox states. A failed item needs an operator (`daytwo outbox retry`);
// items queued after it on the same key wait for it.
const (
	OutboxPending   OutboxState = "pending"
	OutboxDelivered OutboxState = "delivered"
	OutboxFailed    OutboxState = "failed"
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
}

// NewOutboxItem builds a pending item with payload encoded as JSON.
func NewOutboxItem(key string, kind OutboxKind, payload any) (OutboxItem, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return OutboxItem{}, err
	}
	return OutboxItem{Key: key, Kind: kind, Payload: b, State: OutboxPending}, nil
}
