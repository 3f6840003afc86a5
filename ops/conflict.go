package ops

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ConflictState is where a conflict check of an update's change stands.
type ConflictState string

// Conflict check states.
const (
	// ConflictRunning: started on ServiceNow, not complete yet.
	ConflictRunning ConflictState = "running"
	// ConflictClear: completed with no conflict listed (ServiceNow's status
	// may still say "Conflict": the list is the authority).
	ConflictClear ConflictState = "clear"
	// ConflictFound: completed with conflicts.
	ConflictFound ConflictState = "conflict"
	// ConflictFailed: the check ended in error or its worker vanished; the
	// next delivery starts a new one.
	ConflictFailed ConflictState = "failed"
)

// ConflictCheck is the last conflict check of an update's change, kept as
// one record per update.
type ConflictCheck struct {
	UpdateID    string        `json:"update_id"`
	ChangeSysID string        `json:"change_sys_id"`
	State       ConflictState `json:"state"`
	// Worker is the ServiceNow worker running the check.
	Worker    string     `json:"worker,omitempty"`
	Conflicts []Conflict `json:"conflicts"`
	Message   string     `json:"message,omitempty"`
	// StartedAt is when the check was started (the instance's clock);
	// LastRun when ServiceNow ran it; CheckedAt when daytwo recorded this
	// state.
	StartedAt time.Time `json:"started_at,omitzero"`
	LastRun   time.Time `json:"last_run,omitzero"`
	CheckedAt time.Time `json:"checked_at,omitzero"`
}

// Conflict is one conflict ServiceNow found.
type Conflict struct {
	// Type is ServiceNow's conflict type (blackout, ci_already_scheduled,
	// not_in_maintenance_window, ...), Label its display value.
	Type  string `json:"type,omitempty"`
	Label string `json:"label,omitempty"`
	// With is the other change (number, else sys_id) of an overlap;
	// Schedule the blackout schedule; CI the configuration item.
	With     string `json:"with,omitempty"`
	Schedule string `json:"schedule,omitempty"`
	CI       string `json:"ci,omitempty"`
}

// String describes the conflict: "CI Already Scheduled (with CHG0000012
// on checkout-service)".
func (c Conflict) String() string {
	what := firstNonEmptyStr(c.Label, c.Type, "conflict")
	var parts []string
	if c.With != "" {
		parts = append(parts, "with "+c.With)
	}
	if c.Schedule != "" {
		parts = append(parts, c.Schedule)
	}
	if c.CI != "" {
		parts = append(parts, "on "+c.CI)
	}
	if len(parts) > 0 {
		what += " (" + strings.Join(parts, " ") + ")"
	}
	return what
}

