package store

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

func enqueue(t *testing.T, db *DB, key string, kind ops.OutboxKind) int64 {
	t.Helper()
	var id int64
	err := db.WithTx(context.Background(), func(tx *Tx) error {
		it, err := ops.NewOutboxItem(key, kind, map[string]string{"update": key})
		if err != nil {
			return err
		}
		id, err = tx.Enqueue(context.Background(), it)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestOutboxDeliversInOrderPerKey(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	now := db.clock()
	a1 := enqueue(t, db, "u-a", ops.OutboxCreateChange)
	a2 := enqueue(t, db, "u-a", ops.OutboxRequestApproval)
	b1 := enqueue(t, db, "u-b", ops.OutboxCreateChange)

	due, err := db.DueOutbox(ctx, now, 10)
	if err != nil || len(due) != 2 || due[0].ID != a1 || due[1].ID != b1 {
		t.Fatalf("due = %+v, %v; want the head of each key", due, err)
	}
	// a1 fails transiently: a2 must wait behind it, b1 is unaffected.
	if err := db.MarkAttemptFailed(ctx, a1, "503 unavailable", now.Add(time.Minute), false); err != nil {
		t.Fatal(err)
	}
	due, _ = db.DueOutbox(ctx, now, 10)
	if len(due) != 1 || due[0].ID != b1 {
		t.Fatalf("after a1 backs off, due = %+v", due)
	}
	if next, _ := db.NextOutboxAttempt(ctx); !next.Equal(now) {
		t.Fatalf("next attempt = %s", next)
	}
	due, _ = db.DueOutbox(ctx, now.Add(time.Minute), 10)
	if len(due) != 2 || due[0].ID != a1 || due[0].Attempts != 1 || due[0].LastError != "503 unavailable" {
		t.Fatalf("after backoff, due = %+v", due)
	}
	if err := db.WithTx(ctx, func(tx *Tx) error { return tx.MarkDelivered(ctx, a1, map[string]string{"number": "CHG0000001"}) }); err != nil {
		t.Fatal(err)
	}
	due, _ = db.DueOutbox(ctx, now.Add(time.Minute), 10)
	if len(due) != 2 || due[0].ID != a2 {
		t.Fatalf("after a1 delivered, due = %+v", due)
	}
	// Delivering twice is a conflict, never a double write.
	err = db.WithTx(ctx, func(tx *Tx) error { return tx.MarkDelivered(ctx, a1, nil) })
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("second delivery: err = %v", err)
	}
	// A permanent failure holds its key back until retried.
	if err := db.MarkAttemptFailed(ctx, a2, "403 business rule", now, true); err != nil {
		t.Fatal(err)
	}
	a3 := enqueue(t, db, "u-a", ops.OutboxWorkNote)
	due, _ = db.DueOutbox(ctx, now.Add(time.Hour), 10)
	if len(due) != 1 || due[0].ID != b1 {
		t.Fatalf("failed head must block its key: due = %+v", due)
	}
	list, _ := db.ListOutbox(ctx, ops.OutboxFilter{Key: "u-a"})
	if len(list) != 2 || list[0].State != ops.OutboxFailed || list[1].ID != a3 {
		t.Fatalf("list = %+v", list)
	}
	if n, err := db.RetryOutbox(ctx, a2); err != nil || n != 1 {
		t.Fatalf("retry = %d, %v", n, err)
	}
	due, _ = db.DueOutbox(ctx, now.Add(time.Hour), 10)
	if len(due) != 2 || due[0].ID != a2 {
		t.Fatalf("after retry, due = %+v", due)
	}
	got, err := db.GetOutbox(ctx, a1)
	if err != nil || got.State != ops.OutboxDelivered || string(got.Result) != `{"number":"CHG0000001"}` {
		t.Fatalf("delivered item = %+v, %v", got, err)
	}
}

func TestUpdateOptimisticState(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	if err := db.SyncEnvironments(ctx, []ops.Environment{{Name: "production"}}, "t"); err != nil {
		t.Fatal(err)
	}
	u := ops.Update{
		ID: "u1", Environment: "production", Version: "1.4.2", Config: map[string]string{"k": "v"},
		Plan: []byte(`{"batches":[]}`), PlanDigest: "d1", State: ops.UpdateProposed,
	}
	if err := db.WithTx(ctx, func(tx *Tx) error { return tx.InsertUpdate(ctx, u) }); err != nil {
		t.Fatal(err)
	}
	u.State, u.ChangeNumber = ops.UpdateAwaitingApproval, "CHG0000042"
	if err := db.WithTx(ctx, func(tx *Tx) error { return tx.SaveUpdate(ctx, u, ops.UpdateProposed) }); err != nil {
		t.Fatal(err)
	}
	// A second writer that still believes the update is proposed loses.
	err := db.WithTx(ctx, func(tx *Tx) error { return tx.SaveUpdate(ctx, u, ops.UpdateProposed) })
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("stale save: err = %v", err)
	}
	got, err := db.GetUpdate(ctx, "CHG0000042")
	if err != nil || got.ID != "u1" || got.State != ops.UpdateAwaitingApproval || got.Config["k"] != "v" {
		t.Fatalf("by change number: %+v, %v", got, err)
	}
	list, err := db.ListUpdates(ctx, ops.UpdateFilter{States: []ops.UpdateState{ops.UpdateAwaitingApproval}})
	if err != nil || len(list) != 1 {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if _, err := db.GetUpdate(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}

func TestOutboxClaims(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	id := enqueue(t, db, "u-a", ops.OutboxCreateChange)
	if ok, err := db.ClaimOutbox(ctx, id, "pass-1", time.Minute); err != nil || !ok {
		t.Fatalf("first claim: %v %v", ok, err)
	}
	if ok, _ := db.ClaimOutbox(ctx, id, "pass-2", time.Minute); ok {
		t.Fatal("a second pass claimed an item another pass is sending")
	}
	if err := db.ReleaseOutbox(ctx, id, "pass-1"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := db.ClaimOutbox(ctx, id, "pass-2", time.Minute); !ok {
		t.Fatal("a released item must be claimable")
	}
	if err := db.WithTx(ctx, func(tx *Tx) error { return tx.MarkDelivered(ctx, id, nil) }); err != nil {
		t.Fatal(err)
	}
	if ok, _ := db.ClaimOutbox(ctx, id, "pass-3", time.Minute); ok {
		t.Fatal("a delivered item must not be claimable")
	}
}

func TestOutboxDiscardAndSupersede(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	now := db.clock()
	d1 := enqueue(t, db, "CHG1", ops.OutboxDecide)
	d2 := enqueue(t, db, "CHG1", ops.OutboxDecide)
	if err := db.MarkAttemptFailed(ctx, d1, "no pending approval", now, true); err != nil {
		t.Fatal(err)
	}
	if due, _ := db.DueOutbox(ctx, now, 10); len(due) != 0 {
		t.Fatalf("a refused head must hold its key back: due = %+v", due)
	}
	var closed []int64
	if err := db.WithTx(ctx, func(tx *Tx) error {
		var err error
		closed, err = tx.SupersedeFailed(ctx, "CHG1", ops.OutboxDecide, d2)
		return err
	}); err != nil || len(closed) != 1 || closed[0] != d1 {
		t.Fatalf("supersede = %v, %v; want [%d]", closed, err, d1)
	}
	if due, _ := db.DueOutbox(ctx, now, 10); len(due) != 1 || due[0].ID != d2 {
		t.Fatalf("after supersede, due = %+v; want #%d", due, d2)
	}
	if it, _ := db.GetOutbox(ctx, d1); it.State != ops.OutboxSuperseded || it.LastError != "no pending approval" {
		t.Fatalf("superseded item = %+v", it)
	}
	if n, _ := db.RetryOutbox(ctx, 0); n != 1 {
		t.Fatalf("retry touched %d items; want only the pending one (closed items are never retried)", n)
	}
	// Discard: not while a live pass holds it, never once delivered.
	if ok, err := db.ClaimOutbox(ctx, d2, "h:1:p", time.Minute); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	discard := func(id int64) error {
		return db.WithTx(ctx, func(tx *Tx) error { _, err := tx.DiscardOutbox(ctx, id); return err })
	}
	if err := discard(d2); !errors.Is(err, ErrConflict) {
		t.Fatalf("discarding a claimed item: %v; want ErrConflict", err)
	}
	if err := db.ReleaseOutbox(ctx, d2, "h:1:p"); err != nil {
		t.Fatal(err)
	}
	if err := discard(d2); err != nil {
		t.Fatal(err)
	}
	if it, _ := db.GetOutbox(ctx, d2); it.State != ops.OutboxDiscarded {
		t.Fatalf("discarded item = %+v", it)
	}
	if err := discard(d2); !errors.Is(err, ErrConflict) {
		t.Fatalf("discarding twice: %v; want ErrConflict", err)
	}
	d3 := enqueue(t, db, "CHG2", ops.OutboxDecide)
	if err := db.WithTx(ctx, func(tx *Tx) error { return tx.MarkDelivered(ctx, d3, nil) }); err != nil {
		t.Fatal(err)
	}
	if err := discard(d3); !errors.Is(err, ErrConflict) {
		t.Fatalf("discarding a delivered item: %v; want ErrConflict", err)
	}
	items, _ := db.ListOutbox(ctx, ops.OutboxFilter{})
	if len(items) != 0 {
		t.Fatalf("default list (pending, failed) = %+v; want closed items left out", items)
	}
}

// TestOutboxMigrationKeepsItems: items written under the first schema are
// read, due and retried as before once the resolution column exists.
func TestOutboxMigrationKeepsItems(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`,
		ms[0].SQL,
		`INSERT INTO schema_migrations VALUES (1, 'init', '2026-01-01T00:00:00.000000000Z')`,
		`INSERT INTO outbox (ordering_key, kind, payload_json, state, attempts, next_attempt_at, last_error, created_at)
			VALUES ('u-1', 'change.create', '{}', 'failed', 3, '2026-01-01T00:00:00.000000000Z', 'refused', '2026-01-01T00:00:00.000000000Z'),
			       ('u-2', 'change.create', '{}', 'pending', 0, '2026-01-01T00:00:00.000000000Z', '', '2026-01-01T00:00:00.000000000Z')`,
	} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	items, err := db.ListOutbox(ctx, ops.OutboxFilter{})
	if err != nil || len(items) != 2 || items[0].State != ops.OutboxFailed || items[0].LastError != "refused" || items[1].State != ops.OutboxPending {
		t.Fatalf("items after migration = %+v, %v", items, err)
	}
	if due, _ := db.DueOutbox(ctx, time.Now(), 10); len(due) != 1 || due[0].Key != "u-2" {
		t.Fatalf("due after migration = %+v", due)
	}
	if n, _ := db.RetryOutbox(ctx, 0); n != 2 {
		t.Fatalf("retry touched %d; want 2", n)
	}
}
