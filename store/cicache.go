package store

import (
	"context"
	"fmt"

	"github.com/daytwo/daytwo/ops"
)

var _ ops.CICache = (*DB)(nil)

// CachedCIs returns the cached sys_ids of configured CIs, by name.
func (db *DB) CachedCIs(ctx context.Context) (map[string]ops.CachedCI, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT name, sys_id, resolved_at FROM ci_cache`)
	if err != nil {
		return nil, fmt.Errorf("store: CI cache: %w", err)
	}
	defer rows.Close()
	out := map[string]ops.CachedCI{}
	for rows.Next() {
		var (
			name, at string
			c        ops.CachedCI
		)
		if err := rows.Scan(&name, &c.SysID, &at); err != nil {
			return nil, fmt.Errorf("store: CI cache: %w", err)
		}
		if c.ResolvedAt, err = parseTime(at); err != nil {
			return nil, err
		}
		out[name] = c
	}
	return out, rows.Err()
}

// CacheCIs replaces the CI cache with cis.
func (db *DB) CacheCIs(ctx context.Context, cis map[string]ops.CachedCI) error {
	return db.WithTx(ctx, func(tx *Tx) error {
		if _, err := tx.tx.ExecContext(ctx, `DELETE FROM ci_cache`); err != nil {
			return fmt.Errorf("store: CI cache: %w", mapErr(err))
		}
		for name, c := range cis {
			if _, err := tx.tx.ExecContext(ctx, `INSERT INTO ci_cache (name, sys_id, resolved_at) VALUES (?, ?, ?)`,
				name, c.SysID, formatTime(c.ResolvedAt)); err != nil {
				return fmt.Errorf("store: CI cache: %w", mapErr(err))
			}
		}
		return nil
	})
}
