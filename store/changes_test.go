package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// Pages are written in multi-row statements; the counts stay per row:
// a fresh page is all written, its replay all unchanged, one newer row
// is one write, and a sys_id twice in one page is written once and then
// updated by its newer copy, like two statements in a row.
func TestUpsertChangesBatchedCounts(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	page := benchChanges(2*upsertBatch + 7)
	st, err := db.UpsertChanges(ctx, page)
	if err != nil {
		t.Fatal(err)
	}
	if st.Written != len(page) || st.Unchanged != 0 {
		t.Fatalf("fresh page: %+v", st)
	}
	if st, err = db.UpsertChanges(ctx, page); err != nil || st.Written != 0 || st.Unchanged != len(page) {
		t.Fatalf("replay: %+v, %v", st, err)
	}
	newer := page[upsertBatch+3]
	newer.SysModCount++
	newer.ShortDescription = "changed"
	again := append([]ops.Change(nil), page[upsertBatch:upsertBatch+10]...)
	again[3] = newer
	if st, err = db.UpsertChanges(ctx, again); err != nil || st.Written != 1 || st.Unchanged != 9 {
		t.Fatalf("one newer row: %+v, %v", st, err)
	}
	got, err := db.GetChange(ctx, newer.Number)
	if err != nil || got.ShortDescription != "changed" || got.SysModCount != newer.SysModCount {
		t.Fatalf("stored %+v, %v", got, err)
	}
	dup := benchChanges(1)[0]
	dup.SysID, dup.Number = "ffffffffffffffffffffffffffffffff", "CHGDUP"
	dup2 := dup
	dup2.SysModCount++
	dup2.ShortDescription = "second copy"
	if st, err = db.UpsertChanges(ctx, []ops.Change{dup, dup2}); err != nil || st.Written != 2 {
		t.Fatalf("duplicate in one page: %+v, %v", st, err)
	}
	if got, err = db.GetChange(ctx, "CHGDUP"); err != nil || got.ShortDescription != "second copy" {
		t.Fatalf("stored %+v, %v", got, err)
	}
	n, err := db.CountChanges(ctx, ops.ChangeFilter{})
	if err != nil || n != len(page)+1 {
		t.Fatalf("%d changes stored, want %d (%v)", n, len(page)+1, err)
	}
}

// The write gate queues this process's writers, but a writer nested in
// another's transaction (which SQLite cannot serve either) is not left
// waiting forever: after the busy timeout it goes on to SQLite, which
// refuses it, as it did before the gate.
func TestNestedWriterIsNotDeadlocked(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "gate.db"), Options{BusyTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	done := make(chan error, 1)
	go func() {
		done <- db.WithTx(ctx, func(tx *Tx) error {
			_, err := db.UpsertChanges(ctx, benchChanges(1)) // another connection, inside tx
			return err
		})
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a write nested in another transaction succeeded")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a nested writer waits forever for the write gate")
	}
	// The gate is free again.
	if _, err := db.UpsertChanges(ctx, benchChanges(1)); err != nil {
		t.Fatal(err)
	}
}
