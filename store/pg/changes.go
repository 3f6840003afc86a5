package pg

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store"
)

// UpsertChanges writes a page of mirrored change requests in one
// transaction. Rows whose sys_mod_count and sys_updated_on are not newer than
// the stored copy are skipped, so replaying a page is free and idempotent.
func (db *DB) UpsertChanges(ctx context.Context, changes []ops.Change) (ops.UpsertStats, error) {
	var st ops.UpsertStats
	err := db.WithTx(ctx, func(tx *Tx) error {
		var err error
		st, err = tx.UpsertChanges(ctx, changes)
		return err
	})
	return st, err
}

// UpsertChanges is the in-transaction form of DB.UpsertChanges.
func (tx *Tx) UpsertChanges(ctx context.Context, changes []ops.Change) (ops.UpsertStats, error) {
	var st ops.UpsertStats
	if len(changes) == 0 {
		return st, nil
	}
	// Many rows per statement: a round trip per row was most of a
	// mirror's time on a server over the network (100k changes, 100k
	// round trips). A statement must not touch one sys_id twice, so a
	// page that repeats one (a change updated while the mirror paged)
	// goes row by row, in order, as before.
	seen := make(map[string]bool, len(changes))
	for _, c := range changes {
		if seen[c.SysID] {
			return tx.upsertChanges(ctx, changes, 1, st)
		}
		seen[c.SysID] = true
	}
	return tx.upsertChanges(ctx, changes, upsertChunk, st)
}

// upsertChunk rows per statement: 21 parameters each, well under
// PostgreSQL's 65,535.
const upsertChunk = 500

const upsertChangesHead = `INSERT INTO changes (sys_id, number, type, state, approval, risk,
			short_description, cmdb_ci, assignment_group, requested_by, requested_by_id, start_date, end_date, correlation_id,
			active, close_code, sys_updated_on, sys_mod_count, raw_json, mirrored_at, conflict_status)
		VALUES `

const upsertChangesTail = `
		ON CONFLICT (sys_id) DO UPDATE SET number = excluded.number, type = excluded.type, state = excluded.state,
			approval = excluded.approval, risk = excluded.risk, short_description = excluded.short_description,
			cmdb_ci = excluded.cmdb_ci, assignment_group = excluded.assignment_group,
			requested_by = excluded.requested_by, requested_by_id = excluded.requested_by_id, start_date = excluded.start_date, end_date = excluded.end_date,
			correlation_id = excluded.correlation_id, active = excluded.active, close_code = excluded.close_code,
			sys_updated_on = excluded.sys_updated_on, sys_mod_count = excluded.sys_mod_count,
			raw_json = excluded.raw_json, mirrored_at = excluded.mirrored_at, conflict_status = excluded.conflict_status
		WHERE excluded.sys_mod_count > changes.sys_mod_count OR excluded.sys_updated_on > changes.sys_updated_on
			-- Same version, another shape (a write's answer vs the mirror's
			-- richer read): keep the newest copy; replays stay no-ops.
			OR (excluded.sys_mod_count = changes.sys_mod_count AND excluded.sys_updated_on = changes.sys_updated_on
				AND excluded.raw_json <> changes.raw_json)`

