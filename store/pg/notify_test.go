package pg_test

import (
	"context"
	"testing"
	"time"

	"github.com/daytwo/daytwo/internal/pgtest"
	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store/pg"
)

// feedWait waits up to d for a value on ch; it fails the test if ch closed.
func feedWait(t *testing.T, ch <-chan struct{}, d time.Duration) bool {
	t.Helper()
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatal("the change feed closed")
		}
		return true
	case <-time.After(d):
		return false
	}
}

// drainFeed empties what ch holds now.
func drainFeed(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// TestChangeFeedSeesOtherConnectionsCommits: a watcher on one pool sees,
// through LISTEN/NOTIFY, commits made through another pool (as another
// process would make them) — a transaction, a fenced journal write and a
// short-lived writer's last write before Close — and after a server
// restart it reconnects, signals once, and keeps seeing commits.
func TestChangeFeedSeesOtherConnectionsCommits(t *testing.T) {
	srv := pgtest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := srv.URL(srv.CreateDB(t))
	open := func() *pg.DB {
		db, err := pg.Open(ctx, url, pg.Options{Password: srv.Password})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	watcher, writer := open(), open()
	defer watcher.Close()
	defer writer.Close()
	feed := watcher.Changes(ctx)
	// LISTEN is in place once a write is seen: write until one is.
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; !feedWait(t, feed, 200*time.Millisecond); i++ {
		if time.Now().After(deadline) {
			t.Fatal("the feed never saw a commit")
		}
		if _, err := writer.AppendEvent(ctx, ops.Event{Actor: "t", Action: "warm-up"}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond) // let late warm-up notifications land before draining
	drainFeed(feed)

	const bound = 2 * time.Second
	// A write transaction.
	if err := writer.SyncEnvironments(ctx, []ops.Environment{{Name: "prod"}}, "t"); err != nil {
		t.Fatal(err)
	}
	var l ops.Lease
	err := writer.Atomic(ctx, func(tx ops.Tx) error {
		if err := tx.InsertUpdate(ctx, ops.Update{ID: "u1", Environment: "prod", Version: "1", Plan: []byte(`{}`), State: ops.UpdateRunning}); err != nil {
			return err
		}
		var err error
		if l, err = tx.AcquireLease(ctx, ops.LeaseRequest{Environment: "prod", Holder: "t", RunID: "r1", TTL: time.Hour}); err != nil {
			return err
		}
		return tx.InsertRun(ctx, ops.Run{ID: "r1", UpdateID: "u1", Environment: "prod", Kind: "rollout", State: ops.RunRunning, Holder: "t", Epoch: l.Epoch})
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if !feedWait(t, feed, bound) {
		t.Fatalf("a committed transaction was not announced within %v", bound)
	}
	t.Logf("transaction seen after %v", time.Since(start))
	time.Sleep(50 * time.Millisecond)
	drainFeed(feed)

	// A fenced journal write (one statement, no transaction of ours).
	if _, err := writer.StepStarted(ctx, ops.Fence{Environment: "prod", Holder: "t", Epoch: l.Epoch},
		ops.StepRecord{RunID: "r1", Batch: 1, Target: "a", Step: "deploy", Version: "1"}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if !feedWait(t, feed, bound) {
		t.Fatalf("a journal write was not announced within %v", bound)
	}
	t.Logf("journal write seen after %v", time.Since(start))

	// A short-lived writer: its last write is announced by Close.
	short := open()
	if _, err := short.AppendEvent(ctx, ops.Event{Actor: "t", Action: "last"}); err != nil {
		t.Fatal(err)
	}
	short.Close()
	time.Sleep(50 * time.Millisecond)
	drainFeed(feed)
	short = open()
	if err := short.Atomic(ctx, func(tx ops.Tx) error {
		_, err := tx.Enqueue(ctx, ops.OutboxItem{Key: "u1", Kind: ops.OutboxKind("work_note"), Payload: []byte(`{}`)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	short.Close()
	if !feedWait(t, feed, bound) {
		t.Fatalf("a write just before Close was not announced within %v", bound)
	}

	// The server restarts: the feed reconnects and signals.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	drainFeed(feed)
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if !feedWait(t, feed, 30*time.Second) {
		t.Fatal("no signal after the feed reconnected")
	}
	deadline = time.Now().Add(30 * time.Second)
	for !feedWait(t, feed, 200*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("after the restart the feed never saw a commit")
		}
		// The writer's pool may still be reconnecting: its errors do not matter here.
		_, _ = writer.AppendEvent(ctx, ops.Event{Actor: "t", Action: "after restart"})
	}
	cancel()
	for range feed { // closed once ctx ends
	}
}
