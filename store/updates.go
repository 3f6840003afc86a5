package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/daytwo/daytwo/ops"
)

// queryer runs reads on the database or inside a transaction.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// InsertUpdate stores a new update inside tx.
func (tx *Tx) InsertUpdate(ctx context.Context, u ops.Update) error {
	cfg, err := json.Marshal(nonNilMap(u.Config))
	if err != nil {
		return err
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = tx.now
	}
	_, err = tx.tx.ExecContext(ctx, `INSERT INTO updates (id, environment, version, config_json, from_version, plan_json,
			plan_digest, state, change_type, change_sys_id, change_number, approved_digest, rollback, reason, created_by, created_at, updated_at,
			bundle_id, bundle_seq)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Environment, u.Version, string(cfg), u.FromVersion, string(u.Plan), u.PlanDigest, string(u.State),
		u.ChangeType, u.ChangeSysID, u.ChangeNumber, u.ApprovedDigest, u.Rollback, u.Reason, u.CreatedBy,
		formatTime(u.CreatedAt), formatTime(tx.now), u.BundleID, u.BundleSeq)
	if err != nil {
		return fmt.Errorf("store: insert update %s: %w", u.ID, mapErr(err))
	}
	return nil
}

// SaveUpdate writes u's mutable fields inside tx, but only if the stored
// update is still in state expect: a concurrent writer that moved it first
// wins, and this call fails with ErrConflict.
func (tx *Tx) SaveUpdate(ctx context.Context, u ops.Update, expect ops.UpdateState) error {
	res, err := tx.tx.ExecContext(ctx, `UPDATE updates SET state = ?, plan_json = ?, plan_digest = ?, from_version = ?,
			change_sys_id = ?, change_number = ?, approved_digest = ?, reason = ?, updated_at = ?
		WHERE id = ? AND state = ?`,
		string(u.State), string(u.Plan), u.PlanDigest, u.FromVersion, u.ChangeSysID, u.ChangeNumber, u.ApprovedDigest, u.Reason,
		formatTime(tx.now), u.ID, string(expect))
	if err != nil {
		return fmt.Errorf("store: save update %s: %w", u.ID, mapErr(err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("store: update %s is no longer %s: %w", u.ID, expect, ErrConflict)
	}
	return nil
}

// OpenUpdates lists env's updates that may still run, newest first, inside
// tx (so a proposal's check and its insert see the same rows).
func (tx *Tx) OpenUpdates(ctx context.Context, env string) ([]ops.Update, error) {
	states := ops.OpenUpdateStates()
	marks := make([]string, len(states))
	args := []any{env}
	for i, s := range states {
		marks[i] = "?"
		args = append(args, string(s))
	}
	return queryUpdates(ctx, tx.tx, updateColumns+` WHERE environment = ? AND state IN (`+strings.Join(marks, ", ")+`) ORDER BY created_at DESC, id DESC`, args...)
}

// GetUpdate returns an update by id inside tx.
func (tx *Tx) GetUpdate(ctx context.Context, id string) (ops.Update, error) {
	return getUpdate(ctx, tx.tx, `id = ?`, id)
}

// GetUpdate returns an update by its id, or by the number of its change.
func (db *DB) GetUpdate(ctx context.Context, idOrChange string) (ops.Update, error) {
	return getUpdate(ctx, db.sql, `id = ? OR (change_number = ? AND change_number <> '')`, idOrChange, idOrChange)
}

func getUpdate(ctx context.Context, q queryer, where string, args ...any) (ops.Update, error) {
	us, err := queryUpdates(ctx, q, updateColumns+` WHERE `+where+
		// A bundle's change names its first member, not the rollbacks made later.
		` ORDER BY CASE WHEN bundle_id <> '' AND rollback <> 0 THEN 1 ELSE 0 END, created_at DESC, bundle_seq ASC LIMIT 1`, args...)
	if err != nil {
		return ops.Update{}, err
	}
	if len(us) == 0 {
		return ops.Update{}, fmt.Errorf("store: update %v: %w", args[0], ErrNotFound)
	}
	return us[0], nil
}

// ListUpdates returns updates, newest first.
func (db *DB) ListUpdates(ctx context.Context, f ops.UpdateFilter) ([]ops.Update, error) {
	var (
		where []string
		args  []any
	)
	if f.Environment != "" {
		where = append(where, "environment = ?")
		args = append(args, f.Environment)
	}
	if f.Bundle != "" {
		where = append(where, "bundle_id = ?")
		args = append(args, f.Bundle)
	}
	if len(f.States) > 0 {
		marks := make([]string, len(f.States))
		for i, s := range f.States {
			marks[i] = "?"
			args = append(args, string(s))
		}
		where = append(where, "state IN ("+strings.Join(marks, ", ")+")")
	}
	q := updateColumns
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_at DESC, id DESC"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	return queryUpdates(ctx, db.sql, q, args...)
}

const updateColumns = `SELECT id, environment, version, config_json, from_version, plan_json, plan_digest, state,
	change_type, change_sys_id, change_number, approved_digest, rollback, reason, created_by, created_at, updated_at,
	bundle_id, bundle_seq FROM updates`

func queryUpdates(ctx context.Context, q queryer, query string, args ...any) ([]ops.Update, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: updates: %w", err)
	}
	defer rows.Close()
	var out []ops.Update
	for rows.Next() {
		var (
			u                ops.Update
			cfg, plan        string
			created, updated string
		)
		if err := rows.Scan(&u.ID, &u.Environment, &u.Version, &cfg, &u.FromVersion, &plan, &u.PlanDigest, &u.State,
			&u.ChangeType, &u.ChangeSysID, &u.ChangeNumber, &u.ApprovedDigest, &u.Rollback, &u.Reason, &u.CreatedBy, &created, &updated,
			&u.BundleID, &u.BundleSeq); err != nil {
			return nil, fmt.Errorf("store: scan update: %w", err)
		}
		if err := json.Unmarshal([]byte(cfg), &u.Config); err != nil {
			return nil, fmt.Errorf("store: update %s config: %w", u.ID, err)
		}
		u.Plan = []byte(plan)
		var err error
		if u.CreatedAt, err = parseTime(created); err != nil {
			return nil, err
		}
		if u.UpdatedAt, err = parseTime(updated); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// UnsettledBundles lists the bundles that started (a member has a run) and
// are not settled: no member's run records the bundle closed and no close
// or incident is in the outbox for it. The daemon's first pass continues
// each (ops.AdvanceBundles), however long ago it stopped.
func (db *DB) UnsettledBundles(ctx context.Context) ([]string, error) {
	return UnsettledBundlesIn(ctx, db.sql)
}

// UnsettledBundlesIn is UnsettledBundles over either engine's handle.
func UnsettledBundlesIn(ctx context.Context, db Querier) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT DISTINCT u.bundle_id FROM updates u
		WHERE u.bundle_id <> ''
		  AND EXISTS (SELECT 1 FROM runs r WHERE r.update_id = u.id)
		  AND NOT EXISTS (SELECT 1 FROM run_facts f JOIN runs fr ON fr.id = f.run_id JOIN updates m ON m.id = fr.update_id
			WHERE m.bundle_id = u.bundle_id AND f.fact = 'bundle:' || u.bundle_id || ':closed')
		  AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.ordering_key = u.bundle_id AND o.kind IN (?, ?))
		ORDER BY u.bundle_id`, string(ops.OutboxCloseChange), string(ops.OutboxCreateIncident))
	if err != nil {
		return nil, fmt.Errorf("store: unsettled bundles: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("store: scan bundle: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}
