package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"

	"github.com/daytwo/daytwo/ops"
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

// UpsertChanges is the in-transaction form of DB.UpsertChanges. Rows go
// in multi-row statements of upsertBatch rows (one statement per batch,
// not per row: the per-statement cost of database/sql and the VDBE was
// most of a page's store time); rows that change nothing are not counted
// by SQLite, so the statement's RowsAffected is the batch's written rows.
func (tx *Tx) UpsertChanges(ctx context.Context, changes []ops.Change) (ops.UpsertStats, error) {
	var st ops.UpsertStats
	now := formatTime(tx.now)
	args := make([]any, 0, upsertBatch*upsertColumns)
	var full *sql.Stmt
	var minUpdated *string
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	for len(changes) > 0 {
		batch := changes[:min(len(changes), upsertBatch)]
		changes = changes[len(batch):]
		args = args[:0]
		for _, c := range batch {
			upd := formatTime(c.SysUpdatedOn)
			if minUpdated == nil || upd < *minUpdated {
				minUpdated = &upd
			}
			raw := string(c.Raw)
			if raw == "" {
				raw = "{}"
			}
			args = append(args, c.SysID, c.Number, c.Type, int(c.State), c.Approval, c.Risk,
				c.ShortDescription, c.CmdbCI, c.AssignmentGroup, c.RequestedBy, c.RequestedByID, formatTime(c.StartDate),
				formatTime(c.EndDate), c.CorrelationID, c.Active, c.CloseCode, upd,
				c.SysModCount, raw, now, string(c.ConflictStatus), searchText(c))
		}
		var (
			res sql.Result
			err error
		)
		if len(batch) == upsertBatch {
			if full == nil {
				if full, err = tx.tx.PrepareContext(ctx, upsertChangesSQL(upsertBatch)); err != nil {
					return st, fmt.Errorf("store: upsert changes: %w", mapErr(err))
				}
			}
			res, err = full.ExecContext(ctx, args...)
		} else {
			res, err = tx.tx.ExecContext(ctx, upsertChangesSQL(len(batch)), args...)
		}
		if err != nil {
			return st, fmt.Errorf("store: upsert changes %s…%s: %w", batch[0].Number, batch[len(batch)-1].Number, mapErr(err))
		}
		n, _ := res.RowsAffected()
		st.Written += int(n)
		st.Unchanged += len(batch) - int(n)
	}
	if st.Written > 0 {
		tx.mirror.changes = true
		return st, tx.bumpGeneration(ctx, minUpdated, nil)
	}
	return st, nil
}

// upsertBatch rows per statement: 22 parameters each, well under SQLite's
// limit of 32766.
const (
	upsertBatch   = 50
	upsertColumns = 22
)

var upsertSQL sync.Map // rows → statement text

