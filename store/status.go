package store

import (
	"context"
	"fmt"
	"strconv"

	"github.com/daytwo/daytwo/ops"
)

// Status summarises the store for `daytwo status` (the read model is
// declared in ops, which the commands read through).
type Status = ops.StoreStatus

// Status counts what the store holds.
func (db *DB) Status(ctx context.Context) (Status, error) {
	st := Status{Path: db.path, SchemaVersion: SchemaVersion(), Updates: map[string]int{}, LastSync: map[string]string{}}
	counts := []struct {
		dst *int
		q   string
	}{
		{&st.Environments, `SELECT COUNT(*) FROM environments`},
		{&st.Changes, `SELECT COUNT(*) FROM changes`},
		{&st.ActiveChanges, `SELECT COUNT(*) FROM changes WHERE active = 1`},
		{&st.OutboxPending, `SELECT COUNT(*) FROM outbox WHERE state = 'pending'`},
		{&st.OutboxFailed, `SELECT COUNT(*) FROM outbox WHERE state = 'failed'`},
		{&st.AuditEvents, `SELECT COUNT(*) FROM audit_events`},
	}
	for _, c := range counts {
		if err := db.sql.QueryRowContext(ctx, c.q).Scan(c.dst); err != nil {
			return st, fmt.Errorf("store: status: %w", err)
		}
	}
	if err := db.collect(ctx, `SELECT state, COUNT(*) FROM updates GROUP BY state`, func(k string, v string) {
		n, _ := strconv.Atoi(v)
		st.Updates[k] = n
	}); err != nil {
		return st, err
	}
	if err := db.collect(ctx, `SELECT table_name, synced_at FROM sync_watermarks`, func(k, v string) { st.LastSync[k] = v }); err != nil {
		return st, err
	}
	var err error
	st.Daemons, err = db.Daemons(ctx)
	return st, err
}

// collect runs a two-column query and hands each row to fn as strings.
func (db *DB) collect(ctx context.Context, q string, fn func(k, v string)) error {
	rows, err := db.sql.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		fn(k, v)
	}
	return rows.Err()
}

// ChangeCounts counts active mirrored changes by state label, and outbox
// items by state, for metrics.
func (db *DB) ChangeCounts(ctx context.Context) (changes map[string]int, outbox map[string]int, err error) {
	changes, outbox = map[string]int{}, map[string]int{}
	rows, err := db.sql.QueryContext(ctx, `SELECT state, COUNT(*) FROM changes WHERE active = 1 GROUP BY state`)
	if err != nil {
		return nil, nil, fmt.Errorf("store: change counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var state, n int
		if err := rows.Scan(&state, &n); err != nil {
			return nil, nil, err
		}
		changes[ops.ChangeState(state).String()] = n
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	err = db.collect(ctx, `SELECT state, COUNT(*) FROM outbox WHERE state <> 'delivered' GROUP BY state`, func(k, v string) {
		n, _ := strconv.Atoi(v)
		outbox[k] = n
	})
	return changes, outbox, err
}
