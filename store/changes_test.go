package store

import (
	"context"
	"testing"

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