// upsertChangesSQL is the upsert of rows changes in one statement. A row
// whose sys_mod_count and sys_updated_on are not newer than the stored
// copy changes nothing (and is not counted), so replays are no-ops.
func upsertChangesSQL(rows int) string {
	if s, ok := upsertSQL.Load(rows); ok {
		return s.(string)
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO changes (sys_id, number, type, state, approval, risk,
			short_description, cmdb_ci, assignment_group, requested_by, requested_by_id, start_date, end_date, correlation_id,
			active, close_code, sys_updated_on, sys_mod_count, raw_json, mirrored_at, conflict_status, search_text)
		VALUES `)
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	}
	b.WriteString(`
		ON CONFLICT (sys_id) DO UPDATE SET number = excluded.number, type = excluded.type, state = excluded.state,
			approval = excluded.approval, risk = excluded.risk, short_description = excluded.short_description,
			cmdb_ci = excluded.cmdb_ci, assignment_group = excluded.assignment_group,
			requested_by = excluded.requested_by, requested_by_id = excluded.requested_by_id, start_date = excluded.start_date, end_date = excluded.end_date,
			correlation_id = excluded.correlation_id, active = excluded.active, close_code = excluded.close_code,
			sys_updated_on = excluded.sys_updated_on, sys_mod_count = excluded.sys_mod_count,
			raw_json = excluded.raw_json, mirrored_at = excluded.mirrored_at, conflict_status = excluded.conflict_status,
			search_text = excluded.search_text
		WHERE excluded.sys_mod_count > changes.sys_mod_count OR excluded.sys_updated_on > changes.sys_updated_on
			-- Same version, another shape (a write's answer vs the mirror's
			-- richer read): keep the newest copy; replays stay no-ops.
			OR (excluded.sys_mod_count = changes.sys_mod_count AND excluded.sys_updated_on = changes.sys_updated_on
				AND excluded.raw_json <> changes.raw_json)`)
	s, _ := upsertSQL.LoadOrStore(rows, b.String())
	return s.(string)
}

const changeColumns = `SELECT sys_id, number, type, state, approval, risk, short_description, cmdb_ci,
	assignment_group, requested_by, requested_by_id, start_date, end_date, correlation_id, active, close_code, sys_updated_on,
	sys_mod_count, raw_json, conflict_status FROM changes`

// ListChanges returns mirrored changes, most recently updated first.
func (db *DB) ListChanges(ctx context.Context, f ops.ChangeFilter) ([]ops.Change, error) {
	if searchable(f) {
		return db.searchChanges(ctx, f)
	}
	where, args := changeWhere(f)
	q := changeColumns + where + " ORDER BY sys_updated_on DESC, sys_id DESC"
	if f.Limit > 0 || f.Offset > 0 {
		limit := f.Limit
		if limit <= 0 {
			limit = -1
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
	if searchable(f) {
		n, _, err := db.searchWindow(ctx, f)
		return n, err
	}
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
	if f.ActiveOnly && f.Search != "" {
		// "+": stay on changes_find (the search's covering index), not
		// the partial changes_active, which would read every active row.
		where = append(where, "+active = 1")
	} else if f.ActiveOnly {
		where = append(where, "active = 1")
	}
	if f.CorrelationPrefix != "" {
		where = append(where, "correlation_id >= ? AND correlation_id < ?")
		args = append(args, f.CorrelationPrefix, f.CorrelationPrefix+"\xff")
	}
	if f.Search != "" && !strings.ContainsRune(f.Search, searchSep) {
		// search_text is lower(number, short description, CI joined by
		// U+001F), held in changes_find: one instr() per index entry, and
		// the scan never reads a row. SQLite's lower() folds ASCII letters
		// only, so the text searched for is folded the same way.
		where = append(where, `instr(search_text, ?) > 0`)
		args = append(args, asciiLower(f.Search))
	} else if f.Search != "" {
		// A search holding the separator cannot use search_text (it would
		// match across fields). LIKE folds ASCII case as lower() does.
		like := "%" + strings.NewReplacer("\\", "\\\\", "%", "\\%", "_", "\\_").Replace(asciiLower(f.Search)) + "%"
		where = append(where, `(number LIKE ? ESCAPE '\' OR short_description LIKE ? ESCAPE '\' OR cmdb_ci LIKE ? ESCAPE '\')`)
		args = append(args, like, like, like)
	}
	if len(where) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(where, " AND "), args
}

// searchSep separates the fields of changes.search_text (char(31) in
// migration 0009_perf2).
const searchSep = '\x1f'

// searchText is a change's changes.search_text: what the console's
// search looks in, folded as SQLite's lower() folds (migration
// 0009_perf2 computes the same for rows stored before it).
func searchText(c ops.Change) string {
	return asciiLower(c.Number + string(searchSep) + c.ShortDescription + string(searchSep) + c.CmdbCI)
}

// asciiLower folds ASCII letters only, as SQLite's lower() does.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// GetChange returns one mirrored change by number (CHG…) or sys_id.
func (db *DB) GetChange(ctx context.Context, numberOrSysID string) (ops.Change, error) {
	// Prepared once: a sync cycle reads the change of every open update
	// (1,000 open changes: 1,000 reads), and parsing this statement was
	// most of that work.
	st, err := db.prepared(ctx, changeColumns+` WHERE number = ? OR sys_id = ? LIMIT 1`)
	if err != nil {
		return ops.Change{}, fmt.Errorf("store: get change %s: %w", numberOrSysID, err)
	}
	rows, err := st.QueryContext(ctx, numberOrSysID, numberOrSysID)
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
	var gone []string
	approvalsGone := false
	for _, id := range sysIDs {
		res, err := tx.tx.ExecContext(ctx, `DELETE FROM changes WHERE sys_id = ?`, id)
		if err != nil {
			return len(gone), fmt.Errorf("store: delete change %s: %w", id, mapErr(err))
		}
		if k, _ := res.RowsAffected(); k > 0 {
			gone = append(gone, id)
		}
		res, err = tx.tx.ExecContext(ctx, `DELETE FROM approvals WHERE change_sys_id = ?`, id)
		if err != nil {
			return len(gone), fmt.Errorf("store: delete approvals of %s: %w", id, mapErr(err))
		}
		if k, _ := res.RowsAffected(); k > 0 {
			approvalsGone = true
		}
	}
	if len(gone) > 0 || approvalsGone {
		tx.mirror.changes = tx.mirror.changes || len(gone) > 0
		tx.mirror.deleted = tx.mirror.deleted || approvalsGone
		if err := tx.bumpGeneration(ctx, nil, gone); err != nil {
			return 0, err
		}
	}
	return len(gone), nil
}

// WaitingChanges returns the updates f selects, newest first (ListUpdates'
// order), each joined with what the reconcile reads of its change (sys_id,
// number, type, state, approval, active): one query for the reconcile of a
// sync cycle, instead of every waiting update read whole (config and plan
// decoded) and then its change.
func (db *DB) WaitingChanges(ctx context.Context, f ops.WaitingFilter) ([]ops.WaitingChange, error) {
	q, args := WaitingChangesQuery(f)
	if q == "" {
		return nil, nil
	}
	rows, err := db.queryChunk(ctx, q, true, args)
	if err != nil {
		return nil, fmt.Errorf("store: waiting changes: %w", err)
	}
	return ScanWaitingChanges(rows)
}

// WaitingChangesQuery is the reconcile's join for f, with `?` marks (the
// PostgreSQL store rebinds them), and its arguments; "" when f selects
// nothing.
func WaitingChangesQuery(f ops.WaitingFilter) (string, []any) {
	if len(f.States) == 0 {
		return "", nil
	}
	var args []any
	marks := func(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }
	for _, s := range f.States {
		args = append(args, string(s))
	}
	q := `SELECT u.id, u.state, c.sys_id, c.number, c.type, c.state, c.approval, c.active
	FROM updates u JOIN changes c ON c.sys_id = u.change_sys_id
	WHERE u.state IN (` + marks(len(f.States)) + `) AND u.change_sys_id <> ''`
	var or []string
	if len(f.ChangeStates) > 0 {
		or = append(or, `c.state IN (`+marks(len(f.ChangeStates))+`)`)
		for _, s := range f.ChangeStates {
			args = append(args, int(s))
		}
	}
	if len(f.Approvals) > 0 {
		or = append(or, `c.approval IN (`+marks(len(f.Approvals))+`)`)
		for _, a := range f.Approvals {
			args = append(args, string(a))
		}
	}
	if len(or) > 0 {
		q += ` AND (` + strings.Join(or, ` OR `) + `)`
	}
	return q + ` ORDER BY u.created_at DESC, u.id DESC`, args
}

// ScanWaitingChanges reads and closes rows of WaitingChangesQuery.
func ScanWaitingChanges(rows *sql.Rows) ([]ops.WaitingChange, error) {
	defer rows.Close()
	var out []ops.WaitingChange
	for rows.Next() {
		var (
			w     ops.WaitingChange
			state int
		)
		c := &w.Change
		if err := rows.Scan(&w.UpdateID, &w.State, &c.SysID, &c.Number, &c.Type, &state, &c.Approval, &c.Active); err != nil {
			return nil, fmt.Errorf("store: scan waiting change: %w", err)
		}
		c.State = ops.ChangeState(state)
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: waiting changes: %w", err)
	}
	return out, nil
}
