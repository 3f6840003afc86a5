package pg

import (
	"context"
	"fmt"
	"time"
)

// DriftSeen records that target reports observed while expected was
// recorded, and returns when this divergence was first seen (now, or the
// earlier first sighting of the same divergence).
func (db *DB) DriftSeen(ctx context.Context, env, target, expected, observed string) (time.Time, error) {
	var first time.Time
	err := db.WithTx(ctx, func(tx *Tx) error {
		now := formatTime(tx.now)
		_, err := tx.tx.ExecContext(ctx, `INSERT INTO drift (environment, target, expected, observed, first_seen, last_seen)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (environment, target) DO UPDATE SET last_seen = excluded.last_seen,
				first_seen = CASE WHEN drift.expected = excluded.expected AND drift.observed = excluded.observed
					THEN drift.first_seen ELSE excluded.first_seen END,
				expected = excluded.expected, observed = excluded.observed`, env, target, expected, observed, now, now)
		if err != nil {
			return fmt.Errorf("store: record drift of %s/%s: %w", env, target, mapErr(err))
		}
		var s string
		if err := tx.tx.QueryRowContext(ctx, `SELECT first_seen FROM drift WHERE environment = ? AND target = ?`, env, target).Scan(&s); err != nil {
			return err
		}
		first, err = parseTime(s)
		return err
	})
	return first, err
}

// DriftCleared forgets a target's divergence once it reports the recorded
// release again.
func (db *DB) DriftCleared(ctx context.Context, env, target string) error {
	if _, err := db.sql.ExecContext(ctx, `DELETE FROM drift WHERE environment = ? AND target = ?`, env, target); err != nil {
		return fmt.Errorf("store: clear drift of %s/%s: %w", env, target, err)
	}
	return nil
}

// DriftedTargets counts drifted targets per environment (last probe).
func (db *DB) DriftedTargets(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	rows, err := db.sql.QueryContext(ctx, `SELECT environment, COUNT(*) FROM drift GROUP BY environment`)
	if err != nil {
		return nil, fmt.Errorf("store: drift: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			env string
			n   int
		)
		if err := rows.Scan(&env, &n); err != nil {
			return nil, err
		}
		out[env] = n
	}
	return out, rows.Err()
}
