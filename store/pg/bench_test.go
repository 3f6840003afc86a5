package pg_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/daytwo/daytwo/internal/pgtest"
	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store/pg"
)

func benchChanges(n int) []ops.Change {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]ops.Change, n)
	for i := range out {
		sysID := fmt.Sprintf("%032x", i+1)
		raw := fmt.Sprintf(`{"sys_id":%q,"number":"CHG%07d","description":"%01400d"}`, sysID, i, 0)
		out[i] = ops.Change{SysID: sysID, Number: fmt.Sprintf("CHG%07d", i), Type: "normal", State: ops.ChangeClosed,
			Approval: "approved", ShortDescription: fmt.Sprintf("Generated rollout %d", i), CmdbCI: "checkout-service",
			StartDate: base, EndDate: base.Add(time.Hour), CorrelationID: fmt.Sprintf("gen-%d", i),
			SysUpdatedOn: base.Add(time.Duration(i/10) * time.Second), SysModCount: 3, Raw: []byte(raw)}
	}
	return out
}

// BenchmarkUpsertChanges writes 20k changes in pages of 1000 (one
// transaction per page, as the mirror does) into a fresh PostgreSQL
// database; compare rows/s with the SQLite store's benchmark.
func BenchmarkUpsertChanges(b *testing.B) {
	const n, page = 20_000, 1000
	srv := pgtest.Start(b)
	changes := benchChanges(n)
	ctx := context.Background()
	written := 0
	for b.Loop() {
		b.StopTimer()
		db, err := pg.Open(ctx, srv.URL(srv.CreateDB(b)), pg.Options{Password: srv.Password})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for i := 0; i < n; i += page {
			err := db.Atomic(ctx, func(tx ops.Tx) error {
				st, err := tx.UpsertChanges(ctx, changes[i:i+page])
				written += st.Written
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(written)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkJournalStep journals one step (started then finished, each
// committed on its own, fenced) per op.
func BenchmarkJournalStep(b *testing.B) {
	srv := pgtest.Start(b)
	ctx := context.Background()
	db, err := pg.Open(ctx, srv.URL(srv.CreateDB(b)), pg.Options{Password: srv.Password})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.SyncEnvironments(ctx, []ops.Environment{{Name: "prod"}}, "bench"); err != nil {
		b.Fatal(err)
	}
	var l ops.Lease
	err = db.Atomic(ctx, func(tx ops.Tx) error {
		if err := tx.InsertUpdate(ctx, ops.Update{ID: "u1", Environment: "prod", Version: "1", Plan: []byte(`{}`), State: ops.UpdateRunning}); err != nil {
			return err
		}
		if l, err = tx.AcquireLease(ctx, ops.LeaseRequest{Environment: "prod", Holder: "bench", RunID: "r1", TTL: time.Hour}); err != nil {
			return err
		}
		return tx.InsertRun(ctx, ops.Run{ID: "r1", UpdateID: "u1", Environment: "prod", Kind: "rollout", State: ops.RunRunning, Holder: "bench", Epoch: l.Epoch})
	})
	if err != nil {
		b.Fatal(err)
	}
	f := ops.Fence{Environment: "prod", Holder: "bench", Epoch: l.Epoch}
	i := 0
	for b.Loop() {
		i++
		id, err := db.StepStarted(ctx, f, ops.StepRecord{RunID: "r1", Batch: 1, Target: fmt.Sprintf("t%d", i), Step: "deploy", Version: "1"})
		if err != nil {
			b.Fatal(err)
		}
		if err := db.StepFinished(ctx, f, id, ops.StepSucceeded, ""); err != nil {
			b.Fatal(err)
		}
	}
}
