package ops_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/daytwo/daytwo/ops"
)

// batchFleet puts a whole batch on a release in one call, as the Ansible
// executor does: it reports a pid for every target and a result per
// target (failing those in fail, leaving out those in silent).
type batchFleet struct {
	*fleet
	mu     sync.Mutex
	calls  []string // "deploy t1,t2" / "rollback t3,t4"
	fail   map[string]bool
	silent map[string]bool
}

var (
	_ ops.BatchExecutor   = (*batchFleet)(nil)
	_ ops.BatchRollbacker = (*batchFleet)(nil)
)

func (b *batchFleet) batch(ctx context.Context, what string, reqs []ops.StepRequest, log ops.LogSink, rollback bool) map[string]error {
	names := make([]string, len(reqs))
	for i, q := range reqs {
		names[i] = q.Target.Name
		if q.OnStart != nil {
			if err := q.OnStart(os.Getpid()); err != nil {
				return nil
			}
		}
	}
	b.mu.Lock()
	b.calls = append(b.calls, what+" "+strings.Join(names, ","))
	b.mu.Unlock()
	out := map[string]error{}
	for _, q := range reqs {
		if !rollback && b.silent[q.Target.Name] {
			continue
		}
		if !rollback && b.fail[q.Target.Name] {
			out[q.Target.Name] = fmt.Errorf("%s: unreachable", q.Target.Name)
			continue
		}
		if rollback {
			q.Version = q.PreviousVersion
			q.Rollback = true
		}
		out[q.Target.Name] = b.fleet.Deploy(ctx, q, log)
	}
	return out
}

func (b *batchFleet) DeployBatch(ctx context.Context, reqs []ops.StepRequest, log ops.LogSink) map[string]error {
	return b.batch(ctx, "deploy", reqs, log, false)
}

func (b *batchFleet) RollbackBatch(ctx context.Context, reqs []ops.StepRequest, log ops.LogSink) map[string]error {
	return b.batch(ctx, "rollback", reqs, log, true)
}

func TestBatchExecutorRollsOutAndBackPerBatch(t *testing.T) {
	tests := map[string]struct {
		fail, silent []string
		wantState    ops.RunState
		wantCalls    string
	}{
		"every batch succeeds": {wantState: ops.RunSucceeded, wantCalls: "deploy t1,t2|deploy t3,t4"},
		"a target fails in batch two: both batches roll back in one call": {
			fail: []string{"t4"}, wantState: ops.RunRolledBack,
			wantCalls: "deploy t1,t2|deploy t3,t4|rollback t1,t2,t3,t4",
		},
		"a target the executor does not report failed": {
			silent: []string{"t2"}, wantState: ops.RunRolledBack,
			wantCalls: "deploy t1,t2|rollback t1,t2",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w := newRunWorld(t, true)
			bf := &batchFleet{fleet: w.fleet, fail: map[string]bool{}, silent: map[string]bool{}}
			svc0 := w.service(t, "host:1")
			w.release(t, svc0, "1.0.0") // per-target executor: the starting release
			for _, n := range tc.fail {
				bf.fail[n] = true
			}
			for _, n := range tc.silent {
				bf.silent[n] = true
			}
			svc, err := ops.New(ops.Config{Environments: []ops.Environment{w.env}, Actor: "test"}, w.db, nil, ops.WithHolder("host:1"),
				ops.WithExecutors(func(ops.Environment) (ops.Executor, ops.HealthChecker, error) { return bf, w.fleet, nil }),
				ops.WithProbers(func(ops.Environment) (ops.VersionProber, error) { return w.fleet, nil }))
			if err != nil {
				t.Fatal(err)
			}
			var events []ops.RunEvent
			var mu sync.Mutex
			u := mustPropose(t, svc, ops.ProposeRequest{Environment: "fleet", Version: "2.0.0"})
			res, err := svc.Run(context.Background(), ops.RunRequest{Update: u.ID, Progress: func(ev ops.RunEvent) {
				mu.Lock()
				events = append(events, ev)
				mu.Unlock()
			}})
			if tc.wantState == ops.RunSucceeded && err != nil || tc.wantState != ops.RunSucceeded && !errors.Is(err, ops.ErrRunFailed) {
				t.Fatalf("run: %v", err)
			}
			if res.Run.State != tc.wantState {
				t.Fatalf("run state %s, want %s", res.Run.State, tc.wantState)
			}
			if got := strings.Join(bf.calls, "|"); got != tc.wantCalls {
				t.Fatalf("executor calls %q, want %q", got, tc.wantCalls)
			}
			want := "2.0.0"
			if tc.wantState != ops.RunSucceeded {
				want = "1.0.0"
			}
			for _, n := range []string{"t1", "t2", "t3", "t4"} {
				if v := w.fleet.version(n); v != want && !(v == "" && want == "1.0.0") {
					t.Errorf("%s runs %s, want %s", n, v, want)
				}
			}
			// Each target's deploy is journaled as its own step with the
			// batch program's pid.
			deploys := 0
			for _, st := range w.steps(t, res.Run.ID) {
				if st.Step == ops.StepDeploy {
					deploys++
					if st.PGID != os.Getpid() {
						t.Errorf("step %+v: pid not journaled", st)
					}
				}
			}
			if wantDeploys := 2 * strings.Count(tc.wantCalls, "deploy"); deploys != wantDeploys {
				t.Fatalf("%d deploy steps journaled, want %d", deploys, wantDeploys)
			}
			// Progress reports typed states; the run ends with its own.
			mu.Lock()
			defer mu.Unlock()
			if len(events) == 0 || events[len(events)-1].State != ops.RunEventState(tc.wantState) {
				t.Fatalf("last event %+v, want state %s", events[len(events)-1], tc.wantState)
			}
			p, err := svc.RunProgress(context.Background(), res.Run.ID)
			if err != nil || p.Batches != 2 || len(p.Targets) != 4 {
				t.Fatalf("progress %+v, %v", p, err)
			}
			if tc.wantState == ops.RunSucceeded && p.Done != 4 {
				t.Fatalf("progress done %d, want 4: %+v", p.Done, p.Targets)
			}
			if name == "a target the executor does not report failed" {
				for _, tp := range p.Targets {
					if tp.Batch == 2 && tp.State != ops.StepWaiting {
						t.Fatalf("batch 2 target %+v, want waiting", tp)
					}
				}
			}
		})
	}
}
