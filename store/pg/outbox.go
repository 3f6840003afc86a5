package pg

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// Enqueue stores an outbox item inside tx, due at once.
func (tx *Tx) Enqueue(ctx context.Context, it ops.OutboxItem) (int64, error) {
	if it.State == "" {
		it.State = ops.OutboxPending
	}
	due := it.NextAttempt
	if due.IsZero() {
		due = tx.now
	}
	var id int64
	err := tx.tx.QueryRowContext(ctx, `INSERT INTO outbox (ordering_key, kind, payload_json, state, attempts, next_attempt_at, created_at)
		VALUES (?, ?, ?, ?, 0, ?, ?) RETURNING id`, it.Key, string(it.Kind), string(it.Payload), string(it.State), formatTime(due), formatTime(tx.now)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("store: enqueue %s: %w", it.Kind, mapErr(err))
	}
	return id, nil
}

// DueOutbox returns items ready for delivery at now: for each ordering key,
// only its oldest undelivered item, and only if that item is pending and
// due. A failed item holds back everything queued after it on its key.
func (db *DB) DueOutbox(ctx context.Context, now time.Time, limit int) ([]ops.OutboxItem, error) {
	if limit <= 0 {
		limit = 100
	}
	return db.queryOutbox(ctx, outboxColumns+` WHERE id IN (
			SELECT MIN(id) FROM outbox WHERE state <> 'delivered' AND resolution = '' GROUP BY ordering_key)
		AND state = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?`, formatTime(now), limit)
}

// NextOutboxAttempt returns when the earliest pending item falls due (zero
// if none is pending).
func (db *DB) NextOutboxAttempt(ctx context.Context) (time.Time, error) {
	var s sql.NullString
	if err := db.sql.QueryRowContext(ctx, `SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'`).Scan(&s); err != nil {
		return time.Time{}, fmt.Errorf("store: next outbox attempt: %w", err)
	}
	return parseTime(s.String)
}

// ListOutbox returns outbox items, oldest first.
func (db *DB) ListOutbox(ctx context.Context, f ops.OutboxFilter) ([]ops.OutboxItem, error) {
	states := f.States
	if len(states) == 0 {
		states = []ops.OutboxState{ops.OutboxPending, ops.OutboxFailed}
	}
	q := outboxColumns + ` WHERE ` + outboxState + ` IN (`
	var args []any
	for i, s := range states {
		if i > 0 {
			q += ", "
		}
		q += "?"
		args = append(args, string(s))
	}
	q += ")"
	if f.Key != "" {
		q += ` AND ordering_key = ?`
		args = append(args, f.Key)
	}
	q += ` ORDER BY id`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	return db.queryOutbox(ctx, q, args...)
}

// GetOutbox returns one item.
func (db *DB) GetOutbox(ctx context.Context, id int64) (ops.OutboxItem, error) {
	items, err := db.queryOutbox(ctx, outboxColumns+` WHERE id = ?`, id)
	if err != nil {
		return ops.OutboxItem{}, err
	}
	if len(items) == 0 {
		return ops.OutboxItem{}, fmt.Errorf("store: outbox item %d: %w", id, ErrNotFound)
	}
	return items[0], nil
}

