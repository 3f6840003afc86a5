package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/daytwo/daytwo/internal/pgtest"
	"github.com/daytwo/daytwo/ops"
	opsexec "github.com/daytwo/daytwo/ops/exec"
	"github.com/daytwo/daytwo/store/pg"
)

// BenchmarkRollout1000PG runs the 1000-target no-op rollout of
// BenchmarkRollout1000 on PostgreSQL (a server the benchmark starts) and,
// in the same iteration, on SQLite: x-sqlite is their ratio (issue 16:
// within 2×). Every step is journaled, fenced, on the server.
func BenchmarkRollout1000PG(b *testing.B) { benchRolloutPG(b, 1000) }

func benchRolloutPG(b *testing.B, n int) {
	srv := pgtest.Start(b)
	pgw := newPGRolloutWorld(b, srv, n)
	sqlite := newRolloutWorld(b, n)
	var onPG, onSQLite time.Duration
	i := 0
	for b.Loop() {
		i++
		onPG += pgw.rollout(b, fmt.Sprintf("1.0.%d", i))
		b.StopTimer()
		onSQLite += sqlite.rollout(b, fmt.Sprintf("1.0.%d", i))
		b.StartTimer()
	}
	b.ReportMetric(onPG.Seconds()/float64(i), "s-postgres")
	b.ReportMetric(onSQLite.Seconds()/float64(i), "s-sqlite")
	b.ReportMetric(onPG.Seconds()/onSQLite.Seconds(), "x-sqlite")
}

// pgRolloutWorld is rolloutWorld on PostgreSQL.
type pgRolloutWorld struct {
	svc *ops.Service
	db  *pg.DB
	env ops.Environment
}

func newPGRolloutWorld(tb testing.TB, srv *pgtest.Server, targets int) *pgRolloutWorld {
	tb.Helper()
	env := ops.Environment{
		Name: "fleet", Deploy: ops.DeploySpec{Command: []string{"/bin/true"}},
		Strategy: ops.Strategy{BatchSize: ops.BatchSize{Percent: 100}, MaxParallel: 50},
	}
	for i := range targets {
		env.Targets = append(env.Targets, ops.Target{Name: fmt.Sprintf("host-%04d", i)})
	}
	ctx := context.Background()
	db, err := pg.Open(ctx, srv.URL(srv.CreateDB(tb)), pg.Options{Password: srv.Password})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if err := db.SyncEnvironments(ctx, []ops.Environment{env}, "bench"); err != nil {
		tb.Fatal(err)
	}
	svc, err := ops.New(ops.Config{Environments: []ops.Environment{env}, Actor: "bench"}, db, nil,
		ops.WithExecutors(func(env ops.Environment) (ops.Executor, ops.HealthChecker, error) {
			c, err := opsexec.NewCommand(env.Name, env.Deploy)
			return c, nil, err
		}),
		ops.WithTargetLocker(&opsexec.TargetLocks{Dir: filepath.Join(tb.TempDir(), "locks")}), ops.WithStepReaper(&opsexec.Reaper{}))
	if err != nil {
		tb.Fatal(err)
	}
	return &pgRolloutWorld{svc: svc, db: db, env: env}
}

// rollout proposes version and runs it, returning the Run's wall time,
// after checking every step is journaled as finished.
func (w *pgRolloutWorld) rollout(tb testing.TB, version string) time.Duration {
	tb.Helper()
	ctx := context.Background()
	p, err := w.svc.Propose(ctx, ops.ProposeRequest{Environment: w.env.Name, Version: version})
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	res, err := w.svc.Run(ctx, ops.RunRequest{Update: p.Update.ID})
	took := time.Since(start)
	if err != nil {
		tb.Fatal(err)
	}
	if res.Run.State != ops.RunSucceeded {
		tb.Fatalf("run = %+v", res.Run)
	}
	steps, err := w.db.Steps(ctx, res.Run.ID)
	if err != nil {
		tb.Fatal(err)
	}
	if len(steps) != len(w.env.Targets) {
		tb.Fatalf("journal holds %d steps, want %d", len(steps), len(w.env.Targets))
	}
	for _, s := range steps {
		if s.State != ops.StepSucceeded || s.FinishedAt.IsZero() {
			tb.Fatalf("step %+v not journaled as finished", s)
		}
	}
	return took
}
