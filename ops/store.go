package ops

import (
	"context"
	"time"
)

// Store is everything ops needs from persistence: the role interfaces
// below, each declared beside the code that consumes it (a use case that
// needs only one can be tested against only that). store.DB implements
// them all.
type Store interface {
	Transactor
	ReleaseReader
	UpdateReader
	ChangeMirror
	CICache
	ConflictRecords
	OutboxStore
	AuditLog
	Journal
	DriftStore
	ComplianceStore
	LeaseStore
}

// Transactor runs write transactions.
type Transactor interface {
	// Atomic runs fn in one write transaction: every state change, its
	// outbox writes and its audit events commit together or not at all.
	Atomic(ctx context.Context, fn func(tx Tx) error) error
}

// PolicyAlert is an open continuous-compliance finding.
type PolicyAlert struct {
	Environment string    `json:"environment"`
	Policy      string    `json:"policy"`
	Action      string    `json:"action"`
	Message     string    `json:"message"`
	FirstSeen   time.Time `json:"first_seen"`
}

// Lease is one process's exclusive claim on an environment. Epoch grows
// with every new holder: it fences writes of holders that lost the lease.
type Lease struct {
	Environment string    `json:"environment"`
	Holder      string    `json:"holder"`
	Epoch       int64     `json:"epoch"`
	RunID       string    `json:"run_id,omitempty"`
	AcquiredAt  time.Time `json:"acquired_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// Fence names the lease a runner writes under: its environment, holder
// and epoch. A write under a fence that is no longer current is refused.
type Fence struct {
	Environment string
	Holder      string
	Epoch       int64
}

// LeaseRequest asks for an environment's lease inside a transaction.
type LeaseRequest struct {
	Environment string
	Holder      string
	RunID       string
	TTL         time.Duration
	// DeadHolder, if set, is a holder known to be dead (its process is
	// gone): its unexpired lease may be taken without waiting.
	DeadHolder string
}

// Tx is a write transaction (see Store.Atomic).
type Tx interface {
	Now() time.Time
	GetUpdate(ctx context.Context, id string) (Update, error)
	InsertUpdate(ctx context.Context, u Update) error
	// OpenUpdates lists env's updates in OpenUpdateStates, newest first.
	OpenUpdates(ctx context.Context, env string) ([]Update, error)
	// SaveUpdate writes u if the stored update is still in state expect,
	// and fails with ErrConflict otherwise.
	SaveUpdate(ctx context.Context, u Update, expect UpdateState) error
	RecordRelease(ctx context.Context, r Release) (Release, error)
	Enqueue(ctx context.Context, it OutboxItem) (int64, error)
	// DiscardOutbox closes an undelivered, unclaimed item without sending
	// it (ErrConflict for a delivered or in-flight one).
	DiscardOutbox(ctx context.Context, id int64) (OutboxItem, error)
	// SupersedeFailed closes the failed items of kind on key queued before
	// id, returning their ids.
	SupersedeFailed(ctx context.Context, key string, kind OutboxKind, id int64) ([]int64, error)
	MarkDelivered(ctx context.Context, id int64, result any) error
	UpsertChanges(ctx context.Context, changes []Change) (UpsertStats, error)
	UpsertApprovals(ctx context.Context, approvals []Approval) (UpsertStats, error)
	UpsertIncident(ctx context.Context, in Incident) error
	DeleteChanges(ctx context.Context, sysIDs []string) (int, error)
	SetWatermark(ctx context.Context, table string, w Watermark) error
	// SaveConflictCheck records the update's last conflict check,
	// replacing the previous one.
	SaveConflictCheck(ctx context.Context, chk ConflictCheck) error
	AppendEvent(ctx context.Context, ev Event) (Event, error)
	InsertRun(ctx context.Context, r Run) error
	FinishRun(ctx context.Context, id string, state RunState, cause string) error

	// AcquireLease takes an environment's lease when it is free, expired,
	// or held by req.DeadHolder, bumping its epoch; it fails with
	// ErrConflict naming the holder otherwise.
	AcquireLease(ctx context.Context, req LeaseRequest) (Lease, error)
	// CheckFence fails with ErrLeaseLost unless f is the current lease.
	CheckFence(ctx context.Context, f Fence) error
	// TakeOverRun records that the fence's holder now owns a running run.
	TakeOverRun(ctx context.Context, id string, f Fence) error
	// DecideRollback journals a run's decision to roll back (once; a
	// second call keeps the first reason) and returns the run.
	DecideRollback(ctx context.Context, id, reason string) (Run, error)
	// RecordFact records that a run wrote a piece of evidence; false when
	// it had already been recorded (by any process).
	RecordFact(ctx context.Context, runID, fact string) (bool, error)
}

// UpsertStats counts what a batched upsert did.
type UpsertStats struct {
	// Written is the number of rows inserted or changed.
	Written int
	// Unchanged is the number of rows skipped because the stored copy was
	// already as new.
	Unchanged int
}

// Watermark is a keyset sync cursor: the (sys_updated_on, sys_id) of the
// last row stored. An empty SysID means "at the start of that second".
type Watermark struct {
	UpdatedOn time.Time
	SysID     string
}

// UpdateFilter narrows ListUpdates. Zero values match everything.
type UpdateFilter struct {
	Environment string
	States      []UpdateState
	Limit       int
	// Bundle lists the members of one bundle.
	Bundle string
}

// ChangeFilter narrows ListChanges. Zero values match everything.
type ChangeFilter struct {
	ActiveOnly        bool
	CorrelationPrefix string
	// Search matches number, short description or CI (case-insensitive
	// substring).
	Search string
	// Limit caps the number of rows (0 means no cap); Offset skips rows,
	// for screens that show one window of a large mirror.
	Limit  int
	Offset int
}

// OutboxFilter narrows ListOutbox.
type OutboxFilter struct {
	// States to include; empty means pending and failed.
	States []OutboxState
	Key    string
	Limit  int
}

// EventFilter narrows ListEvents. Zero values match everything.
type EventFilter struct {
	Environment string
	UpdateID    string
	AfterSeq    int64
	// Limit returns only the newest N events (still in chain order).
	Limit int
}
