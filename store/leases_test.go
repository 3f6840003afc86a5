package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

func acquire(t *testing.T, db *DB, req ops.LeaseRequest) (ops.Lease, error) {
	t.Helper()
	var l ops.Lease
	err := db.WithTx(context.Background(), func(tx *Tx) error {
		var err error
		l, err = tx.AcquireLease(context.Background(), req)
		return err
	})
	return l, err
}

func TestLeasesFenceStaleHolders(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	db, err := Open(context.Background(), t.TempDir()+"/d.db", Options{Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	a, err := acquire(t, db, ops.LeaseRequest{Environment: "production", Holder: "host-a", RunID: "r1", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	fa := ops.Fence{Environment: "production", Holder: "host-a", Epoch: a.Epoch}
	if _, err := acquire(t, db, ops.LeaseRequest{Environment: "production", Holder: "host-b", RunID: "r2", TTL: time.Minute}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second holder: err = %v", err)
	}
	if err := db.RenewLease(ctx, fa, time.Minute); err != nil {
		t.Fatalf("renewal: %v", err)
	}
	now = now.Add(2 * time.Minute) // host-a paused past its lease
	b, err := acquire(t, db, ops.LeaseRequest{Environment: "production", Holder: "host-b", RunID: "r1", TTL: time.Minute})
	if err != nil {
		t.Fatalf("expired lease must be taken over: %v", err)
	}
	if b.Epoch <= a.Epoch {
		t.Fatalf("takeover epoch %d, want > %d", b.Epoch, a.Epoch)
	}
	// host-a wakes up: it may neither renew nor write the journal.
	if err := db.RenewLease(ctx, fa, time.Minute); !errors.Is(err, ops.ErrLeaseLost) {
		t.Fatalf("stale renewal: err = %v, want ErrLeaseLost", err)
	}
	if _, err := db.StepStarted(ctx, fa, ops.StepRecord{RunID: "r1", Target: "t1", Step: ops.StepDeploy}); !errors.Is(err, ops.ErrLeaseLost) {
		t.Fatalf("stale step start: err = %v, want ErrLeaseLost", err)
	}
	if err := db.AppendLog(ctx, fa, []ops.LogLine{{RunID: "r1", Stream: "daytwo", Line: "x"}}); !errors.Is(err, ops.ErrLeaseLost) {
		t.Fatalf("stale log: err = %v, want ErrLeaseLost", err)
	}
	// A released lease keeps its epoch: the next holder's is newer still,
	// and the releaser's fence is dead.
	fb := ops.Fence{Environment: "production", Holder: "host-b", Epoch: b.Epoch}
	if err := db.ReleaseLease(ctx, fb); err != nil {
		t.Fatal(err)
	}
	if ls, _ := db.Leases(ctx); len(ls) != 0 {
		t.Fatalf("after release: %+v", ls)
	}
	if err := db.RenewLease(ctx, fb, time.Minute); !errors.Is(err, ops.ErrLeaseLost) {
		t.Fatalf("renewal after release: err = %v", err)
	}
	c, err := acquire(t, db, ops.LeaseRequest{Environment: "production", Holder: "host-a", RunID: "r3", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if c.Epoch <= b.Epoch {
		t.Fatalf("epoch after release %d, want > %d", c.Epoch, b.Epoch)
	}
	// A dead holder's unexpired lease may be taken at once.
	d, err := acquire(t, db, ops.LeaseRequest{Environment: "production", Holder: "host-b", RunID: "r3", TTL: time.Minute, DeadHolder: "host-a"})
	if err != nil || d.Epoch != c.Epoch+1 {
		t.Fatalf("dead holder takeover: %+v, %v", d, err)
	}
}