// ClaimOutbox makes claimer the only delivery pass that may send item id
// until ttl passes (or it records the outcome). It reports false when the
// item is no longer pending or another pass holds an unexpired claim. A
// row another pass is claiming right now is skipped (FOR UPDATE SKIP
// LOCKED), not waited for: that pass wins it.
func (db *DB) ClaimOutbox(ctx context.Context, id int64, claimer string, ttl time.Duration) (bool, error) {
	now := db.clock().UTC()
	res, err := db.sql.ExecContext(ctx, `UPDATE outbox SET claimed_by = ?, claimed_until = ?
		WHERE id = (SELECT id FROM outbox WHERE id = ? AND state = 'pending' AND (claimed_by = '' OR claimed_by = ? OR claimed_until < ?)
			FOR UPDATE SKIP LOCKED)`,
		claimer, formatTime(now.Add(ttl)), id, claimer, formatTime(now))
	if err != nil {
		return false, fmt.Errorf("store: claim outbox %d: %w", id, mapErr(err))
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ReleaseOutbox drops claimer's claim on an item it did not finish (the
// caller gave up, or its process died), so another pass may send it at
// once. The claim counts as an attempt whose outcome is unknown (the write
// may have landed before the pass stopped): the next pass sees attempts > 0
// and looks the write up before sending it again. Release and record are one
// statement, so no pass ever sees the item unclaimed and never tried.
func (db *DB) ReleaseOutbox(ctx context.Context, id int64, claimer string) error {
	_, err := db.sql.ExecContext(ctx, `UPDATE outbox SET claimed_by = '', claimed_until = '', attempts = attempts + 1, last_error = ?
		WHERE id = ? AND claimed_by = ? AND state = 'pending'`, releasedMayHaveLanded, id, claimer)
	if err != nil {
		return fmt.Errorf("store: release outbox %d: %w", id, mapErr(err))
	}
	return nil
}

// MarkDelivered records a successful delivery inside tx, with whatever the
// delivery produced (e.g. the new change's number).
func (tx *Tx) MarkDelivered(ctx context.Context, id int64, result any) error {
	b, err := json.Marshal(result)
	if err != nil {
		return err
	}
	res, err := tx.tx.ExecContext(ctx, `UPDATE outbox SET state = 'delivered', attempts = attempts + 1, result_json = ?,
		delivered_at = ?, last_error = '', claimed_by = '', claimed_until = '' WHERE id = ? AND state = 'pending'`, string(b), formatTime(tx.now), id)
	if err != nil {
		return fmt.Errorf("store: mark outbox %d delivered: %w", id, mapErr(err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("store: outbox item %d is no longer pending: %w", id, ErrConflict)
	}
	return nil
}

// MarkAttemptFailed records a failed delivery: the item stays pending until
// next (a retry), or becomes failed when permanent.
func (db *DB) MarkAttemptFailed(ctx context.Context, id int64, cause string, next time.Time, permanent bool) error {
	state := ops.OutboxPending
	if permanent {
		state = ops.OutboxFailed
	}
	_, err := db.sql.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, state = ?,
		claimed_by = '', claimed_until = '' WHERE id = ? AND state = 'pending'`, cause, formatTime(next), string(state), id)
	if err != nil {
		return fmt.Errorf("store: record outbox attempt %d: %w", id, mapErr(err))
	}
	return nil
}

// RetryOutbox makes failed items (all of them when id is 0) pending and due
// now, and pulls pending items' next attempt forward to now. It returns how
// many items it touched.
func (db *DB) RetryOutbox(ctx context.Context, id int64) (int, error) {
	q := `UPDATE outbox SET state = 'pending', next_attempt_at = ? WHERE state IN ('pending', 'failed') AND resolution = ''`
	args := []any{formatTime(db.clock())}
	if id != 0 {
		q += ` AND id = ?`
		args = append(args, id)
	}
	res, err := db.sql.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("store: retry outbox: %w", mapErr(err))
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// outboxState is an item's state as ops sees it: a closed item's
// resolution (discarded, superseded), else its delivery state.
// DiscardOutbox closes an undelivered item inside tx without sending it:
// it stops holding back its key and is never retried. A delivered item, one
// already closed, or one a delivery pass is sending now (an unexpired
// claim) is refused with ErrConflict.
func (tx *Tx) DiscardOutbox(ctx context.Context, id int64) (ops.OutboxItem, error) {
	// FOR UPDATE: a delivery pass claiming the row meanwhile either
	// finishes first (and its claim is seen) or skips it.
	items, err := queryOutboxOn(ctx, tx.tx, outboxColumns+` WHERE id = ? FOR UPDATE`, id)
	if err != nil {
		return ops.OutboxItem{}, err
	}
	if len(items) == 0 {
		return ops.OutboxItem{}, fmt.Errorf("store: outbox item %d: %w", id, ErrNotFound)
	}
	it := items[0]
	switch {
	case it.State == ops.OutboxDelivered:
		return it, fmt.Errorf("outbox item %d was delivered to ServiceNow %s: there is nothing to discard: %w", id, formatTime(it.DeliveredAt), ErrConflict)
	case it.State != ops.OutboxPending && it.State != ops.OutboxFailed:
		return it, fmt.Errorf("outbox item %d is already %s: %w", id, it.State, ErrConflict)
	case it.ClaimedBy != "" && it.ClaimedUntil.After(tx.now):
		return it, fmt.Errorf("outbox item %d is being sent by %s right now (claimed until %s): wait for the outcome: %w",
			id, it.ClaimedBy, formatTime(it.ClaimedUntil), ErrConflict)
	}
	res, err := tx.tx.ExecContext(ctx, `UPDATE outbox SET state = 'failed', resolution = 'discarded', claimed_by = '', claimed_until = ''
		WHERE id = ? AND state IN ('pending', 'failed') AND resolution = ''`, id)
	if err != nil {
		return it, fmt.Errorf("store: discard outbox %d: %w", id, mapErr(err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return it, fmt.Errorf("store: outbox item %d changed meanwhile: %w", id, ErrConflict)
	}
	it.State = ops.OutboxDiscarded
	return it, nil
}

// SupersedeFailed closes, inside tx, the failed items of kind on key queued
// before id (a later write replaces them): they stop holding back the key.
// It returns the ids it closed.
func (tx *Tx) SupersedeFailed(ctx context.Context, key string, kind ops.OutboxKind, id int64) ([]int64, error) {
	items, err := queryOutboxOn(ctx, tx.tx, outboxColumns+` WHERE ordering_key = ? AND kind = ? AND state = 'failed' AND resolution = '' AND id < ? ORDER BY id FOR UPDATE`,
		key, string(kind), id)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, it := range items {
		b, _ := json.Marshal(map[string]int64{"superseded_by": id})
		if _, err := tx.tx.ExecContext(ctx, `UPDATE outbox SET resolution = 'superseded', result_json = ? WHERE id = ? AND state = 'failed' AND resolution = ''`,
			string(b), it.ID); err != nil {
			return nil, fmt.Errorf("store: supersede outbox %d: %w", it.ID, mapErr(err))
		}
		ids = append(ids, it.ID)
	}
	return ids, nil
}

const outboxState = `(CASE WHEN resolution <> '' THEN resolution ELSE state END)`

const outboxColumns = `SELECT id, ordering_key, kind, payload_json, ` + outboxState + `, attempts, next_attempt_at, last_error,
	result_json, created_at, delivered_at, claimed_by, claimed_until FROM outbox`

func (db *DB) queryOutbox(ctx context.Context, q string, args ...any) ([]ops.OutboxItem, error) {
	return queryOutboxOn(ctx, db.sql, q, args...)
}

// outboxQuerier runs outbox reads on the DB or inside a transaction.
type outboxQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryOutboxOn(ctx context.Context, on outboxQuerier, q string, args ...any) ([]ops.OutboxItem, error) {
	rows, err := on.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: outbox: %w", err)
	}
	defer rows.Close()
	var out []ops.OutboxItem
	for rows.Next() {
		var (
			it                       ops.OutboxItem
			payload, result          string
			next, created, delivered string
			claimedUntil             string
		)
		if err := rows.Scan(&it.ID, &it.Key, &it.Kind, &payload, &it.State, &it.Attempts, &next, &it.LastError,
			&result, &created, &delivered, &it.ClaimedBy, &claimedUntil); err != nil {
			return nil, fmt.Errorf("store: scan outbox: %w", err)
		}
		it.Payload = json.RawMessage(payload)
		if result != "" {
			it.Result = json.RawMessage(result)
		}
		var err error
		if it.NextAttempt, err = parseTime(next); err != nil {
			return nil, err
		}
		if it.CreatedAt, err = parseTime(created); err != nil {
			return nil, err
		}
		if it.DeliveredAt, err = parseTime(delivered); err != nil {
			return nil, err
		}
		if it.ClaimedUntil, err = parseTime(claimedUntil); err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// releasedMayHaveLanded is the last error of an item whose delivery pass
// stopped mid-send.
const releasedMayHaveLanded = "the delivery pass stopped before ServiceNow answered; the write may have landed (looked up before it is sent again)"
