package ops_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store"
)

// The runner against the real SQLite store and an in-memory fleet: what it
// journals, when it rolls back, how it stops, and what a process that lost
// its lease may still do (nothing).

// fleet is an in-memory set of targets: a deploy sets a target's version,
// a health check compares it with the request's, a probe reports it.
type fleet struct {
	mu       sync.Mutex
	versions map[string]string
	broken   map[string]bool // forward deploys to these land broken
	probeLie map[string]string
	deploys  []string // "target version" in order
	// onDeploy, if set, runs before each deploy (the test's hook into a
	// run in progress).
	onDeploy func(req ops.StepRequest)
}

func newFleet(targets []ops.Target, version string) *fleet {
	f := &fleet{versions: map[string]string{}, broken: map[string]bool{}}
	for _, t := range targets {
		f.versions[t.Name] = version
	}
	return f
}

func (f *fleet) Deploy(ctx context.Context, req ops.StepRequest, log ops.LogSink) error {
	if f.onDeploy != nil {
		f.onDeploy(req)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v := req.Version
	if f.broken[req.Target.Name] && !req.Rollback {
		v += "-broken"
	}
	f.versions[req.Target.Name] = v
	f.deploys = append(f.deploys, req.Target.Name+" "+req.Version)
	log(req.Target.Name, "stdout", "deployed "+v)
	return nil
}

func (f *fleet) Check(_ context.Context, req ops.StepRequest, _ ops.LogSink) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if got := f.versions[req.Target.Name]; got != req.Version {
		return "", fmt.Errorf("%s reports %s, want %s", req.Target.Name, got, req.Version)
	}
	return "version " + req.Version, nil
}

func (f *fleet) Probe(_ context.Context, _ string, t ops.Target) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v, ok := f.probeLie[t.Name]; ok {
		return v, nil
	}
	return f.versions[t.Name], nil
}

func (f *fleet) version(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.versions[name]
}

func (f *fleet) deployed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.deploys...)
}

type runWorld struct {
	db    *store.DB
	fleet *fleet
	env   ops.Environment
	path  string
}

func targetsNamed(names ...string) []ops.Target {
	out := make([]ops.Target, len(names))
	for i, n := range names {
		out[i] = ops.Target{Name: n}
	}
	return out
}

