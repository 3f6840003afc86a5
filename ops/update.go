package ops

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// UpdateState is where an update stands in its lifecycle.
type UpdateState string

// The update lifecycle: proposed → awaiting_approval → approved → scheduled →
// running → succeeded, with the exits rejected, canceled, blocked,
// failed → rolled_back and (a bundle member) stopped.
const (
	UpdateProposed         UpdateState = "proposed"
	UpdateAwaitingApproval UpdateState = "awaiting_approval"
	UpdateApproved         UpdateState = "approved"
	UpdateScheduled        UpdateState = "scheduled"
	UpdateRunning          UpdateState = "running"
	UpdateSucceeded        UpdateState = "succeeded"
	UpdateRejected         UpdateState = "rejected"
	UpdateCanceled         UpdateState = "canceled"
	UpdateBlocked          UpdateState = "blocked"
	UpdateFailed           UpdateState = "failed"
	UpdateRolledBack       UpdateState = "rolled_back"
	// UpdateStopped: a bundle member whose run was stopped early because
	// another member failed; what it had touched was rolled back by that
	// run (bundle.go).
	UpdateStopped UpdateState = "stopped"
)

// updateTransitions lists, per state, the states an update may move to.
var updateTransitions = map[UpdateState][]UpdateState{
	UpdateProposed:         {UpdateAwaitingApproval, UpdateApproved, UpdateBlocked, UpdateCanceled},
	UpdateAwaitingApproval: {UpdateApproved, UpdateRejected, UpdateCanceled, UpdateBlocked},
	UpdateApproved:         {UpdateScheduled, UpdateRunning, UpdateCanceled, UpdateBlocked, UpdateAwaitingApproval},
	UpdateScheduled:        {UpdateRunning, UpdateCanceled, UpdateBlocked, UpdateAwaitingApproval},
	// A blocked proposal is closed: a blocking policy refused it before
	// anything was raised, so nothing waits on it (propose again once the
	// policy passes).
	UpdateBlocked:    nil,
	UpdateRunning:    {UpdateSucceeded, UpdateFailed, UpdateStopped},
	UpdateFailed:     {UpdateRolledBack},
	UpdateSucceeded:  nil,
	UpdateRejected:   nil,
	UpdateCanceled:   nil,
	UpdateRolledBack: nil,
	UpdateStopped:    nil,
}

// OpenUpdateStates are the states of an update that may still run. An
// environment has at most one open update (see Propose).
func OpenUpdateStates() []UpdateState {
	return []UpdateState{UpdateProposed, UpdateAwaitingApproval, UpdateApproved, UpdateScheduled, UpdateRunning}
}

// Valid reports whether s is one of the known states.
func (s UpdateState) Valid() bool {
	_, ok := updateTransitions[s]
	return ok
}

// Terminal reports whether no further transition is possible from s.
func (s UpdateState) Terminal() bool {
	next, ok := updateTransitions[s]
	return ok && len(next) == 0
}

// CanTransition reports whether an update may move from s to next.
func (s UpdateState) CanTransition(next UpdateState) bool {
	for _, n := range updateTransitions[s] {
		if n == next {
			return true
		}
	}
	return false
}

// Transition returns next if the lifecycle allows the move, and an error
// wrapping ErrIllegalTransition otherwise.
func (s UpdateState) Transition(next UpdateState) (UpdateState, error) {
	if !s.CanTransition(next) {
		return s, fmt.Errorf("update %s → %s: %w", s, next, ErrIllegalTransition)
	}
	return next, nil
}

// Update is a proposal to move one environment to a new release. It carries
// the plan that would run and the plan's digest; a plan edited after approval
// has a different digest and needs a new approval.
type Update struct {
	ID             string            `json:"id"`
	Environment    string            `json:"environment"`
	Version        string            `json:"version"`
	Config         map[string]string `json:"config,omitempty"`
	FromVersion    string            `json:"from_version,omitempty"`
	Plan           []byte            `json:"-"`
	PlanDigest     string            `json:"plan_digest"`
	State          UpdateState       `json:"state"`
	ChangeType     ChangeType        `json:"change_type,omitempty"`
	ChangeNumber   string            `json:"change,omitempty"`
	ChangeSysID    string            `json:"change_sys_id,omitempty"`
	ApprovedDigest string            `json:"approved_digest,omitempty"`
	// Rollback marks an update that returns an environment to an earlier
	// release (`daytwo rollback`).
	Rollback bool `json:"rollback,omitempty"`
	// BundleID names the bundle the update belongs to ("" for an update
	// of its own): several services' updates in one stage raised under
	// one change and run in BundleSeq order (ProposeBundle).
	BundleID  string    `json:"bundle,omitempty"`
	BundleSeq int       `json:"bundle_seq,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	CreatedBy string    `json:"created_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Release is what an environment runs: a version and a config map. The
// digest identifies the pair.
type Release struct {
	ID          int64             `json:"id"`
	Environment string            `json:"environment"`
	Version     string            `json:"version"`
	Config      map[string]string `json:"config,omitempty"`
	Digest      string            `json:"digest"`
	UpdateID    string            `json:"update_id,omitempty"`
	Status      ReleaseStatus     `json:"status"`
	CreatedAt   time.Time         `json:"created_at"`
}

// ReleaseStatus tells whether a release is the one an environment runs now.
type ReleaseStatus string

// Release statuses.
const (
	ReleaseActive     ReleaseStatus = "active"
	ReleaseSuperseded ReleaseStatus = "superseded"
	ReleaseRolledBack ReleaseStatus = "rolled_back"
)

// ReleaseDigest identifies a release by its version and config map: the
// sha256 of their canonical JSON encoding (encoding/json sorts map keys).
func ReleaseDigest(version string, config map[string]string) string {
	if config == nil {
		config = map[string]string{}
	}
	b, _ := json.Marshal(struct {
		Version string            `json:"version"`
		Config  map[string]string `json:"config"`
	}{version, config})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ReleaseReader reads what environments run and ran.
type ReleaseReader interface {
	CurrentReleases(ctx context.Context) (map[string]Release, error)
	Releases(ctx context.Context, env string, limit int) ([]Release, error)
}

// UpdateReader reads updates.
type UpdateReader interface {
	GetUpdate(ctx context.Context, idOrChange string) (Update, error)
	ListUpdates(ctx context.Context, f UpdateFilter) ([]Update, error)
}
