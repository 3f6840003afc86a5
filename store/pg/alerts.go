package pg

import (
	"context"
	"fmt"

	"github.com/daytwo/daytwo/ops"
)

// OpenPolicyAlert records that policy fails for env; opened reports
// whether this is a new finding (it was not open before).
func (db *DB) OpenPolicyAlert(ctx context.Context, env, policy, action, message string) (opened bool, err error) {
	err = db.WithTx(ctx, func(tx *Tx) error {
		var resolved string
		e := tx.tx.QueryRowContext(ctx, `SELECT resolved_at FROM policy_alerts WHERE environment = ? AND policy = ?`, env, policy).Scan(&resolved)
		opened = e != nil || resolved != ""
		now := formatTime(tx.now)
		_, err := tx.tx.ExecContext(ctx, `INSERT INTO policy_alerts (environment, policy, action, message, first_seen, last_seen, resolved_at)
			VALUES (?, ?, ?, ?, ?, ?, '')
			ON CONFLICT (environment, policy) DO UPDATE SET action = excluded.action, message = excluded.message,
				last_seen = excluded.last_seen, resolved_at = '',
				first_seen = CASE WHEN policy_alerts.resolved_at = '' THEN policy_alerts.first_seen ELSE excluded.first_seen END`,
			env, policy, action, message, now, now)
		if err != nil {
			return fmt.Errorf("store: open policy alert %s/%s: %w", env, policy, mapErr(err))
		}
		return nil
	})
	return opened, err
}

// ResolvePolicyAlert closes an open finding; resolved reports whether one
// was open.
func (db *DB) ResolvePolicyAlert(ctx context.Context, env, policy string) (resolved bool, err error) {
	res, err := db.sql.ExecContext(ctx, `UPDATE policy_alerts SET resolved_at = ? WHERE environment = ? AND policy = ? AND resolved_at = ''`,
		formatTime(db.clock()), env, policy)
	if err != nil {
		return false, fmt.Errorf("store: resolve policy alert %s/%s: %w", env, policy, mapErr(err))
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// OpenPolicyAlerts lists open findings.
func (db *DB) OpenPolicyAlerts(ctx context.Context) ([]ops.PolicyAlert, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT environment, policy, action, message, first_seen FROM policy_alerts
		WHERE resolved_at = '' ORDER BY environment, policy`)
	if err != nil {
		return nil, fmt.Errorf("store: policy alerts: %w", err)
	}
	defer rows.Close()
	var out []ops.PolicyAlert
	for rows.Next() {
		var (
			a  ops.PolicyAlert
			fs string
		)
		if err := rows.Scan(&a.Environment, &a.Policy, &a.Action, &a.Message, &fs); err != nil {
			return nil, err
		}
		if a.FirstSeen, err = parseTime(fs); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
