package pg_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daytwo/daytwo/internal/pgtest"
	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store/pg"
)

// The store benchmarks of package store, on a real PostgreSQL server (a
// throwaway one on loopback, fsync off as pgtest starts it: see
// BENCHMARKS.md), with the same rows and the same shape so that the
// numbers compare.

// benchChanges builds n changes shaped like the mirror's, as the SQLite
// store's benchmark does: every column set and a raw_json of the size a
// real change_request read has (~1.5 KB).
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
// reports rows/s and the database's size per 100k changes.
func BenchmarkUpsertChanges(b *testing.B) {
	const n, page = 100_000, 1000
	srv := pgtest.Start(b)
	changes := benchChanges(n)
	ctx := context.Background()
	written, iter := 0, 0
	var size int64
	for b.Loop() {
		b.StopTimer()
		iter++
		name := srv.CreateDB(b)
		db, err := pg.Open(ctx, srv.URL(name), pg.Options{Password: srv.Password})
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
		db.Close()
		size = dbSize(b, srv, name)
		b.StartTimer()
	}
	if written != n*iter {
		b.Fatalf("wrote %d rows, want %d", written, n*iter)
	}
	b.ReportMetric(float64(written)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(size)/(1<<20), "MB/100k")
}

// dbSize is pg_database_size after a VACUUM (what the rows take on disk).
func dbSize(b *testing.B, srv *pgtest.Server, name string) int64 {
	b.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(srv.URL(name))
	if err != nil {
		b.Fatal(err)
	}
	cfg.Password = srv.Password
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "VACUUM"); err != nil {
		b.Fatal(err)
	}
	var size int64
	if err := c.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&size); err != nil {
		b.Fatal(err)
	}
	return size
}

// BenchmarkJournalStep is one journaled step (started + finished, two
// fenced commits) from 50 goroutines, as a rollout with max_parallel 50
// does.
func BenchmarkJournalStep(b *testing.B) {
	srv := pgtest.Start(b)
	ctx := context.Background()
	db, err := pg.Open(ctx, srv.URL(srv.CreateDB(b)), pg.Options{Password: srv.Password})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.SyncEnvironments(ctx, []ops.Environment{{Name: "fleet"}}, "bench"); err != nil {
		b.Fatal(err)
	}
	var fence ops.Fence
	err = db.Atomic(ctx, func(tx ops.Tx) error {
		if err := tx.InsertUpdate(ctx, ops.Update{ID: "u-bench", Environment: "fleet", Version: "1.0.0", State: ops.UpdateRunning}); err != nil {
			return err
		}
		l, err := tx.AcquireLease(ctx, ops.LeaseRequest{Environment: "fleet", Holder: "bench", RunID: "r-bench", TTL: time.Hour})
		if err != nil {
			return err
		}
		fence = ops.Fence{Environment: "fleet", Holder: "bench", Epoch: l.Epoch}
		return tx.InsertRun(ctx, ops.Run{ID: "r-bench", UpdateID: "u-bench", Environment: "fleet", Kind: ops.RunRollout, State: ops.RunRunning})
	})
	if err != nil {
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