// upsertChanges writes changes chunk rows per statement; a row counts as
// written when the statement inserted or updated it.
func (tx *Tx) upsertChanges(ctx context.Context, changes []ops.Change, chunk int, st ops.UpsertStats) (ops.UpsertStats, error) {
	const row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	now := formatTime(tx.now)
	stmts := map[int]stmt{}
	defer func() {
		for _, s := range stmts {
			s.Close()
		}
	}()
	for len(changes) > 0 {
		part := changes[:min(chunk, len(changes))]
		changes = changes[len(part):]
		prep, ok := stmts[len(part)]
		if !ok {
			var b strings.Builder
			b.WriteString(upsertChangesHead)
			for i := range part {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(row)
			}
			b.WriteString(upsertChangesTail)
			var err error
			if prep, err = tx.tx.PrepareContext(ctx, b.String()); err != nil {
				return st, fmt.Errorf("store: upsert changes: %w", err)
			}
			stmts[len(part)] = prep
		}
		args := make([]any, 0, 21*len(part))
		for _, c := range part {
			raw := string(c.Raw)
			if raw == "" {
				raw = "{}"
			}
			args = append(args, c.SysID, c.Number, c.Type, int(c.State), c.Approval, c.Risk,
				c.ShortDescription, c.CmdbCI, c.AssignmentGroup, c.RequestedBy, c.RequestedByID, formatTime(c.StartDate),
				formatTime(c.EndDate), c.CorrelationID, c.Active, c.CloseCode, formatTime(c.SysUpdatedOn),
				c.SysModCount, raw, now, string(c.ConflictStatus))
		}
		res, err := prep.ExecContext(ctx, args...)
		if err != nil {
			if len(part) == 1 {
				return st, fmt.Errorf("store: upsert change %s: %w", part[0].Number, mapErr(err))
			}
			return st, fmt.Errorf("store: upsert %d changes (%s…): %w", len(part), part[0].Number, mapErr(err))
		}
		n, _ := res.RowsAffected()
		st.Written += int(n)
		st.Unchanged += len(part) - int(n)
	}
	return st, nil
}

const changeColumns = `SELECT sys_id, number, type, state, approval, risk, short_description, cmdb_ci,
	assignment_group, requested_by, requested_by_id, start_date, end_date, correlation_id, active, close_code, sys_updated_on,
	sys_mod_count, raw_json, conflict_status FROM changes`

