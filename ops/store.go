package ops

import (
	"context"
	"time"
)

// Store is what ops needs from persistence. store.DB implements it.
type Store interface {
	// Atomic runs fn in one write transaction: every state change, its
	// outbox writes and its audit events commit together or not at all.
	Atomic(ctx context.Context, fn func(tx Tx) error) error

	CurrentReleases(ctx context.Context) (map[string]Release, error)
	Releases(ctx context.Context, env string, limit int) ([]Release, error)
	GetUpdate(ctx context.Context, idOrChange string) (Update, error)
	ListUpdates(ctx context.Context, f UpdateFilter) ([]Update, error)
	GetChange(ctx context.Context, numberOrSysID string) (Change, error)
	ListChanges(ctx context.Context, f ChangeFilter) ([]Change, error)
	CountChanges(ctx context.Context, f ChangeFilter) (int, error)
	Approvals(ctx context.Context, changeSysID string) ([]Approval, error)
	// ApprovalsByID returns the mirrored approvals among sysIDs, by sys_id.
	ApprovalsByID(ctx context.Context, sysIDs []string) (map[string]Approval, error)
	Incidents(ctx context.Context, updateID string) ([]Incident, error)
	OpenChangeSysIDs(ctx context.Context, correlationPrefix string) ([]string, error)
	GetWatermark(ctx context.Context, table string) (Watermark, error)

	DueOutbox(ctx context.Context, now time.Time, limit int) ([]OutboxItem, error)
	NextOutboxAttempt(ctx context.Context) (time.Time, error)
	ListOutbox(ctx context.Context, f OutboxFilter) ([]OutboxItem, error)
	// ClaimOutbox gives one delivery pass the item for ttl; false when
	// another pass holds it or it is no longer pending.
	ClaimOutbox(ctx context.Context, id int64, claimer string, ttl time.Duration) (bool, error)
	ReleaseOutbox(ctx context.Context, id int64, claimer string) error
	MarkAttemptFailed(ctx context.Context, id int64, cause string, next time.Time, permanent bool) error
	RetryOutbox(ctx context.Context, id int64) (int, error)

	ListEvents(ctx context.Context, f EventFilter) ([]Event, error)
	VerifyAudit(ctx context.Context) (AuditVerification, error)

	// The run journal. StepStarted and StepFinished commit on their own:
	// the journal must be durable before and after each step runs.
	StepStarted(ctx context.Context, s StepRecord) (int64, error)
	StepFinished(ctx context.Context, id int64, state StepState, detail string) error
	AppendLog(ctx context.Context, lines []LogLine) error
	GetRun(ctx context.Context, id string) (Run, error)
	Runs(ctx context.Context, updateID string, states ...RunState) ([]Run, error)
	Steps(ctx context.Context, runID string) ([]StepRecord, error)
	LogLines(ctx context.Context, runID string, after int64, limit int) ([]LogLine, error)
	TargetVersions(ctx context.Context, env string) (versions map[string]string, unknown []string, err error)
	TakeOverRun(ctx context.Context, id, holder string) error

	// Drift observations.
	DriftSeen(ctx context.Context, env, target, expected, observed string) (time.Time, error)
	DriftCleared(ctx context.Context, env, target string) error
	DriftedTargets(ctx context.Context) (map[string]int, error)

	// Continuous compliance findings.
	OpenPolicyAlert(ctx context.Context, env, policy, action, message string) (opened bool, err error)
	ResolvePolicyAlert(ctx context.Context, env, policy string) (resolved bool, err error)
	OpenPolicyAlerts(ctx context.Context) ([]PolicyAlert, error)

	// Leases: at most one process rolls an environment at a time.
	AcquireLease(ctx context.Context, env, holder, runID string, ttl time.Duration) (Lease, error)
	StealLease(ctx context.Context, env, deadHolder, holder, runID string, ttl time.Duration) (Lease, error)
	ReleaseLease(ctx context.Context, env, holder string) error
	Leases(ctx context.Context) ([]Lease, error)
}

// PolicyAlert is an open continuous-compliance finding.
type PolicyAlert struct {
	Environment string    `json:"environment"`
	Policy      string    `json:"policy"`
	Action      string    `json:"action"`
	Message     string    `json:"message"`
	FirstSeen   time.Time `json:"first_seen"`
}

// Lease is one process's exclusive claim on an environment.
type Lease struct {
	Environment string    `json:"environment"`
	Holder      string    `json:"holder"`
	RunID       string    `json:"run_id,omitempty"`
	AcquiredAt  time.Time `json:"acquired_at"`
	ExpiresAt   time.Time `json:"expires_at"`
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
	MarkDelivered(ctx context.Context, id int64, result any) error
	UpsertChanges(ctx context.Context, changes []Change) (UpsertStats, error)
	UpsertApprovals(ctx context.Context, approvals []Approval) (UpsertStats, error)
	UpsertIncident(ctx context.Context, in Incident) error
	DeleteChanges(ctx context.Context, sysIDs []string) (int, error)
	SetWatermark(ctx context.Context, table string, w Watermark) error
	AppendEvent(ctx context.Context, ev Event) (Event, error)
	InsertRun(ctx context.Context, r Run) error
	FinishRun(ctx context.Context, id string, state RunState, cause string) error
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
