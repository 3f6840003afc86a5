package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daytwo/daytwo/itsm"
	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store"
)

// servicesIdle is one daemon over n services × 3 environments × 10
// targets, each service with its own CI (created in the simulator), its
// history seeded so that compliance has releases to judge.
type servicesIdle struct {
	client *itsm.Client
	svc    *ops.Service
	engine *ops.Engine
}

func newServicesIdle(tb testing.TB, simURL string, n int) *servicesIdle {
	tb.Helper()
	ctx := context.Background()
	var envs []ops.Environment
	for i := range n {
		svc := fmt.Sprintf("svc-%03d", i)
		ci := fmt.Sprintf("bench-%d-%s", n, svc)
		body := fmt.Sprintf(`{"name":%q,"sys_class_name":"cmdb_ci_service"}`, ci)
		req, _ := http.NewRequest(http.MethodPost, simURL+"/api/now/table/cmdb_ci", strings.NewReader(body))
		req.SetBasicAuth("admin", "admin")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			tb.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
			tb.Fatalf("create CI %s: %s", ci, resp.Status)
		}
		prev := ""
		for _, stage := range []string{"dev", "staging", "production"} {
			e := ops.Environment{
				Name: ops.UnitKey(svc, stage), Service: svc, Stage: stage, Tier: stage,
				RequiresChange: stage == "production", AutoRun: true,
				Change: ops.ChangeDefaults{Type: "normal", CmdbCI: ci, AssignmentGroup: "Platform Ops", Window: 2 * time.Hour},
				Deploy: ops.DeploySpec{Command: []string{"true"}}, Strategy: ops.Strategy{BatchSize: ops.BatchSize{Count: 5}, MaxParallel: 5},
			}
			if prev != "" {
				e.PromoteFrom = ops.UnitKey(svc, prev)
			}
			for t := range 10 {
				e.Targets = append(e.Targets, ops.Target{Name: fmt.Sprintf("%s-%s-%d", svc, stage, t)})
			}
			envs = append(envs, e)
			prev = stage
		}
	}
	client, _ := newBenchClient(tb, simURL)
	db, err := store.Open(ctx, filepath.Join(tb.TempDir(), "d.db"), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if err := db.SyncEnvironments(ctx, envs, "bench"); err != nil {
		tb.Fatal(err)
	}
	svc, err := ops.New(ops.Config{
		Environments: envs, CorrelationPrefix: "daytwo", MirrorCIChanges: true, Actor: "bench", Username: "daytwo",
		Policies: []ops.Policy{
			{Name: "promote", Environments: []string{"production"}, Expr: "update.version in env.promote_from.succeeded_versions", Action: ops.PolicyWarn},
			{Name: "no-debug", Expr: `!("log_level" in update.config) || update.config.log_level != "debug"`, Action: ops.PolicyBlock},
		},
	}, db, itsm.NewBridge(client))
	if err != nil {
		tb.Fatal(err)
	}
	if err := svc.SeedHistory(ctx, "bench", "0.9.0", "1.0.0"); err != nil {
		tb.Fatal(err)
	}
	w := &servicesIdle{client: client, svc: svc, engine: svc.NewEngine(ops.EngineOptions{Interval: time.Hour})}
	for range 2 { // the first cycle mirrors; the second settles the watermark's skew window
		if _, err := svc.SyncOnce(ctx); err != nil {
			tb.Fatalf("%d services: %v", n, err)
		}
		if _, err := svc.Compliance(ctx); err != nil {
			tb.Fatalf("%d services: compliance: %v", n, err)
		}
	}
	return w
}

// cycle is one idle daemon cycle (sync: mirror, approvals, deletions,
// outbox, updates; compliance; an engine pass): its requests and time.
func (w *servicesIdle) cycle() (int64, time.Duration) {
	before, start := w.client.Stats().Requests, time.Now()
	w.engine.RunOnce(context.Background())
	return w.client.Stats().Requests - before, time.Since(start)
}

// BenchmarkIdleCycleServices is issue 15's scale target: the daemon's idle
// cycle with 100 services × 3 environments × 10 targets against the same
// daemon with one service, in the same iteration, over one simulator
// holding 10k changes: requests per cycle (target ≤ 2× the one-service
// cycle's) and the 100-service cycle's work (target ≤ 50 ms).
func BenchmarkIdleCycleServices(b *testing.B) {
	sim := newBenchSim(b, 10_000)
	one := newServicesIdle(b, sim.URL(), 1)
	many := newServicesIdle(b, sim.URL(), 100)
	var reqOne, reqMany int64
	var tookOne, tookMany time.Duration
	n := 0
	for b.Loop() {
		r1, t1 := one.cycle()
		r100, t100 := many.cycle()
		reqOne, reqMany, tookOne, tookMany = reqOne+r1, reqMany+r100, tookOne+t1, tookMany+t100
		n++
	}
	b.ReportMetric(float64(reqOne)/float64(n), "requests/cycle-1")
	b.ReportMetric(float64(reqMany)/float64(n), "requests/cycle-100")
	b.ReportMetric(float64(reqMany)/float64(max(reqOne, 1)), "requests-ratio")
	b.ReportMetric(float64(tookOne.Microseconds())/1000/float64(n), "ms/cycle-1")
	b.ReportMetric(float64(tookMany.Microseconds())/1000/float64(n), "ms/cycle-100")
}