// ListChanges returns mirrored changes, most recently updated first.
func (db *DB) ListChanges(ctx context.Context, f ops.ChangeFilter) ([]ops.Change, error) {
	where, args := changeWhere(f)
	q := changeColumns + where + " ORDER BY sys_updated_on DESC, sys_id DESC"
	if f.Limit > 0 || f.Offset > 0 {
		var limit any // NULL: no limit
		if f.Limit > 0 {
			limit = f.Limit
		}
		q += " LIMIT ? OFFSET ?"
		args = append(args, limit, f.Offset)
	}
	rows, err := db.sql.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list changes: %w", err)
	}
	defer rows.Close()
	var out []ops.Change
	for rows.Next() {
		c, err := scanChange(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// CountChanges counts the mirrored changes f matches.
func (db *DB) CountChanges(ctx context.Context, f ops.ChangeFilter) (int, error) {
	where, args := changeWhere(f)
	var n int
	if err := db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM changes`+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count changes: %w", err)
	}
	return n, nil
}

func changeWhere(f ops.ChangeFilter) (string, []any) {
	var (
		where []string
		args  []any
	)
	if f.ActiveOnly {
		where = append(where, "active = 1")
	}
	if f.CorrelationPrefix != "" {
		where = append(where, `correlation_id LIKE ? ESCAPE '\'`)
		args = append(args, likePrefix(f.CorrelationPrefix))
	}
	if f.Search != "" {
		like := "%" + strings.NewReplacer(`\`, `\\`, "%", "\\%", "_", "\\_").Replace(strings.ToLower(f.Search)) + "%"
		if strings.ContainsRune(f.Search, '\x1f') {
			// the separator of the joined text: search field by field
			where = append(where, `(lower(number) LIKE ? ESCAPE '\' OR lower(short_description) LIKE ? ESCAPE '\' OR lower(cmdb_ci) LIKE ? ESCAPE '\')`)
			args = append(args, like, like, like)
		} else {
			// One LIKE over the joined text, which changes_find_trgm (a
			// pg_trgm GIN index, migration 0009_perf2) answers when the
			// extension is there; keep the expression equal to the index's.
			where = append(where, `lower(number || chr(31) || short_description || chr(31) || cmdb_ci) LIKE ? ESCAPE '\'`)
			args = append(args, like)
		}
	}
	if len(where) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(where, " AND "), args
}

// likePrefix is a LIKE pattern matching strings that start with p.
func likePrefix(p string) string {
	return strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(p) + "%"
}

// GetChange returns one mirrored change by number (CHG…) or sys_id.
func (db *DB) GetChange(ctx context.Context, numberOrSysID string) (ops.Change, error) {
	rows, err := db.sql.QueryContext(ctx, changeColumns+` WHERE number = ? OR sys_id = ? LIMIT 1`, numberOrSysID, numberOrSysID)
	if err != nil {
		return ops.Change{}, fmt.Errorf("store: get change %s: %w", numberOrSysID, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return ops.Change{}, err
		}
		return ops.Change{}, fmt.Errorf("store: change %s: %w", numberOrSysID, ErrNotFound)
	}
	return scanChange(rows)
}

func scanChange(rows *sql.Rows) (ops.Change, error) {
	var (
		c                   ops.Change
		state               int
		start, end, updated string
		raw, conflictStatus string
	)
	if err := rows.Scan(&c.SysID, &c.Number, &c.Type, &state, &c.Approval, &c.Risk, &c.ShortDescription,
		&c.CmdbCI, &c.AssignmentGroup, &c.RequestedBy, &c.RequestedByID, &start, &end, &c.CorrelationID, &c.Active, &c.CloseCode,
		&updated, &c.SysModCount, &raw, &conflictStatus); err != nil {
		return c, fmt.Errorf("store: scan change: %w", err)
	}
	c.State = ops.ChangeState(state)
	c.ConflictStatus = ops.ConflictStatus(conflictStatus)
	c.Raw = []byte(raw)
	var err error
	if c.StartDate, err = parseTime(start); err != nil {
		return c, err
	}
	if c.EndDate, err = parseTime(end); err != nil {
		return c, err
	}
	c.SysUpdatedOn, err = parseTime(updated)
	return c, err
}

// GetWatermark returns the sync cursor of a mirrored table ("" if none).
func (db *DB) GetWatermark(ctx context.Context, table string) (ops.Watermark, error) {
	var (
		w  ops.Watermark
		ts string
	)
	err := db.sql.QueryRowContext(ctx, `SELECT updated_on, sys_id FROM sync_watermarks WHERE table_name = ?`, table).Scan(&ts, &w.SysID)
	if err == sql.ErrNoRows {
		return ops.Watermark{}, nil
	}
	if err != nil {
		return w, fmt.Errorf("store: watermark of %s: %w", table, err)
	}
	w.UpdatedOn, err = parseTime(ts)
	return w, err
}

// SetWatermark moves a table's sync cursor inside tx, so that it commits
// with the page it covers.
func (tx *Tx) SetWatermark(ctx context.Context, table string, w ops.Watermark) error {
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO sync_watermarks (table_name, updated_on, sys_id, synced_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (table_name) DO UPDATE SET updated_on = excluded.updated_on, sys_id = excluded.sys_id, synced_at = excluded.synced_at`,
		table, formatTime(w.UpdatedOn), w.SysID, formatTime(tx.now))
	if err != nil {
		return fmt.Errorf("store: set watermark of %s: %w", table, mapErr(err))
	}
	return nil
}

// DeleteChanges removes mirrored changes (deleted in ServiceNow) inside tx,
// with their approvals.
func (tx *Tx) DeleteChanges(ctx context.Context, sysIDs []string) (int, error) {
	n := 0
	for _, id := range sysIDs {
		res, err := tx.tx.ExecContext(ctx, `DELETE FROM changes WHERE sys_id = ?`, id)
		if err != nil {
			return n, fmt.Errorf("store: delete change %s: %w", id, mapErr(err))
		}
		if k, _ := res.RowsAffected(); k > 0 {
			n++
		}
		if _, err := tx.tx.ExecContext(ctx, `DELETE FROM approvals WHERE change_sys_id = ?`, id); err != nil {
			return n, fmt.Errorf("store: delete approvals of %s: %w", id, mapErr(err))
		}
	}
	return n, nil
}

// WaitingChanges implements ops.ChangeMirror with the SQLite store's
// query (store.WaitingChangesQuery).
func (db *DB) WaitingChanges(ctx context.Context, f ops.WaitingFilter) ([]ops.WaitingChange, error) {
	q, args := store.WaitingChangesQuery(f)
	if q == "" {
		return nil, nil
	}
	rows, err := db.sql.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: waiting changes: %w", err)
	}
	return store.ScanWaitingChanges(rows)
}
