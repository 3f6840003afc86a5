package pg

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// A lease row is kept once an environment has been leased: releasing it
// clears the holder and keeps the epoch, so that every later holder's epoch
// is newer than any earlier one's (fencing needs a number that only grows).

// fenceClause is true when the lease of (environment, holder, epoch) is
// current. Used inside a statement's WHERE so that the check and the write
// are one atomic step. FOR SHARE makes a write wait for a concurrent
// takeover of the lease to commit, and then see the new epoch.
const fenceClause = `EXISTS (SELECT 1 FROM leases WHERE environment = ? AND holder = ? AND holder != '' AND epoch = ? FOR SHARE)`

func fenceArgs(f ops.Fence) []any { return []any{f.Environment, f.Holder, f.Epoch} }

func errLeaseLost(f ops.Fence) error {
	return fmt.Errorf("store: lease of %s epoch %d is no longer held by %s: %w", f.Environment, f.Epoch, f.Holder, ops.ErrLeaseLost)
}

// AcquireLease takes an environment's lease inside tx: when it is free,
// expired, or held by req.DeadHolder. A new holder gets a new epoch. It
// fails with ErrConflict naming the holder otherwise.
func (tx *Tx) AcquireLease(ctx context.Context, req ops.LeaseRequest) (ops.Lease, error) {
	cur, err := tx.lease(ctx, req.Environment)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return ops.Lease{}, err
	}
	exists := err == nil
	if exists && cur.Holder != "" && cur.ExpiresAt.After(tx.now) && cur.Holder != req.DeadHolder {
		return ops.Lease{}, fmt.Errorf("store: environment %s is leased by %s (epoch %d, run %s) until %s: %w", req.Environment,
			cur.Holder, cur.Epoch, cur.RunID, cur.ExpiresAt.Format(time.RFC3339), ErrConflict)
	}
	l := ops.Lease{
		Environment: req.Environment, Holder: req.Holder, RunID: req.RunID, Epoch: cur.Epoch + 1,
		AcquiredAt: tx.now, ExpiresAt: tx.now.Add(req.TTL),
	}
	_, err = tx.tx.ExecContext(ctx, `INSERT INTO leases (environment, holder, run_id, acquired_at, expires_at, epoch) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (environment) DO UPDATE SET holder = excluded.holder, run_id = excluded.run_id,
			acquired_at = excluded.acquired_at, expires_at = excluded.expires_at, epoch = excluded.epoch`,
		l.Environment, l.Holder, l.RunID, formatTime(l.AcquiredAt), formatTime(l.ExpiresAt), l.Epoch)
	if err != nil {
		return ops.Lease{}, fmt.Errorf("store: lease %s: %w", req.Environment, mapErr(err))
	}
	return l, nil
}

// CheckFence fails with ErrLeaseLost unless f is the current lease.
func (tx *Tx) CheckFence(ctx context.Context, f ops.Fence) error {
	var ok bool
	if err := tx.tx.QueryRowContext(ctx, `SELECT `+fenceClause, fenceArgs(f)...).Scan(&ok); err != nil {
		return fmt.Errorf("store: check lease of %s: %w", f.Environment, mapErr(err))
	}
	if !ok {
		return errLeaseLost(f)
	}
	return nil
}

// RenewLease extends a lease still held under f's epoch; it never takes a
// lease back that someone else took or that was released.
func (db *DB) RenewLease(ctx context.Context, f ops.Fence, ttl time.Duration) error {
	now := db.clock().UTC()
	res, err := db.quiet.ExecContext(ctx, `UPDATE leases SET expires_at = ? WHERE environment = ? AND holder = ? AND holder != '' AND epoch = ?`,
		formatTime(now.Add(ttl)), f.Environment, f.Holder, f.Epoch)
	if err != nil {
		return fmt.Errorf("store: renew lease %s: %w", f.Environment, mapErr(err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return errLeaseLost(f)
	}
	return nil
}

// ReleaseLease gives the lease back if f still holds it, keeping its epoch.
func (db *DB) ReleaseLease(ctx context.Context, f ops.Fence) error {
	_, err := db.sql.ExecContext(ctx, `UPDATE leases SET holder = '', run_id = '', expires_at = ? WHERE environment = ? AND holder = ? AND epoch = ?`,
		formatTime(db.clock()), f.Environment, f.Holder, f.Epoch)
	if err != nil {
		return fmt.Errorf("store: release lease %s: %w", f.Environment, err)
	}
	return nil
}

// Leases returns every held, unexpired lease.
func (db *DB) Leases(ctx context.Context) ([]ops.Lease, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT environment, holder, run_id, acquired_at, expires_at, epoch FROM leases
		WHERE holder != '' AND expires_at > ? ORDER BY environment`, formatTime(db.clock()))
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
	rows, err := tx.tx.QueryContext(ctx, `SELECT environment, holder, run_id, acquired_at, expires_at, epoch FROM leases WHERE environment = ?`, env)
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
	if err := rows.Scan(&l.Environment, &l.Holder, &l.RunID, &acq, &exp, &l.Epoch); err != nil {
		return l, fmt.Errorf("store: scan lease: %w", err)
	}
	var err error
	if l.AcquiredAt, err = parseTime(acq); err != nil {
		return l, err
	}
	l.ExpiresAt, err = parseTime(exp)
	return l, err
}
