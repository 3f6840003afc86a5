package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/daytwo/daytwo/internal/pgtest"
	"github.com/daytwo/daytwo/itsm"
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

// runPGMirrorRole is the "mirror" role on PostgreSQL: the same client,
// service and first sync as openBenchMirror, over the database at dbURL.
func runPGMirrorRole(ctx context.Context, n int, simURL, dbURL, password string) error {
	client, err := itsm.New(itsm.Config{
		Instance: simURL, Auth: itsm.AuthConfig{Username: "daytwo", Password: "daytwo"},
		Timeout: 30 * time.Second, PageSize: 1000,
	})
	if err != nil {
		return err
	}
	db, err := pg.Open(ctx, dbURL, pg.Options{Password: password})
	if err != nil {
		return err
	}
	defer db.Close()
	envs := benchEnvironments()
	if err := db.SyncEnvironments(ctx, envs, "bench"); err != nil {
		return err
	}
	svc, err := ops.New(ops.Config{Environments: envs, CorrelationPrefix: "daytwo", MirrorCIChanges: true, Actor: "bench", Username: "daytwo"},
		db, itsm.NewBridge(client))
	if err != nil {
		return err
	}
	start := time.Now()
	rep, err := svc.SyncOnce(ctx)
	if err != nil {
		return err
	}
	if rep.Upserted != n {
		return fmt.Errorf("mirrored %d changes, want %d (report %+v)", rep.Upserted, n, rep)
	}
	return json.NewEncoder(os.Stdout).Encode(roleResult{Rows: rep.Upserted, Requests: rep.Requests, Seconds: time.Since(start).Seconds()})
}

// BenchmarkMirror100kPG is BenchmarkMirror100k's mirror on PostgreSQL (a
// server the benchmark starts; a fresh database each iteration) beside the
// same mirror on SQLite and the floor, in the same iteration: x-sqlite is
// the PostgreSQL mirror's time over SQLite's (issue 16: within 2×).
func BenchmarkMirror100kPG(b *testing.B) {
	const n = 100_000
	srv := pgtest.Start(b)
	url := benchSimProcess(b, n)
	client, _ := newBenchClient(b, url)
	query := mirrorQuery(b, client)
	fields := strings.Join(itsm.ChangeFields(), ",")
	common := []string{"DAYTWO_BENCH_URL=" + url, "DAYTWO_BENCH_N=" + strconv.Itoa(n)}
	var pgSecs, liteSecs, floorSecs float64
	iter := 0
	for b.Loop() {
		iter++
		f := runRole(b, "floor", append(common, "DAYTWO_BENCH_QUERY="+query, "DAYTWO_BENCH_FIELDS="+fields)...)
		l := runRole(b, "mirror", append(common, "DAYTWO_BENCH_DIR="+filepath.Join(b.TempDir(), fmt.Sprint(iter)))...)
		p := runRole(b, "mirror-pg", append(common, "DAYTWO_BENCH_PG_URL="+srv.URL(srv.CreateDB(b)), "DAYTWO_BENCH_PG_PASSWORD="+srv.Password)...)
		if p.Rows != n || l.Rows != n || f.Rows != n {
			b.Fatalf("rows: postgres %d, sqlite %d, floor %d; want %d", p.Rows, l.Rows, f.Rows, n)
		}
		pgSecs, liteSecs, floorSecs = pgSecs+p.Seconds, liteSecs+l.Seconds, floorSecs+f.Seconds
	}
	k := float64(iter)
	b.ReportMetric(n*k/pgSecs, "records/s-postgres")
	b.ReportMetric(n*k/liteSecs, "records/s-sqlite")
	b.ReportMetric(n*k/floorSecs, "floor-records/s")
	b.ReportMetric(pgSecs/liteSecs, "x-sqlite")
	b.ReportMetric(floorSecs/pgSecs, "postgres-vs-floor")
}
