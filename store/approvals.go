package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/daytwo/daytwo/ops"
)

// UpsertApprovals writes mirrored approval records inside tx, skipping
// those that are not newer than the stored copy.
func (tx *Tx) UpsertApprovals(ctx context.Context, approvals []ops.Approval) (ops.UpsertStats, error) {
	var st ops.UpsertStats
	if len(approvals) == 0 {
		return st, nil
	}
	stmt, err := tx.tx.PrepareContext(ctx, `INSERT INTO approvals (sys_id, change_sys_id, approver, approver_name, state,
			comments, sys_updated_on, sys_mod_count, raw_json, mirrored_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (sys_id) DO UPDATE SET change_sys_id = excluded.change_sys_id, approver = excluded.approver,
			approver_name = CASE WHEN excluded.approver_name <> '' THEN excluded.approver_name ELSE approvals.approver_name END,
			state = excluded.state, comments = excluded.comments, sys_updated_on = excluded.sys_updated_on,
			sys_mod_count = excluded.sys_mod_count, raw_json = excluded.raw_json, mirrored_at = excluded.mirrored_at
		WHERE excluded.sys_mod_count > approvals.sys_mod_count OR excluded.sys_updated_on > approvals.sys_updated_on`)
	if err != nil {
		return st, fmt.Errorf("store: upsert approvals: %w", err)
	}
	defer stmt.Close()
	for _, a := range approvals {
		raw := string(a.Raw)
		if raw == "" {
			raw = "{}"
		}
		res, err := stmt.ExecContext(ctx, a.SysID, a.ChangeSysID, a.Approver, a.ApproverName, a.State, a.Comments,
			formatTime(a.SysUpdatedOn), a.SysModCount, raw, formatTime(tx.now))
		if err != nil {
			return st, fmt.Errorf("store: upsert approval %s: %w", a.SysID, mapErr(err))
		}
		if n, _ := res.RowsAffected(); n > 0 {
			st.Written++
			tx.mirror.approvals = append(tx.mirror.approvals, a)
		} else {
			st.Unchanged++
		}
	}
	if st.Written > 0 {
		// Approvals are mirrored rows too: the counter tells every
		// process's copy of them (mirrorCache) that they moved.
		return st, tx.bumpGeneration(ctx, nil, nil)
	}
	return st, nil
}

// Approvals returns the mirrored approvals of a change, oldest first.
func (db *DB) Approvals(ctx context.Context, changeSysID string) ([]ops.Approval, error) {
	rows, err := db.sql.QueryContext(ctx, approvalColumns+` WHERE change_sys_id = ? ORDER BY sys_updated_on, sys_id`, changeSysID)
	if err != nil {
		return nil, fmt.Errorf("store: approvals of %s: %w", changeSysID, err)
	}
	return scanApprovals(rows)
}

const approvalColumns = `SELECT sys_id, change_sys_id, approver, approver_name, state, comments,
	sys_updated_on, sys_mod_count FROM approvals`