func newRunWorld(t *testing.T, probe bool) *runWorld {
	t.Helper()
	env := ops.Environment{
		Name: "fleet", Targets: targetsNamed("t1", "t2", "t3", "t4"),
		Deploy:   ops.DeploySpec{Command: []string{"deploy"}},
		Health:   []ops.HealthCheck{{Command: []string{"check"}}},
		Strategy: ops.Strategy{BatchSize: ops.BatchSize{Count: 2}, MaxParallel: 2},
	}
	if probe {
		env.VersionProbe = ops.VersionProbe{Command: []string{"probe"}}
	}
	w := &runWorld{env: env, fleet: newFleet(env.Targets, ""), path: filepath.Join(t.TempDir(), "d.db")}
	db, err := store.Open(context.Background(), w.path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.SyncEnvironments(context.Background(), []ops.Environment{env}, "test"); err != nil {
		t.Fatal(err)
	}
	w.db = db
	return w
}

func (w *runWorld) service(t *testing.T, holder string) *ops.Service {
	t.Helper()
	svc, err := ops.New(ops.Config{Environments: []ops.Environment{w.env}, Actor: "test"}, w.db, nil,
		ops.WithHolder(holder), ops.WithLeaseTTL(time.Minute),
		ops.WithExecutors(func(ops.Environment) (ops.Executor, ops.HealthChecker, error) { return w.fleet, w.fleet, nil }),
		ops.WithProbers(func(ops.Environment) (ops.VersionProber, error) { return w.fleet, nil }))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// release rolls version out and requires success.
func (w *runWorld) release(t *testing.T, svc *ops.Service, version string) ops.RunResult {
	t.Helper()
	p, err := svc.Propose(context.Background(), ops.ProposeRequest{Environment: "fleet", Version: version})
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.Run(context.Background(), ops.RunRequest{Update: p.Update.ID})
	if err != nil {
		t.Fatalf("run %s: %v", version, err)
	}
	return res
}

func (w *runWorld) steps(t *testing.T, runID string) []ops.StepRecord {
	t.Helper()
	steps, err := w.db.Steps(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	return steps
}

func TestRunJournalsEveryStepUnderItsEpoch(t *testing.T) {
	w := newRunWorld(t, true)
	svc := w.service(t, "host-a:1")
	res := w.release(t, svc, "1.0.0")
	if res.Run.State != ops.RunSucceeded || res.Update.State != ops.UpdateSucceeded {
		t.Fatalf("run %s, update %s", res.Run.State, res.Update.State)
	}
	steps := w.steps(t, res.Run.ID)
	if len(steps) != 8 { // deploy + health per target
		t.Fatalf("%d steps, want 8: %+v", len(steps), steps)
	}
	for _, s := range steps {
		if s.State != ops.StepSucceeded || s.Epoch != res.Run.Epoch || s.Holder != "host-a:1" || s.Epoch == 0 {
			t.Fatalf("step %+v: want succeeded under epoch %d by host-a:1", s, res.Run.Epoch)
		}
	}
	if ls, _ := w.db.Leases(context.Background()); len(ls) != 0 {
		t.Fatalf("lease kept after the run: %+v", ls)
	}
}

func TestFailedRolloutRollsBackEveryTouchedTargetAndVerifies(t *testing.T) {
	for name, probe := range map[string]bool{"with probe": true, "without probe": false} {
		t.Run(name, func(t *testing.T) {
			w := newRunWorld(t, probe)
			svc := w.service(t, "host-a:1")
			w.release(t, svc, "1.0.0")
			w.fleet.broken["t3"], w.fleet.broken["t4"] = true, true
			p, err := svc.Propose(context.Background(), ops.ProposeRequest{Environment: "fleet", Version: "2.0.0"})
			if err != nil {
				t.Fatal(err)
			}
			res, err := svc.Run(context.Background(), ops.RunRequest{Update: p.Update.ID})
			if !errors.Is(err, ops.ErrRunFailed) {
				t.Fatalf("err = %v, want ErrRunFailed", err)
			}
			if res.Run.State != ops.RunRolledBack || res.Run.Decision != ops.DecisionRollback {
				t.Fatalf("run %+v: want rolled back with the decision journaled", res.Run)
			}
			for _, n := range []string{"t1", "t2", "t3", "t4"} {
				if v := w.fleet.version(n); v != "1.0.0" {
					t.Errorf("%s on %s after the rollback", n, v)
				}
			}
			verified := 0
			for _, s := range w.steps(t, res.Run.ID) {
				if s.Step == ops.StepVerify && s.State == ops.StepSucceeded {
					verified++
				}
			}
			want, claim := 0, "NOT verified"
			if probe {
				want, claim = 4, "verified by its version probe"
			}
			if verified != want {
				t.Errorf("%d verify steps, want %d", verified, want)
			}
			if !strings.Contains(err.Error(), claim) {
				t.Errorf("summary %q does not say %q", err, claim)
			}
		})
	}
}

func TestRollbackThatDoesNotRestoreIsNotClaimed(t *testing.T) {
	w := newRunWorld(t, true)
	svc := w.service(t, "host-a:1")
	w.release(t, svc, "1.0.0")
	w.fleet.broken["t3"] = true
	// t1 passes its health checks after the rollback but its version probe
	// says it still runs the new release: only the probe can tell.
	w.fleet.probeLie = map[string]string{"t1": "2.0.0"}
	p, _ := svc.Propose(context.Background(), ops.ProposeRequest{Environment: "fleet", Version: "2.0.0"})
	res, err := svc.Run(context.Background(), ops.RunRequest{Update: p.Update.ID})
	if !errors.Is(err, ops.ErrRunFailed) {
		t.Fatalf("err = %v", err)
	}
	if res.Run.State != ops.RunFailed || res.Update.State != ops.UpdateFailed {
		t.Fatalf("run %s, update %s: a target the probe does not confirm must not be claimed restored", res.Run.State, res.Update.State)
	}
	if !strings.Contains(err.Error(), "t1: reports 2.0.0 after the rollback") {
		t.Fatalf("summary does not name t1's probe: %v", err)
	}
}

func TestLostLeaseStopsTheRunnerBeforeItsNextStep(t *testing.T) {
	w := newRunWorld(t, true)
	a := w.service(t, "host-a:1")
	w.release(t, a, "1.0.0")
	p, _ := a.Propose(context.Background(), ops.ProposeRequest{Environment: "fleet", Version: "2.0.0"})
	var once sync.Once
	w.fleet.onDeploy = func(req ops.StepRequest) {
		once.Do(func() {
			// Another process takes the lease over mid-run (as after a
			// pause past the lease): a new epoch.
			if err := w.db.Atomic(context.Background(), func(tx ops.Tx) error {
				_, err := tx.AcquireLease(context.Background(), ops.LeaseRequest{
					Environment: "fleet", Holder: "host-b:2",
					RunID: "stolen", TTL: time.Minute, DeadHolder: "host-a:1",
				})
				return err
			}); err != nil {
				t.Error(err)
			}
		})
	}
	before := len(w.fleet.deployed())
	res, err := a.Run(context.Background(), ops.RunRequest{Update: p.Update.ID})
	if !errors.Is(err, ops.ErrLeaseLost) {
		t.Fatalf("err = %v, want ErrLeaseLost", err)
	}
	// The in-flight deploys (batch 1) may finish; nothing after them may
	// start, and nothing may be journaled as finished under the old epoch.
	for _, d := range w.fleet.deployed()[before:] {
		if strings.HasPrefix(d, "t3 ") || strings.HasPrefix(d, "t4 ") {
			t.Fatalf("the fenced-off runner deployed %s", d)
		}
	}
	for _, s := range w.steps(t, res.Run.ID) {
		if s.State != ops.StepStarted {
			t.Fatalf("step %+v finished under a stale epoch", s)
		}
	}
	run, _ := w.db.GetRun(context.Background(), res.Run.ID)
	if run.State != ops.RunRunning {
		t.Fatalf("the fenced-off runner finished the run: %s", run.State)
	}
}

func TestStoppedRunIsResumedWithoutRedoingWhatIsDone(t *testing.T) {
	w := newRunWorld(t, true)
	a := w.service(t, "host-a:1")
	w.release(t, a, "1.0.0")
	p, _ := a.Propose(context.Background(), ops.ProposeRequest{Environment: "fleet", Version: "2.0.0"})
	ctx, cancel := context.WithCancel(context.Background())
	w.fleet.onDeploy = func(req ops.StepRequest) {
		if req.Target.Name == "t1" {
			cancel() // a signal while batch 1 deploys
		}
	}
	res, err := a.Run(ctx, ops.RunRequest{Update: p.Update.ID})
	if !errors.Is(err, ops.ErrRunInterrupted) {
		t.Fatalf("err = %v, want ErrRunInterrupted", err)
	}
	if res.Run.State != ops.RunRunning {
		t.Fatalf("stopped run is %s, want running (resumable)", res.Run.State)
	}
	w.fleet.onDeploy = nil
	first := map[string]bool{}
	all := w.fleet.deployed()
	for _, d := range all[4:] { // after the 1.0.0 release's four deploys
		first[strings.Fields(d)[0]] = true
	}
	before := len(all)
	b := w.service(t, "host-b:2")
	results, err := b.RecoverRuns(context.Background(), nil)
	if err != nil || len(results) != 1 {
		t.Fatalf("recover: %v, %+v", err, results)
	}
	if results[0].Run.State != ops.RunSucceeded || results[0].Run.Epoch <= res.Run.Epoch {
		t.Fatalf("recovered run %+v", results[0].Run)
	}
	// Whatever the stopped run deployed and checked is kept; every other
	// target is deployed once.
	again := map[string]int{}
	for _, d := range w.fleet.deployed()[before:] {
		again[strings.Fields(d)[0]]++
	}
	for _, n := range []string{"t1", "t2", "t3", "t4"} {
		want := 1
		if first[n] {
			want = 0
		}
		if again[n] != want {
			t.Errorf("%s deployed %d time(s) by the resumed run, want %d (stopped run deployed %v)", n, again[n], want, first)
		}
	}
}

func TestRecoveryContinuesADecidedRollback(t *testing.T) {
	w := newRunWorld(t, true)
	a := w.service(t, "host-a:1")
	w.release(t, a, "1.0.0")
	w.fleet.broken["t3"], w.fleet.broken["t4"] = true, true
	p, _ := a.Propose(context.Background(), ops.ProposeRequest{Environment: "fleet", Version: "2.0.0"})
	ctx, cancel := context.WithCancel(context.Background())
	// The runner is stopped (its lease lost) during its first rollback
	// step, as when it is killed there.
	w.fleet.onDeploy = func(req ops.StepRequest) {
		if req.Rollback {
			cancel()
			_ = w.db.Atomic(context.Background(), func(tx ops.Tx) error {
				_, err := tx.AcquireLease(context.Background(), ops.LeaseRequest{
					Environment: "fleet", Holder: "host-c:3",
					RunID: "x", TTL: time.Nanosecond, DeadHolder: "host-a:1",
				})
				return err
			})
		}
	}
	if _, err := a.Run(ctx, ops.RunRequest{Update: p.Update.ID}); !errors.Is(err, ops.ErrLeaseLost) {
		t.Fatalf("err = %v, want ErrLeaseLost", err)
	}
	w.fleet.onDeploy = nil
	w.fleet.broken = map[string]bool{} // the gate is open and the release would now pass: still no resume
	b := w.service(t, "host-b:2")
	results, err := b.RecoverRuns(context.Background(), nil)
	if err != nil || len(results) != 1 {
		t.Fatalf("recover: %v, %+v", err, results)
	}
	if results[0].Run.State != ops.RunRolledBack {
		t.Fatalf("recovered run %s, want rolled_back: a decided rollback is only continued", results[0].Run.State)
	}
	for _, n := range []string{"t1", "t2", "t3", "t4"} {
		if v := w.fleet.version(n); v != "1.0.0" {
			t.Errorf("%s on %s", n, v)
		}
	}
}

func TestTwoRunsOfOneUpdateRunOnce(t *testing.T) {
	w := newRunWorld(t, false)
	a, b := w.service(t, "host-a:1"), w.service(t, "host-b:2")
	w.release(t, a, "1.0.0")
	p, _ := a.Propose(context.Background(), ops.ProposeRequest{Environment: "fleet", Version: "2.0.0"})
	errs := make(chan error, 2)
	for _, s := range []*ops.Service{a, b} {
		go func() {
			_, err := s.Run(context.Background(), ops.RunRequest{Update: p.Update.ID})
			errs <- err
		}()
	}
	e1, e2 := <-errs, <-errs
	if (e1 == nil) == (e2 == nil) {
		t.Fatalf("errors %v and %v: want exactly one run", e1, e2)
	}
	if e := errors.Join(e1, e2); !errors.Is(e, ops.ErrBlocked) {
		t.Fatalf("the refused run: %v, want ErrBlocked", e)
	}
	runs, _ := w.db.Runs(context.Background(), p.Update.ID)
	if len(runs) != 1 {
		t.Fatalf("%d runs", len(runs))
	}
}
