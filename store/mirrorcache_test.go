package store

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// The process's copy of approvals and open changes must answer exactly
// what the database holds, whoever wrote it: this process (the copy is
// kept current), another process on the same file (the copy is dropped),
// a deletion, a rolled-back transaction.
func TestMirrorCacheFollowsEveryWriter(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "daytwo.db")
	clock := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	open := func() *DB {
		db, err := Open(ctx, path, Options{Clock: func() time.Time { return clock }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	a, b := open(), open() // b stands in for another process
	at := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	change := func(n int, active bool) ops.Change {
		return ops.Change{
			SysID: fmt.Sprintf("c%03d", n), Number: fmt.Sprintf("CHG%07d", n), CorrelationID: fmt.Sprintf("daytwo:u%d", n),
			State: ops.ChangeAssess, Active: active, SysUpdatedOn: at,
		}
	}
	approval := func(n, mod int, state ops.ApprovalState) ops.Approval {
		return ops.Approval{
			SysID: fmt.Sprintf("a%03d", n), ChangeSysID: fmt.Sprintf("c%03d", n), State: state,
			SysModCount: mod, SysUpdatedOn: at.Add(time.Duration(mod) * time.Second), Approver: "cab",
		}
	}
	write := func(db *DB, fn func(tx ops.Tx) error) {
		t.Helper()
		if err := db.Atomic(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	ids := []string{"a001", "a002", "a003", "a404"}
	// want compares ApprovalsByID and OpenChangeSysIDs of db with the
	// database read directly.
	want := func(db *DB, step string) {
		t.Helper()
		for range 2 { // the first read may fill the copy, the second answers from it
			got, err := db.ApprovalsByID(ctx, ids)
			if err != nil {
				t.Fatal(err)
			}
			direct, err := db.approvalsByID(ctx, ids)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(direct) {
				t.Fatalf("%s: ApprovalsByID = %v, the database holds %v", step, got, direct)
			}
			for id, d := range direct {
				g := got[id]
				if g.State != d.State || g.SysModCount != d.SysModCount || !g.SysUpdatedOn.Equal(d.SysUpdatedOn) || g.ChangeSysID != d.ChangeSysID {
					t.Fatalf("%s: approval %s = %+v, the database holds %+v", step, id, g, d)
				}
			}
			gotOpen, err := db.OpenChangeSysIDs(ctx, "daytwo:")
			if err != nil {
				t.Fatal(err)
			}
			directOpen, err := db.openChangeSysIDs(ctx, "daytwo:")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(gotOpen, directOpen) {
				t.Fatalf("%s: OpenChangeSysIDs = %v, the database holds %v", step, gotOpen, directOpen)
			}
		}
	}

	write(a, func(tx ops.Tx) error {
		if _, err := tx.UpsertChanges(ctx, []ops.Change{change(1, true), change(2, true), change(3, true)}); err != nil {
			return err
		}
		_, err := tx.UpsertApprovals(ctx, []ops.Approval{approval(1, 0, ops.ApprovalRequested), approval(2, 0, ops.ApprovalRequested)})
		return err
	})
	want(a, "first read")
	if a.cache.approvals == nil || !a.cache.openOK {
		t.Fatal("a read with no write in between left no copy")
	}

	// This process writes: the copy follows without a read.
	write(a, func(tx ops.Tx) error {
		_, err := tx.UpsertApprovals(ctx, []ops.Approval{approval(1, 1, ops.ApprovalApproved), approval(3, 0, ops.ApprovalRequested)})
		return err
	})
	gen, err := a.generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a.cache.approvalsGen != gen || !a.cache.openOK || a.cache.openGen != gen {
		t.Fatalf("own approval write: copy at %d/%d, counter %d: it should have followed", a.cache.approvalsGen, a.cache.openGen, gen)
	}
	want(a, "after this process's approval write")

	// A write that does not write (not newer) changes nothing.
	write(a, func(tx ops.Tx) error {
		_, err := tx.UpsertApprovals(ctx, []ops.Approval{approval(1, 0, ops.ApprovalRequested)})
		return err
	})
	want(a, "after a no-op upsert")

	// Another process writes approvals and closes a change.
	write(b, func(tx ops.Tx) error {
		closed := change(2, false)
		closed.SysUpdatedOn = at.Add(time.Minute)
		if _, err := tx.UpsertChanges(ctx, []ops.Change{closed}); err != nil {
			return err
		}
		_, err := tx.UpsertApprovals(ctx, []ops.Approval{approval(2, 5, ops.ApprovalRejected)})
		return err
	})
	want(a, "after another process's write")

	// This process changes a change: the open list is read again.
	write(a, func(tx ops.Tx) error {
		closed := change(3, false)
		closed.SysUpdatedOn = at.Add(2 * time.Minute)
		_, err := tx.UpsertChanges(ctx, []ops.Change{closed})
		return err
	})
	want(a, "after this process closed a change")

	// Another process deletes a change with its approvals.
	write(b, func(tx ops.Tx) error {
		_, err := tx.DeleteChanges(ctx, []string{"c001"})
		return err
	})
	want(a, "after another process's deletion")

	// This process deletes; then a rolled-back write.
	write(a, func(tx ops.Tx) error {
		_, err := tx.DeleteChanges(ctx, []string{"c003"})
		return err
	})
	want(a, "after this process's deletion")
	_ = a.Atomic(ctx, func(tx ops.Tx) error {
		if _, err := tx.UpsertApprovals(ctx, []ops.Approval{approval(2, 9, ops.ApprovalApproved)}); err != nil {
			return err
		}
		return fmt.Errorf("roll back")
	})
	want(a, "after a rolled-back write")
}