// scanApprovals reads and closes rows of approvalColumns.
func scanApprovals(rows *sql.Rows) ([]ops.Approval, error) {
	defer rows.Close()
	var out []ops.Approval
	for rows.Next() {
		var (
			a       ops.Approval
			updated string
		)
		if err := rows.Scan(&a.SysID, &a.ChangeSysID, &a.Approver, &a.ApproverName, &a.State, &a.Comments, &updated, &a.SysModCount); err != nil {
			return nil, fmt.Errorf("store: scan approval: %w", err)
		}
		var err error
		if a.SysUpdatedOn, err = parseTime(updated); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// UpsertIncident records an incident daytwo opened (or mirrored) inside tx.
func (tx *Tx) UpsertIncident(ctx context.Context, in ops.Incident) error {
	raw := string(in.Raw)
	if raw == "" {
		raw = "{}"
	}
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO incidents (sys_id, number, change_sys_id, update_id, state,
			short_description, sys_updated_on, raw_json, mirrored_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (sys_id) DO UPDATE SET number = excluded.number, state = excluded.state,
			short_description = excluded.short_description, sys_updated_on = excluded.sys_updated_on,
			raw_json = excluded.raw_json, mirrored_at = excluded.mirrored_at,
			change_sys_id = CASE WHEN excluded.change_sys_id <> '' THEN excluded.change_sys_id ELSE incidents.change_sys_id END,
			update_id = CASE WHEN excluded.update_id <> '' THEN excluded.update_id ELSE incidents.update_id END`,
		in.SysID, in.Number, in.ChangeSysID, in.UpdateID, in.State, in.ShortDescription, formatTime(in.SysUpdatedOn), raw, formatTime(tx.now))
	if err != nil {
		return fmt.Errorf("store: upsert incident %s: %w", in.Number, mapErr(err))
	}
	return nil
}

// Incidents returns the incidents linked to an update, newest first.
func (db *DB) Incidents(ctx context.Context, updateID string) ([]ops.Incident, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT sys_id, number, change_sys_id, update_id, state, short_description,
		sys_updated_on FROM incidents WHERE update_id = ? ORDER BY sys_updated_on DESC`, updateID)
	if err != nil {
		return nil, fmt.Errorf("store: incidents of %s: %w", updateID, err)
	}
	defer rows.Close()
	var out []ops.Incident
	for rows.Next() {
		var (
			in      ops.Incident
			updated string
		)
		if err := rows.Scan(&in.SysID, &in.Number, &in.ChangeSysID, &in.UpdateID, &in.State, &in.ShortDescription, &updated); err != nil {
			return nil, fmt.Errorf("store: scan incident: %w", err)
		}
		if in.SysUpdatedOn, err = parseTime(updated); err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

// OpenChangeSysIDs lists the sys_ids of active mirrored changes whose
// correlation id starts with prefix (daytwo's own open changes).
func (db *DB) OpenChangeSysIDs(ctx context.Context, prefix string) ([]string, error) {
	var ids []string
	err := db.throughCache(ctx, "open changes",
		func(gen int64) (ok bool) { ids, ok = db.cache.cachedOpen(gen, prefix); return ok },
		func() (err error) { ids, err = db.openChangeSysIDs(ctx, prefix); return err },
		func(gen int64) { db.cache.keepOpen(gen, prefix, ids) })
	return ids, err
}

// openChangeSysIDs is OpenChangeSysIDs read from the database.
func (db *DB) openChangeSysIDs(ctx context.Context, prefix string) ([]string, error) {
	// "+active" keeps the planner on the correlation_id index: daytwo's
	// changes are few among a mirror of everyone's changes on its CIs.
	rows, err := db.queryChunk(ctx, `SELECT sys_id FROM changes WHERE +active = 1 AND correlation_id >= ? AND correlation_id < ? ORDER BY sys_id`,
		true, []any{prefix, prefix + "\xff"})
	if err != nil {
		return nil, fmt.Errorf("store: open changes: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// ApprovalsByID returns the mirrored approvals among sysIDs, by sys_id, in
// a few queries whatever their number, with the columns a sync cycle
// compares (sys_id, change_sys_id, state, sys_updated_on, sys_mod_count):
// a cycle with 1,000 open changes reads 2,000 of them.
//
// It answers from the process's copy (mirrorCache) when no write changed
// the mirror since the copy was taken, and reads only what the copy does
// not know otherwise.
func (db *DB) ApprovalsByID(ctx context.Context, sysIDs []string) (map[string]ops.Approval, error) {
	var out, found map[string]ops.Approval
	var missing []string
	err := db.throughCache(ctx, "approvals by id",
		func(gen int64) bool { out, missing = db.cache.cachedApprovals(gen, sysIDs); return len(missing) == 0 },
		func() (err error) { found, err = db.approvalsByID(ctx, missing); return err },
		func(gen int64) { db.cache.keepApprovals(gen, missing, found) })
	if err != nil {
		return nil, err
	}
	return mergeApprovals(out, found), nil
}

// approvalsByID is ApprovalsByID read from the database.
func (db *DB) approvalsByID(ctx context.Context, sysIDs []string) (map[string]ops.Approval, error) {
	out := make(map[string]ops.Approval, len(sysIDs))
	const chunk = 500 // well under SQLite's bound-parameter limit
	args := make([]any, 0, min(chunk, len(sysIDs)))
	for len(sysIDs) > 0 {
		n := min(chunk, len(sysIDs))
		part := sysIDs[:n]
		sysIDs = sysIDs[n:]
		args = args[:0]
		for _, id := range part {
			args = append(args, id)
		}
		if err := func() error {
			rows, err := db.queryChunk(ctx, `SELECT sys_id, change_sys_id, state, sys_updated_on, sys_mod_count FROM approvals
				WHERE sys_id IN (`+strings.TrimSuffix(strings.Repeat("?,", len(part)), ",")+`)`, n == chunk, args)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var (
					a       ops.Approval
					updated string
				)
				if err := rows.Scan(&a.SysID, &a.ChangeSysID, &a.State, &updated, &a.SysModCount); err != nil {
					return err
				}
				if a.SysUpdatedOn, err = parseTime(updated); err != nil {
					return err
				}
				out[a.SysID] = a
			}
			return rows.Err()
		}(); err != nil {
			return nil, fmt.Errorf("store: approvals by id: %w", err)
		}
	}
	return out, nil
}

// queryChunk runs one chunk of an IN-list read: a full chunk's statement
// (always the same text) is prepared once for the pool, any other runs
// unprepared, so that the statement cache does not keep one per length.
func (db *DB) queryChunk(ctx context.Context, query string, full bool, args []any) (*sql.Rows, error) {
	if !full {
		return db.sql.QueryContext(ctx, query, args...)
	}
	st, err := db.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}
