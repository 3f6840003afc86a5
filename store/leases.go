package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// AcquireLease claims env for holder until now+ttl. It succeeds when the
// environment is free, its lease expired, or holder already holds it (a
// renewal); otherwise it fails with ErrConflict naming the holder.
func (db *DB) AcquireLease(ctx context.Context, env, holder, runID string, ttl time.Duration) (ops.Lease, error) {
	var l ops.Lease
	err := db.WithTx(ctx, func(tx *Tx) error {
		cur, err := tx.lease(ctx, env)
		switch {
		case err == nil && cur.Holder != holder && cur.ExpiresAt.After(tx.now):
			return fmt.Errorf("store: environment %s is leased by %s until %s: %w", env, cur.Holder,
				cur.ExpiresAt.Format(time.RFC3339), ErrConflict)
		case err != nil && err != sql.ErrNoRows:
			return err
		}
		l = ops.Lease{Environment: env, Holder: holder, RunID: runID, AcquiredAt: tx.now, ExpiresAt: tx.now.Add(ttl)}
		if err == nil && cur.Holder == holder {
			l.AcquiredAt = cur.AcquiredAt
		}
		_, err = tx.tx.ExecContext(ctx, `INSERT INTO leases (environment, holder, run_id, acquired_at, expires_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (environment) DO UPDATE SET holder = excluded.holder, run_id = excluded.run_id,
				acquired_at = excluded.acquired_at, expires_at = excluded.expires_at`,
			env, holder, runID, formatTime(l.AcquiredAt), formatTime(l.ExpiresAt))
		if err != nil {
			return fmt.Errorf("store: lease %s: %w", env, mapErr(err))
		}
		return nil
	})
	return l, err
}

// ReleaseLease gives env back if holder holds it.
func (db *DB) ReleaseLease(ctx context.Context, env, holder string) error {
	_, err := db.sql.ExecContext(ctx, `DELETE FROM leases WHERE environment = ? AND holder = ?`, env, holder)
	if err != nil {
		return fmt.Errorf("store: release lease %s: %w", env, err)
	}
	return nil
}

// Leases returns every unexpired lease.
func (db *DB) Leases(ctx context.Context) ([]ops.Lease, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT environment, holder, run_id, acquired_at, expires_at FROM leases
		WHERE expires_at > ? ORDER BY environment`, formatTime(db.clock()))
	if err != nil {
		return nil, fmt.Errorf("store: leases: %w", err)
	}
	defer rows.Close()
	var out []ops.Lease
	for rows.Next() {
		l, err := scanLease(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

func (tx *Tx) lease(ctx context.Context, env string) (ops.Lease, error) {
	rows, err := tx.tx.QueryContext(ctx, `SELECT environment, holder, run_id, acquired_at, expires_at FROM leases WHERE environment = ?`, env)
	if err != nil {
		return ops.Lease{}, fmt.Errorf("store: lease %s: %w", env, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return ops.Lease{}, err
		}
		return ops.Lease{}, sql.ErrNoRows
	}
	return scanLease(rows)
}

func scanLease(rows *sql.Rows) (ops.Lease, error) {
	var (
		l        ops.Lease
		acq, exp string
	)
	if err := rows.Scan(&l.Environment, &l.Holder, &l.RunID, &acq, &exp); err != nil {
		return l, fmt.Errorf("store: scan lease: %w", err)
	}
	var err error
	if l.AcquiredAt, err = parseTime(acq); err != nil {
		return l, err
	}
	l.ExpiresAt, err = parseTime(exp)
	return l, err
}

// StealLease takes env's lease from a holder known to be dead (its process
// is gone), without waiting for the lease to expire. It fails with
// ErrConflict when someone else holds it by now.
func (db *DB) StealLease(ctx context.Context, env, deadHolder, holder, runID string, ttl time.Duration) (ops.Lease, error) {
	now := db.clock().UTC()
	l := ops.Lease{Environment: env, Holder: holder, RunID: runID, AcquiredAt: now, ExpiresAt: now.Add(ttl)}
	res, err := db.sql.ExecContext(ctx, `UPDATE leases SET holder = ?, run_id = ?, acquired_at = ?, expires_at = ?
		WHERE environment = ? AND holder = ?`, holder, runID, formatTime(now), formatTime(l.ExpiresAt), env, deadHolder)
	if err != nil {
		return l, fmt.Errorf("store: take over lease %s: %w", env, mapErr(err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return l, fmt.Errorf("store: lease of %s is no longer held by %s: %w", env, deadHolder, ErrConflict)
	}
	return l, nil
}
