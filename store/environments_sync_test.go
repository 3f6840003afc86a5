package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// A process that starts with the configuration the store already holds
// takes no write lock: it does not queue behind another process's
// transaction. A changed configuration still writes (and records it).
func TestSyncEnvironmentsUnchangedTakesNoWriteLock(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "daytwo.db")
	open := func() *DB {
		db, err := Open(ctx, path, Options{BusyTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	a, b := open(), open()
	envs := []ops.Environment{{Name: "dev", Tier: "dev"}, {Name: "prod", Tier: "prod", RequiresChange: true}}
	if err := a.SyncEnvironments(ctx, envs, "test"); err != nil {
		t.Fatal(err)
	}
	// b holds the write lock, as a daemon storing a mirror page does.
	conn, err := b.sql.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	if err := a.SyncEnvironments(ctx, envs, "test"); err != nil {
		t.Fatalf("unchanged environments beside a writer: %v; want no write, no wait", err)
	}
	changed := append([]ops.Environment(nil), envs...)
	changed[1].Tier = "production"
	if err := a.SyncEnvironments(ctx, changed, "test"); err == nil {
		t.Fatal("a changed environment was synced while another process held the write lock: it wrote nothing?")
	}
	if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if err := a.SyncEnvironments(ctx, changed, "test"); err != nil {
		t.Fatal(err)
	}
	events, err := a.ListEvents(ctx, ops.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		if e.Action == "environment.configured" {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d environment.configured events, want 3 (dev, prod, prod again)", n)
	}
}
