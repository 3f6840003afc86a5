package store

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Journal writes that arrive together commit together, and each keeps its
// own result: a write that fails fails alone, the others are committed,
// every inserted id is the caller's own row.
func TestGroupCommitKeepsEachWritesResult(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "daytwo.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.sql.ExecContext(ctx, `CREATE TABLE gc_probe (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)`); err != nil {
		t.Fatal(err)
	}
	const writers = 64
	type out struct {
		id  int64
		n   int64
		err error
	}
	results := make([]out, writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range writers {
		wg.Go(func() {
			<-start
			name := fmt.Sprintf("w%02d", i)
			if i%16 == 7 {
				name = "dup" // four writers insert the same name: one wins, three fail
			}
			res, err := db.execWrite(ctx, `INSERT INTO gc_probe (name) VALUES (?)`, name)
			if err != nil {
				results[i].err = err
				return
			}
			results[i].id, _ = res.LastInsertId()
			results[i].n, _ = res.RowsAffected()
		})
	}
	// Hold the write gate (as another transaction of this process would)
	// until every writer is queued: the first leader waits at the gate
	// with its own write, the others gather behind it into one batch.
	db.writeGate <- struct{}{}
	close(start)
	for {
		db.group.mu.Lock()
		queued := len(db.group.queue)
		db.group.mu.Unlock()
		if queued == writers-1 {
			break
		}
		runtime.Gosched()
	}
	<-db.writeGate
	wg.Wait()
	failed := 0
	for i, r := range results {
		if r.err != nil {
			if !strings.Contains(r.err.Error(), "UNIQUE") {
				t.Fatalf("writer %d: %v; want only UNIQUE failures", i, r.err)
			}
			failed++
			continue
		}
		if r.n != 1 {
			t.Fatalf("writer %d: %d rows affected", i, r.n)
		}
		var name string
		if err := db.sql.QueryRowContext(ctx, `SELECT name FROM gc_probe WHERE id = ?`, r.id).Scan(&name); err != nil {
			t.Fatalf("writer %d: its id %d: %v", i, r.id, err)
		}
		want := fmt.Sprintf("w%02d", i)
		if i%16 == 7 {
			want = "dup"
		}
		if name != want {
			t.Fatalf("writer %d got id %d, which holds %q: another writer's row", i, r.id, name)
		}
	}
	if failed != 3 {
		t.Fatalf("%d writers failed, want the 3 duplicates", failed)
	}
	var n int
	if err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM gc_probe`).Scan(&n); err != nil || n != writers-3 {
		t.Fatalf("%d rows committed (%v), want %d", n, err, writers-3)
	}
	// A canceled writer is not run.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := db.execWrite(cctx, `INSERT INTO gc_probe (name) VALUES ('late')`); err == nil {
		t.Fatal("a canceled write ran")
	}
}
