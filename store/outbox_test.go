package store

import (
	"context"
	"errors"
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
	u := ops.Update{ID: "u1", Environment: "production", Version: "1.4.2", Config: map[string]string{"k": "v"},
		Plan: []byte(`{"batches":[]}`), PlanDigest: "d1", State: ops.UpdateProposed}
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
