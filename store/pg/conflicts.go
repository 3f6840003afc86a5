package pg

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/daytwo/daytwo/ops"
)

const conflictColumns = `SELECT update_id, change_sys_id, state, worker, conflicts_json, message, started_at, last_run, checked_at
	FROM conflict_checks`

// SaveConflictCheck records the update's last conflict check inside tx,
// replacing the previous one.
func (tx *Tx) SaveConflictCheck(ctx context.Context, chk ops.ConflictCheck) error {
	conflicts := chk.Conflicts
	if conflicts == nil {
		conflicts = []ops.Conflict{}
	}
	b, err := json.Marshal(conflicts)
	if err != nil {
		return fmt.Errorf("store: encode conflicts of %s: %w", chk.UpdateID, err)
	}
	checked := chk.CheckedAt
	if checked.IsZero() {
		checked = tx.now
	}
	_, err = tx.tx.ExecContext(ctx, `INSERT INTO conflict_checks (update_id, change_sys_id, state, worker, conflicts_json,
			message, started_at, last_run, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (update_id) DO UPDATE SET change_sys_id = excluded.change_sys_id, state = excluded.state,
			worker = excluded.worker, conflicts_json = excluded.conflicts_json, message = excluded.message,
			started_at = excluded.started_at, last_run = excluded.last_run, checked_at = excluded.checked_at`,
		chk.UpdateID, chk.ChangeSysID, string(chk.State), chk.Worker, string(b), chk.Message,
		formatTime(chk.StartedAt), formatTime(chk.LastRun), formatTime(checked))
	if err != nil {
		return fmt.Errorf("store: record conflict check of %s: %w", chk.UpdateID, mapErr(err))
	}
	return nil
}

// ConflictCheck returns the update's last conflict check (ErrNotFound when
// none was started).
func (db *DB) ConflictCheck(ctx context.Context, updateID string) (ops.ConflictCheck, error) {
	row := db.sql.QueryRowContext(ctx, conflictColumns+` WHERE update_id = ?`, updateID)
	chk, err := scanConflictCheck(row)
	if errors.Is(err, sql.ErrNoRows) {
		return chk, fmt.Errorf("store: conflict check of %s: %w", updateID, ErrNotFound)
	}
	return chk, err
}

// ConflictChecks returns the last conflict checks in state recorded before
// before, oldest first.
func (db *DB) ConflictChecks(ctx context.Context, state ops.ConflictState, before time.Time) ([]ops.ConflictCheck, error) {
	rows, err := db.sql.QueryContext(ctx, conflictColumns+` WHERE state = ? AND checked_at < ? ORDER BY checked_at, update_id`,
		string(state), formatTime(before))
	if err != nil {
		return nil, fmt.Errorf("store: conflict checks: %w", err)
	}
	defer rows.Close()
	var out []ops.ConflictCheck
	for rows.Next() {
		chk, err := scanConflictCheck(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, chk)
	}
	return out, rows.Err()
}

func scanConflictCheck(row interface{ Scan(...any) error }) (ops.ConflictCheck, error) {
	var (
		chk                       ops.ConflictCheck
		state, conflicts          string
		started, lastRun, checked string
	)
	if err := row.Scan(&chk.UpdateID, &chk.ChangeSysID, &state, &chk.Worker, &conflicts, &chk.Message,
		&started, &lastRun, &checked); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return chk, err
		}
		return chk, fmt.Errorf("store: scan conflict check: %w", err)
	}
	chk.State = ops.ConflictState(state)
	if err := json.Unmarshal([]byte(conflicts), &chk.Conflicts); err != nil {
		return chk, fmt.Errorf("store: conflict check of %s: bad conflicts: %w", chk.UpdateID, err)
	}
	var err error
	if chk.StartedAt, err = parseTime(started); err != nil {
		return chk, err
	}
	if chk.LastRun, err = parseTime(lastRun); err != nil {
		return chk, err
	}
	chk.CheckedAt, err = parseTime(checked)
	return chk, err
}
