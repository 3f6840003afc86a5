package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// benchChanges builds n changes shaped like the mirror's: every column
// set and a raw_json of the size a real change_request read has (~1.5 KB).
func benchChanges(n int) []ops.Change {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]ops.Change, n)
	for i := range out {
		sysID := fmt.Sprintf("%032x", i+1)
		raw := fmt.Sprintf(`{"sys_id":%q,"number":"CHG%07d","short_description":"Generated rollout %d","state":"3","type":"normal",`+
			`"approval":"approved","risk":"4","impact":"3","priority":"4","active":"false","correlation_id":"gen-%d",`+
			`"assignment_group":"d2100000000000000000000000000001","cmdb_ci":"d2200000000000000000000000000001",`+
			`"requested_by":"d2000000000000000000000000000001","opened_by":"d2000000000000000000000000000001",`+
			`"sys_created_on":"2026-01-01 00:00:00","sys_updated_on":"2026-01-01 00:00:00","sys_mod_count":"3",`+
			`"description":"%0900d"}`, sysID, i, i, i, 0)
		out[i] = ops.Change{
			SysID: sysID, Number: fmt.Sprintf("CHG%07d", i), Type: "normal", State: ops.ChangeClosed,
			Approval: "approved", Risk: "low", ShortDescription: fmt.Sprintf("Generated rollout %d", i), CmdbCI: "checkout-service",
			AssignmentGroup: "Platform Ops", RequestedBy: "daytwo Integration", RequestedByID: "d2000000000000000000000000000001",
			StartDate: base, EndDate: base.Add(time.Hour), CorrelationID: fmt.Sprintf("gen-%d", i),
			CloseCode: "successful", SysUpdatedOn: base.Add(time.Duration(i/10) * time.Second), SysModCount: 3, Raw: []byte(raw),
		}
	}
	return out
}

// BenchmarkUpsertChanges writes 100k changes in pages of 1000 (one
// transaction per page, as the mirror does) into a fresh database and
// reports rows/s and the SQLite file size (database + WAL after a
// checkpoint) per 100k changes.
func BenchmarkUpsertChanges(b *testing.B) {
	const n, page = 100_000, 1000
	changes := benchChanges(n)
	ctx := context.Background()
	var written int
	var size int64
	iter := 0
	for b.Loop() {
		b.StopTimer()
		iter++
		db, err := Open(ctx, filepath.Join(b.TempDir(), fmt.Sprintf("b%d.db", iter)), Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for i := 0; i < n; i += page {
			st, err := db.UpsertChanges(ctx, changes[i:i+page])
			if err != nil {
				b.Fatal(err)
			}
			written += st.Written
		}
		b.StopTimer()
		if _, err := db.sql.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			b.Fatal(err)
		}
		size = fileSize(db.Path()) + fileSize(db.Path()+"-wal")
		db.Close()
		b.StartTimer()
	}
	if written != n*iter {
		b.Fatalf("wrote %d rows, want %d", written, n*iter)
	}
	b.ReportMetric(float64(written)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(size)/(1<<20), "MB/100k")
}

// BenchmarkUpsertChangesReplay replays pages the mirror already holds (a
// restarted sync re-reading its boundary page): every row is skipped.
func BenchmarkUpsertChangesReplay(b *testing.B) {
	const page = 1000
	changes := benchChanges(page)
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(b.TempDir(), "r.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.UpsertChanges(ctx, changes); err != nil {
		b.Fatal(err)
	}
	rows := 0
	for b.Loop() {
		st, err := db.UpsertChanges(ctx, changes)
		if err != nil {
			b.Fatal(err)
		}
		if st.Unchanged != page {
			b.Fatalf("replay = %+v", st)
		}
		rows += page
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkJournalStep is one journaled step (started + finished, two
// commits) from 50 goroutines, as a rollout with max_parallel 50 does.
func BenchmarkJournalStep(b *testing.B) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(b.TempDir(), "j.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.SyncEnvironments(ctx, []ops.Environment{{Name: "fleet"}}, "bench"); err != nil {
		b.Fatal(err)
	}
	var fence ops.Fence
	if err := db.WithTx(ctx, func(tx *Tx) error {
		if err := tx.InsertUpdate(ctx, ops.Update{ID: "u-bench", Environment: "fleet", Version: "1.0.0", State: ops.UpdateRunning}); err != nil {
			return err
		}
		l, err := tx.AcquireLease(ctx, ops.LeaseRequest{Environment: "fleet", Holder: "bench", RunID: "r-bench", TTL: time.Hour})
		if err != nil {
			return err
		}
		fence = ops.Fence{Environment: "fleet", Holder: "bench", Epoch: l.Epoch}
		return tx.InsertRun(ctx, ops.Run{ID: "r-bench", UpdateID: "u-bench", Environment: "fleet", Kind: ops.RunRollout, State: ops.RunRunning})
	}); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(25) // 25 × GOMAXPROCS(2) = 50 writers
	var seq atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			target := fmt.Sprintf("host-%06d", seq.Add(1))
			id, err := db.StepStarted(ctx, fence, ops.StepRecord{RunID: "r-bench", Batch: 1, Target: target, Step: ops.StepDeploy, Version: "1.0.0"})
			if err != nil {
				b.Error(err)
				return
			}
			if err := db.StepFinished(ctx, fence, id, ops.StepSucceeded, ""); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// BenchmarkSearchChanges is the console's search over 100k mirrored
// changes: the count and the first window of a search, as the changes
// screen asks them, for a common match and for no match at all.
func BenchmarkSearchChanges(b *testing.B) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(b.TempDir(), "search.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	changes := benchChanges(100_000)
	for i := 0; i < len(changes); i += 1000 {
		if _, err := db.UpsertChanges(ctx, changes[i:i+1000]); err != nil {
			b.Fatal(err)
		}
	}
	for _, q := range []string{"rollout 4", "no such change"} {
		b.Run(q, func(b *testing.B) {
			for b.Loop() {
				n, err := db.CountChanges(ctx, ops.ChangeFilter{Search: q})
				if err != nil {
					b.Fatal(err)
				}
				rows, err := db.ListChanges(ctx, ops.ChangeFilter{Search: q, Limit: 111})
				if err != nil || len(rows) != min(n, 111) {
					b.Fatalf("%d rows of %d: %v", len(rows), n, err)
				}
			}
		})
	}
}