func firstNonEmptyStr(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// Conflict check timing: one delivery waits conflictPollWait for the
// worker before it lets the outbox retry (polling the same worker); a
// check running longer than conflictRunningMax is started again.
const (
	conflictPollWait    = 8 * time.Second
	conflictRunningMax  = 10 * time.Minute
	conflictRetryPeriod = 5 * time.Second
)

// errConflictCheckRunning makes the outbox retry a check that is still
// running.
var errConflictCheckRunning = errors.New("conflict check still running on ServiceNow")

// deliverConflictCheck starts (or resumes) the conflict check of the
// item's update and records where it stands. A check still running is
// recorded as such and the item retried; a completed one is recorded, its
// change mirrored, and audited.
func (s *Service) deliverConflictCheck(ctx context.Context, it OutboxItem) error {
	id := updateIDOf(it)
	u, err := s.store.GetUpdate(ctx, id)
	if err != nil {
		return fmt.Errorf("%w: outbox item %d: update %s: %v", ErrRefused, it.ID, id, err)
	}
	if u.ChangeSysID == "" {
		return fmt.Errorf("outbox item %d: %w", it.ID, errNoChange)
	}
	last, err := s.store.ConflictCheck(ctx, u.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	// The item was queued after the last completed check (or there is
	// none): resume the check in flight, else start one.
	chk := last
	if last.State != ConflictRunning || last.Worker == "" || last.ChangeSysID != u.ChangeSysID ||
		s.now().Sub(last.StartedAt) > conflictRunningMax {
		if chk, err = s.changes.StartConflictCheck(ctx, u.ChangeSysID); err != nil {
			return err
		}
		chk.UpdateID, chk.ChangeSysID, chk.State = u.ID, u.ChangeSysID, ConflictRunning
		// Durable before waiting: a retry, or another process, polls this
		// worker instead of starting another.
		if err := s.saveConflictCheck(context.WithoutCancel(ctx), chk); err != nil {
			return err
		}
	}
	res, err := s.changes.PollConflictCheck(ctx, chk, conflictPollWait)
	if err != nil {
		return err
	}
	res.UpdateID, res.ChangeSysID = u.ID, u.ChangeSysID
	if res.Conflicts == nil {
		res.Conflicts = []Conflict{}
	}
	ctx = context.WithoutCancel(ctx) // ServiceNow acted: record it even if the caller gave up
	switch res.State {
	case ConflictRunning:
		return &RetryLaterError{After: conflictRetryPeriod, Err: fmt.Errorf("%w: %w (worker %s)", ErrUnavailable, errConflictCheckRunning, chk.Worker)}
	case ConflictFailed:
		if err := s.saveConflictCheck(ctx, res); err != nil {
			return err
		}
		return fmt.Errorf("%w: conflict check of %s failed: %s", ErrUnavailable, u.ChangeNumber, res.Message)
	}
	// The check updates conflict_status on the change: mirror it.
	ch, err := s.changes.GetChange(ctx, u.ChangeSysID)
	if err != nil {
		return err
	}
	found := make([]string, len(res.Conflicts))
	for i, c := range res.Conflicts {
		found[i] = c.String()
	}
	return s.store.Atomic(ctx, func(tx Tx) error {
		res.CheckedAt = tx.Now()
		if err := tx.SaveConflictCheck(ctx, res); err != nil {
			return err
		}
		if _, err := tx.UpsertChanges(ctx, []Change{ch}); err != nil {
			return err
		}
		if err := tx.MarkDelivered(ctx, it.ID, map[string]string{"number": u.ChangeNumber, "conflicts": string(res.State)}); err != nil {
			return err
		}
		return s.audit(ctx, tx, Event{Action: "change.conflicts", Subject: u.ChangeNumber, Environment: u.Environment,
			UpdateID: u.ID, ChangeNumber: u.ChangeNumber, Result: string(res.State),
			Detail: map[string]any{"conflicts": found, "worker": res.Worker, "last_run": res.LastRun.UTC().Format(time.RFC3339)}})
	})
}

func (s *Service) saveConflictCheck(ctx context.Context, chk ConflictCheck) error {
	return s.store.Atomic(ctx, func(tx Tx) error {
		chk.CheckedAt = tx.Now()
		return tx.SaveConflictCheck(ctx, chk)
	})
}

// ConflictStatus is a change's conflict_status as ServiceNow records it
// (decoded by the adapter): what the gate goes by when daytwo does not run
// its own check (change.check_conflicts off).
type ConflictStatus string

// Conflict statuses of a change_request.
const (
	ConflictStatusConflict ConflictStatus = "Conflict"
	ConflictStatusNone     ConflictStatus = "No Conflict"
	ConflictStatusNotRun   ConflictStatus = "Not Run"
)

// gateConflictCheck is the gate's conflict reason from the update's last
// conflict check (ok false: none). A check not started, still running or
// failed keeps the gate closed until one completes; a completed check
// blocks only when it listed conflicts.
func (s *Service) gateConflictCheck(ctx context.Context, u Update) (GateReason, bool, error) {
	chk, err := s.store.ConflictCheck(ctx, u.ID)
	switch {
	case errors.Is(err, ErrNotFound) || err == nil && chk.ChangeSysID != u.ChangeSysID:
		return GateReason{Code: GateConflict, Queued: true,
			Message: fmt.Sprintf("ServiceNow conflict check of %s not done yet (queued)", u.ChangeNumber)}, true, nil
	case err != nil:
		return GateReason{}, false, err
	}
	switch chk.State {
	case ConflictRunning:
		return GateReason{Code: GateConflict, Queued: true,
			Message: fmt.Sprintf("ServiceNow conflict check of %s still running (started %s)", u.ChangeNumber, chk.StartedAt.UTC().Format("15:04:05 UTC"))}, true, nil
	case ConflictFailed:
		return GateReason{Code: GateConflict, Queued: true,
			Message: fmt.Sprintf("ServiceNow conflict check of %s failed (%s); it is started again", u.ChangeNumber, chk.Message)}, true, nil
	case ConflictFound:
		found := make([]string, len(chk.Conflicts))
		for i, c := range chk.Conflicts {
			found[i] = c.String()
		}
		return GateReason{Code: GateConflict,
			Message: fmt.Sprintf("ServiceNow reports conflicts for %s: %s", u.ChangeNumber, strings.Join(found, "; "))}, true, nil
	}
	return GateReason{}, false, nil
}
