package ops

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors a ChangeSystem reports, so that ops can decide whether to retry
// without knowing the adapter.
var (
	// ErrUnavailable means the change system could not be reached or asked
	// us to slow down: retry later (the outbox does).
	ErrUnavailable = errors.New("change system unavailable")
	// ErrRefused means the change system understood and refused the write
	// (business rule, ACL, invalid state move, bad input): retrying the same
	// request will not help.
	ErrRefused = errors.New("refused by the change system")
)

// RetryLaterError is a temporary failure for which the change system said
// how long to wait (e.g. a 429 with Retry-After); it wraps ErrUnavailable.
type RetryLaterError struct {
	After time.Duration
	Err   error
}

func (e *RetryLaterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.After)
}

func (e *RetryLaterError) Unwrap() error { return e.Err }

// EvidenceChecker is implemented by change systems that can tell whether a
// work note or an attachment already landed. The outbox asks before it
// re-sends evidence whose first attempt may have been applied (its answer
// was lost), so evidence is written once, not at least once.
type EvidenceChecker interface {
	HasWorkNote(ctx context.Context, sysID, note string) (bool, error)
	HasAttachment(ctx context.Context, sysID, name string) (bool, error)
}

// ChangeRequest is the change ops asks the change system to raise.
type ChangeRequest struct {
	// CorrelationID makes creation idempotent: the adapter looks it up
	// before re-sending a create whose outcome it does not know.
	CorrelationID    string     `json:"correlation_id"`
	Type             ChangeType `json:"type"`     // normal, standard, emergency
	Template         string     `json:"template"` // standard change template name
	ShortDescription string     `json:"short_description"`
	Description      string     `json:"description"`
	CmdbCI           string     `json:"cmdb_ci"`          // name or sys_id
	AssignmentGroup  string     `json:"assignment_group"` // name or sys_id
	Risk             string     `json:"risk"`
	Impact           string     `json:"impact"`
	Start            time.Time  `json:"start"`
	End              time.Time  `json:"end"`
	// Parent is the sys_id of the change this one follows from (task's
	// parent reference): an emergency change raised to undo a release
	// names the change that shipped it.
	Parent string `json:"parent,omitempty"`
}

// IncidentRequest is an incident ops opens after a failed rollout.
type IncidentRequest struct {
	CorrelationID    string `json:"correlation_id"`
	ShortDescription string `json:"short_description"`
	Description      string `json:"description"`
	CmdbCI           string `json:"cmdb_ci"`
	AssignmentGroup  string `json:"assignment_group"`
	Impact           string `json:"impact"`
	Urgency          string `json:"urgency"`
	// CausedBy is the sys_id of the change whose rollout failed.
	CausedBy string `json:"caused_by"`
}

// environmentIncident is the incident daytwo opens about env: filed
// against env's CI and assignment group, at medium impact and urgency
// (every incident daytwo raises is one, whatever the cause). CausedBy is
// set when the payload is delivered.
func environmentIncident(env Environment, correlationID, short, description string) IncidentRequest {
	return IncidentRequest{
		CorrelationID: correlationID, ShortDescription: short, Description: description,
		CmdbCI: env.Change.CmdbCI, AssignmentGroup: env.Change.AssignmentGroup, Impact: "medium", Urgency: "medium",
	}
}

// MirrorRequest is one incremental mirror run over change requests.
type MirrorRequest struct {
	Since Watermark
	// CorrelationPrefix selects daytwo's own changes.
	CorrelationPrefix string
	// CIs additionally selects every change on these configuration items
	// (names or sys_ids), to show conflicts.
	CIs []string
	// KnownCIs holds sys_ids of CIs resolved before (by name as in CIs);
	// the others are looked up, and reported in MirrorStats.ResolvedCIs.
	KnownCIs map[string]string
	PageSize int
}

// MirrorStats reports a mirror run.
type MirrorStats struct {
	Requests int
	Rows     int
	Cursor   Watermark
	// ResolvedCIs are the CIs of the request looked up in this run (name
	// → sys_id), for the caller to keep.
	ResolvedCIs map[string]string
	// UnknownCIs are the CIs of the request the change system does not
	// know, or cannot tell apart: their changes were left out, the rest
	// mirrored.
	UnknownCIs []string
}

// ChangeSystem is the change-management system ops works with (ServiceNow,
// through itsm). Writes go through the outbox; ops never calls the write
// methods from a user-facing code path directly.
type ChangeSystem interface {
	// CreateChange raises a change; it is idempotent on CorrelationID.
	CreateChange(ctx context.Context, req ChangeRequest) (Change, error)
	// RequestApproval moves a new change to the state after New for its
	// type (normal: Assess, emergency: Authorize, standard: Scheduled).
	RequestApproval(ctx context.Context, sysID string) (Change, error)
	// MoveChange walks a change along its legal path to state; being there
	// already is success.
	MoveChange(ctx context.Context, sysID string, to ChangeState) (Change, error)
	AddWorkNote(ctx context.Context, sysID, note string) error
	AttachFile(ctx context.Context, sysID, name, contentType string, data []byte) error
	// CloseChange moves the change through Review to Closed with a close
	// code (successful, successful_issues, unsuccessful) and notes.
	CloseChange(ctx context.Context, sysID, code, notes string) (Change, error)
	// DecideChange approves or rejects as the configured user.
	DecideChange(ctx context.Context, sysID string, approve bool, comment string) (Change, error)
	// CreateIncident opens an incident; idempotent on CorrelationID.
	CreateIncident(ctx context.Context, req IncidentRequest) (Incident, error)
	GetChange(ctx context.Context, sysID string) (Change, error)

	// MirrorChanges pages through changes updated since req.Since in
	// (sys_updated_on, sys_id) order; fn gets each page and the cursor after
	// it.
	MirrorChanges(ctx context.Context, req MirrorRequest, fn func(page []Change, cursor Watermark) error) (MirrorStats, error)
	// OpenApprovals returns the approvals of every open change whose
	// correlation id starts with prefix, in one request.
	OpenApprovals(ctx context.Context, correlationPrefix string) ([]Approval, error)
	// DeletedChanges returns the sys_ids of changes deleted since since.
	DeletedChanges(ctx context.Context, since time.Time) ([]string, error)
	// Ping checks that the system answers (and credentials work).
	Ping(ctx context.Context) error
	// WhoAmI returns the sys_id of the user daytwo acts as.
	WhoAmI(ctx context.Context) (string, error)
	// StartConflictCheck starts ServiceNow's conflict detection for a
	// change (blackout windows, other changes scheduled on its CI); it runs
	// in the background and the check comes back ConflictRunning.
	StartConflictCheck(ctx context.Context, changeSysID string) (ConflictCheck, error)
	// PollConflictCheck waits up to wait for a started check to complete
	// and returns where it stands: still running, failed, or its results.
	PollConflictCheck(ctx context.Context, chk ConflictCheck, wait time.Duration) (ConflictCheck, error)
}
