package store

import (
	"context"
	"testing"
	"time"
)

// A pending item keeps the progress an attempt saved across failed
// attempts; delivery replaces it with the result; a delivered item's result
// is never overwritten by progress.
func TestOutboxProgressSurvivesAttemptsUntilDelivery(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	id := enqueue(t, db, "u-p", "change.create")
	if err := db.SaveOutboxProgress(ctx, id, map[string]string{"sys_id": "abc"}); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkAttemptFailed(ctx, id, "timeout", db.clock().Add(-time.Second), false); err != nil {
		t.Fatal(err)
	}
	due, err := db.DueOutbox(ctx, db.clock(), 10)
	if err != nil || len(due) != 1 || string(due[0].Result) != `{"sys_id":"abc"}` {
		t.Fatalf("due = %+v, %v; want the saved progress", due, err)
	}
	if err := db.WithTx(ctx, func(tx *Tx) error { return tx.MarkDelivered(ctx, id, map[string]string{"number": "CHG1"}) }); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveOutboxProgress(ctx, id, map[string]string{"sys_id": "late"}); err != nil {
		t.Fatal(err)
	}
	it, err := db.GetOutbox(ctx, id)
	if err != nil || string(it.Result) != `{"number":"CHG1"}` {
		t.Fatalf("delivered item = %+v, %v", it, err)
	}
}
