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

// Conflict check timing: a delivery waits up to conflictPollWait for the
// worker; a check still running then is left to the sync cycle, which
// polls it (one request) until it completes. A check running longer than
// conflictRunningMax, or failed, is started again.
const (
	conflictPollWait   = 5 * time.Second
	conflictRunningMax = 10 * time.Minute
)

// deliverConflictCheck starts the conflict check of the item's update and
// waits a little for it. The item is delivered once the check is started
// and recorded: a check still running does not hold back later writes for
// the update; the sync cycle polls it (pollConflictChecks).
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
	// A retry of this item after its check was started polls that worker
	// instead of starting another.
	chk := last
	if last.State != ConflictRunning || last.Worker == "" || last.ChangeSysID != u.ChangeSysID ||
		s.now().Sub(last.StartedAt) > conflictRunningMax {
		if chk, err = s.changes.StartConflictCheck(ctx, u.ChangeSysID); err != nil {
			return err
		}
		chk.UpdateID, chk.ChangeSysID, chk.State = u.ID, u.ChangeSysID, ConflictRunning
		if err := s.saveConflictCheck(context.WithoutCancel(ctx), chk); err != nil {
			return err
		}
	}
	res, err := s.changes.PollConflictCheck(ctx, chk, conflictPollWait)
	if err != nil {
		return err
	}
	return s.recordConflictCheck(context.WithoutCancel(ctx), u, chk, res, it.ID)
}

// recordConflictCheck records where a check stands. A completed check is
// mirrored (it set conflict_status on the change) and audited; itemID,
// when not zero, is the outbox item marked delivered with it.
func (s *Service) recordConflictCheck(ctx context.Context, u Update, chk, res ConflictCheck, itemID int64) error {
	res.UpdateID, res.ChangeSysID = u.ID, u.ChangeSysID
	res.Worker, res.StartedAt = chk.Worker, chk.StartedAt
	if res.Conflicts == nil {
		res.Conflicts = []Conflict{}
	}
	var ch Change
	if res.State == ConflictClear || res.State == ConflictFound {
		var err error
		if ch, err = s.changes.GetChange(ctx, u.ChangeSysID); err != nil {
			return err
		}
	}
	return s.store.Atomic(ctx, func(tx Tx) error {
		res.CheckedAt = tx.Now()
		if err := tx.SaveConflictCheck(ctx, res); err != nil {
			return err
		}
		if itemID != 0 {
			if err := tx.MarkDelivered(ctx, itemID, map[string]string{"number": u.ChangeNumber, "worker": res.Worker, "conflicts": string(res.State)}); err != nil {
				return err
			}
		}
		if ch.SysID != "" {
			if _, err := tx.UpsertChanges(ctx, []Change{ch}); err != nil {
				return err
			}
		}
		detail := map[string]any{"worker": res.Worker}
		action := "change.conflicts"
		switch res.State {
		case ConflictRunning:
			action = "change.conflicts_started"
		case ConflictFailed:
			detail["error"] = res.Message
		default:
			found := make([]string, len(res.Conflicts))
			for i, c := range res.Conflicts {
				found[i] = c.String()
			}
			detail["conflicts"] = found
			detail["last_run"] = res.LastRun.UTC().Format(time.RFC3339)
		}
		if action == "change.conflicts_started" && itemID == 0 {
			return nil
		}
		return s.audit(ctx, tx, Event{
			Action: action, Subject: u.ChangeNumber, Environment: u.Environment,
			UpdateID: u.ID, ChangeNumber: u.ChangeNumber, Result: string(res.State), Detail: detail,
		})
	})
}

// pollConflictChecks looks once at every check still running (one request
// each, none when nothing runs) and records those that completed or
// failed.
func (s *Service) pollConflictChecks(ctx context.Context) error {
	running, err := s.store.ConflictChecks(ctx, ConflictRunning, s.now().Add(time.Second))
	if err != nil {
		return err
	}
	for _, chk := range running {
		u, err := s.store.GetUpdate(ctx, chk.UpdateID)
		if errors.Is(err, ErrNotFound) || err == nil && (u.State.Terminal() || u.ChangeSysID != chk.ChangeSysID) {
			continue
		} else if err != nil {
			return err
		}
		res, err := s.changes.PollConflictCheck(ctx, chk, 0)
		if err != nil {
			return fmt.Errorf("conflict check of %s: %w", u.ChangeNumber, err)
		}
		if res.State == ConflictRunning {
			continue
		}
		if err := s.recordConflictCheck(ctx, u, chk, res, 0); err != nil {
			return err
		}
	}
	return nil
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
		return GateReason{
			Code: GateConflict, Queued: true,
			Message: fmt.Sprintf("ServiceNow conflict check of %s not done yet (queued)", u.ChangeNumber),
		}, true, nil
	case err != nil:
		return GateReason{}, false, err
	}
	switch chk.State {
	case ConflictRunning:
		return GateReason{
			Code: GateConflict, Queued: true,
			Message: fmt.Sprintf("ServiceNow conflict check of %s still running (started %s)", u.ChangeNumber, fmtClock(chk.StartedAt)),
		}, true, nil
	case ConflictFailed:
		return GateReason{
			Code: GateConflict, Queued: true,
			Message: fmt.Sprintf("ServiceNow conflict check of %s failed (%s); it is started again", u.ChangeNumber, chk.Message),
		}, true, nil
	case ConflictFound:
		found := make([]string, len(chk.Conflicts))
		for i, c := range chk.Conflicts {
			found[i] = c.String()
		}
		return GateReason{
			Code:    GateConflict,
			Message: fmt.Sprintf("ServiceNow reports conflicts for %s: %s", u.ChangeNumber, strings.Join(found, "; ")),
		}, true, nil
	}
	return GateReason{}, false, nil
}

// ConflictRecords reads the last conflict check of updates.
type ConflictRecords interface {
	// ConflictCheck returns the update's last conflict check, ErrNotFound
	// when none was started.
	ConflictCheck(ctx context.Context, updateID string) (ConflictCheck, error)
	// ConflictChecks returns the last conflict checks in state that were
	// recorded before before.
	ConflictChecks(ctx context.Context, state ConflictState, before time.Time) ([]ConflictCheck, error)
}
