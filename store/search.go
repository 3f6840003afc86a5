package store

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"

	"github.com/daytwo/daytwo/ops"
)

// searchIndex is the console's search over the change mirror, in memory:
// each mirrored change's sys_id, active flag and search_text, in the
// list's order (sys_updated_on, sys_id, newest first), packed in one byte
// arena. A search is a strings.Contains loop over it (a few ms for 100k
// changes) instead of a scan of changes_find in SQLite (~250–400 ns an
// entry, once for the count and once for the window).
//
// It is reloaded when changes_generation moves: every write that changes
// mirrored rows bumps it in its own transaction (bumpGeneration), from
// this process or another (the daemon). The generation is read before the
// reload, so a write racing the reload makes the next search reload again;
// a search never answers from rows older than the last write it could see.
type searchIndex struct {
	mu         sync.Mutex
	generation int64
	valid      bool
	arena      []byte
	rows       []searchRow
}

// searchRow is one change, as offsets into the arena (one allocation for
// the whole index instead of two strings per change).
type searchRow struct {
	at, idEnd, end int32 // sys_id = arena[at:idEnd], search_text = arena[idEnd:end]
	active         bool
}

// searchRows returns the index, reloading it if the mirror changed. The
// caller holds si.mu.
func (db *DB) searchRows(ctx context.Context) (*searchIndex, error) {
	si := &db.search
	var gen int64
	if err := db.sql.QueryRowContext(ctx, `SELECT COALESCE((SELECT n FROM changes_generation WHERE id = 1), 0)`).Scan(&gen); err != nil {
		return nil, err
	}
	if si.valid && gen == si.generation {
		return si, nil
	}
	si.valid = false
	rows, err := db.sql.QueryContext(ctx, `SELECT sys_id, active, search_text FROM changes INDEXED BY changes_find
		ORDER BY sys_updated_on DESC, sys_id DESC`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	arena, out := si.arena[:0], si.rows[:0]
	var id, text sql.RawBytes
	for rows.Next() {
		var r searchRow
		if err := rows.Scan(&id, &r.active, &text); err != nil {
			return nil, err
		}
		r.at = int32(len(arena))
		arena = append(arena, id...)
		r.idEnd = int32(len(arena))
		arena = append(arena, text...)
		r.end = int32(len(arena))
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	si.arena, si.rows, si.generation, si.valid = arena, out, gen, true
	return si, nil
}

// bumpGeneration marks the mirrored rows changed, inside tx.
func (tx *Tx) bumpGeneration(ctx context.Context) error {
	if _, err := tx.tx.ExecContext(ctx, `INSERT INTO changes_generation (id, n) VALUES (1, 1)
		ON CONFLICT (id) DO UPDATE SET n = changes_generation.n + 1`); err != nil {
		return fmt.Errorf("store: changes generation: %w", mapErr(err))
	}
	return nil
}

// searchable reports whether f is a search the index answers: a search
// without the separator and without a correlation prefix (the console's).
func searchable(f ops.ChangeFilter) bool {
	return f.Search != "" && f.CorrelationPrefix == "" && !strings.ContainsRune(f.Search, searchSep)
}

// searchWindow returns how many changes match f and the sys_ids of the
// window f.Offset, f.Limit (Limit ≤ 0: none) in list order.
func (db *DB) searchWindow(ctx context.Context, f ops.ChangeFilter) (int, []string, error) {
	db.search.mu.Lock()
	defer db.search.mu.Unlock()
	si, err := db.searchRows(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("store: search changes: %w", err)
	}
	q := []byte(asciiLower(f.Search))
	n := 0
	var ids []string
	for i := range si.rows {
		r := &si.rows[i]
		if (f.ActiveOnly && !r.active) || !bytes.Contains(si.arena[r.idEnd:r.end], q) {
			continue
		}
		if n >= f.Offset && len(ids) < f.Limit {
			ids = append(ids, string(si.arena[r.at:r.idEnd]))
		}
		n++
		if i%4096 == 0 && ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
	}
	return n, ids, nil
}

// searchChanges is ListChanges for a searchable filter: the window's ids
// from the index, their rows from the database, in the index's order. A
// change deleted since the index was loaded is left out.
func (db *DB) searchChanges(ctx context.Context, f ops.ChangeFilter) ([]ops.Change, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = int(^uint(0) >> 1)
	}
	f.Limit = limit
	_, ids, err := db.searchWindow(ctx, f)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	byID, err := db.changesByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]ops.Change, 0, len(ids))
	for _, id := range ids {
		if c, ok := byID[id]; ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// changesByID reads full changes by sys_id, 500 a query.
func (db *DB) changesByID(ctx context.Context, sysIDs []string) (map[string]ops.Change, error) {
	out := make(map[string]ops.Change, len(sysIDs))
	for len(sysIDs) > 0 {
		n := min(500, len(sysIDs))
		part := sysIDs[:n]
		sysIDs = sysIDs[n:]
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		rows, err := db.sql.QueryContext(ctx, changeColumns+` WHERE sys_id IN (`+strings.TrimSuffix(strings.Repeat("?,", len(part)), ",")+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("store: list changes: %w", err)
		}
		for rows.Next() {
			c, err := scanChange(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			out[c.SysID] = c
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("store: list changes: %w", err)
		}
	}
	return out, nil
}
