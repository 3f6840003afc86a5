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

// The gated flow on the real SQLite store with the in-memory change system:
// propose → outbox → change raised → approval mirrored → gate → run →
// evidence delivered; and the outbox's ordering, retries and refusals.

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type gatedWorld struct {
	db    *store.DB
	svc   *ops.Service
	cs    *fakeChanges
	fleet *fleet
	clk   *clock
	env   ops.Environment
}

func newGatedWorld(t *testing.T, mutate ...func(*ops.Environment, *ops.Config)) *gatedWorld {
	t.Helper()
	clk := &clock{now: time.Now().UTC().Truncate(time.Second)}
	env := ops.Environment{
		Name: "production", RequiresChange: true, Targets: targetsNamed("p1", "p2"),
		Change:       ops.ChangeDefaults{Type: "normal", CmdbCI: "checkout", AssignmentGroup: "Platform Ops", Window: 2 * time.Hour},
		Deploy:       ops.DeploySpec{Command: []string{"deploy"}},
		Health:       []ops.HealthCheck{{Command: []string{"check"}}},
		VersionProbe: ops.VersionProbe{Command: []string{"probe"}},
		Strategy:     ops.Strategy{BatchSize: ops.BatchSize{Count: 1}, MaxParallel: 1},
	}
	cfg := ops.Config{CorrelationPrefix: "daytwo", Actor: "test", Username: "daytwo"}
	for _, m := range mutate {
		m(&env, &cfg)
	}
	cfg.Environments = []ops.Environment{env}
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "d.db"), store.Options{Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.SyncEnvironments(context.Background(), cfg.Environments, "test"); err != nil {
		t.Fatal(err)
	}
	w := &gatedWorld{db: db, cs: newFakeChanges(clk.Now), fleet: newFleet(env.Targets, ""), clk: clk, env: env}
	w.svc, err = ops.New(cfg, db, w.cs, ops.WithClock(clk.Now), ops.WithHolder("host:1"),
		ops.WithExecutors(func(ops.Environment) (ops.Executor, ops.HealthChecker, error) { return w.fleet, w.fleet, nil }),
		ops.WithProbers(func(ops.Environment) (ops.VersionProber, error) { return w.fleet, nil }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.svc.Wait)
	return w
}

// deliverAll delivers the outbox until it is empty, letting backoffs fall
// due; it fails on a refused write unless allowed.
func (w *gatedWorld) deliverAll(t *testing.T) {
	t.Helper()
	w.svc.Wait()
	for round := 0; ; round++ {
		if _, err := w.svc.DeliverOutbox(context.Background()); err != nil {
			t.Fatal(err)
		}
		left, err := w.db.ListOutbox(context.Background(), ops.OutboxFilter{States: []ops.OutboxState{ops.OutboxPending}})
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			return
		}
		if round > 50 {
			t.Fatalf("outbox not drained: %+v", left[0])
		}
		w.clk.Advance(10 * time.Minute)
	}
}

func (w *gatedWorld) sync(t *testing.T) ops.SyncReport {
	t.Helper()
	rep, err := w.svc.SyncOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// proposeApproved takes version through propose, change, approval and
// mirror, and returns the approved update.
func (w *gatedWorld) proposeApproved(t *testing.T, version string) ops.Update {
	t.Helper()
	p, err := w.svc.Propose(context.Background(), ops.ProposeRequest{Environment: w.env.Name, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	w.deliverAll(t)
	u, err := w.svc.GetUpdate(context.Background(), p.Update.ID)
	if err != nil || u.ChangeNumber == "" {
		t.Fatalf("after delivery: %+v, %v", u, err)
	}
	g, err := w.svc.Gate(context.Background(), u)
	if err != nil || g.Open || !g.Pending {
		t.Fatalf("gate before approval: %+v, %v", g, err)
	}
	w.cs.approve(u.ChangeNumber)
	w.sync(t)
	u, _ = w.svc.GetUpdate(context.Background(), u.ID)
	if g, _ := w.svc.Gate(context.Background(), u); !g.Open {
		t.Fatalf("gate after approval: %s", g.Summary())
	}
	return u
}

func TestGatedFlowEndsWithEvidenceAndAClosedChange(t *testing.T) {
	w := newGatedWorld(t)
	u := w.proposeApproved(t, "1.0.0")
	res, err := w.svc.Run(context.Background(), ops.RunRequest{Update: u.ID})
	if err != nil || res.Run.State != ops.RunSucceeded {
		t.Fatalf("run: %+v, %v", res.Run, err)
	}
	w.deliverAll(t)
	ch := w.cs.change(u.ChangeNumber)
	if ch.State != ops.ChangeClosed || ch.CloseCode != "successful" {
		t.Fatalf("change %+v", ch)
	}
	notes := w.cs.workNotes(u.ChangeNumber)
	for _, want := range []string{"started by test", "batch 1/2", "batch 2/2", "daytwo audit anchor"} {
		n := 0
		for _, note := range notes {
			if strings.Contains(note, want) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d work notes with %q, want 1: %q", n, want, notes)
		}
	}
	if len(w.cs.files[ch.SysID]) != 1 {
		t.Errorf("attachments %v, want the run log", w.cs.files[ch.SysID])
	}
}

func TestGatedRollbackOpensOneIncident(t *testing.T) {
	w := newGatedWorld(t)
	first := w.proposeApproved(t, "1.0.0")
	if _, err := w.svc.Run(context.Background(), ops.RunRequest{Update: first.ID}); err != nil {
		t.Fatal(err)
	}
	w.deliverAll(t)
	w.fleet.broken["p2"] = true
	u := w.proposeApproved(t, "2.0.0")
	if _, err := w.svc.Run(context.Background(), ops.RunRequest{Update: u.ID}); !errors.Is(err, ops.ErrRunFailed) {
		t.Fatalf("err = %v", err)
	}
	w.deliverAll(t)
	if ch := w.cs.change(u.ChangeNumber); ch.CloseCode != "unsuccessful" {
		t.Fatalf("close code %q", ch.CloseCode)
	}
	if len(w.cs.incidents) != 1 {
		t.Fatalf("%d incidents", len(w.cs.incidents))
	}
	for _, n := range []string{"p1", "p2"} {
		if v := w.fleet.version(n); v != "1.0.0" {
			t.Errorf("%s on %s", n, v)
		}
	}
}

func TestGateReasons(t *testing.T) {
	tests := map[string]struct {
		mutate func(*ops.Environment, *ops.Config)
		code   string
	}{
		"freeze": {mutate: func(_ *ops.Environment, c *ops.Config) {
			c.Freezes = []ops.Freeze{{Name: "year-end", Start: time.Now().Add(-time.Hour), End: time.Now().Add(24 * time.Hour)}}
		}, code: ops.GateFreeze},
		"blocking policy": {mutate: func(_ *ops.Environment, c *ops.Config) {
			c.Policies = []ops.Policy{{Name: "no-two", Environments: []string{"production"}, Expr: `!update.version.startsWith("2.")`, Action: ops.PolicyBlock}}
		}, code: ops.GatePolicy},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w := newGatedWorld(t)
			u := w.proposeApproved(t, "2.0.0")
			// The same store and change system, a configuration that now
			// blocks.
			env, cfg := w.env, ops.Config{CorrelationPrefix: "daytwo", Actor: "test", Username: "daytwo"}
			tc.mutate(&env, &cfg)
			cfg.Environments = []ops.Environment{env}
			svc, err := ops.New(cfg, w.db, w.cs, ops.WithClock(w.clk.Now))
			if err != nil {
				t.Fatal(err)
			}
			g, err := svc.Gate(context.Background(), u)
			if err != nil {
				t.Fatal(err)
			}
			if g.Open || len(g.Reasons) == 0 || g.Reasons[0].Code != tc.code {
				t.Fatalf("gate %+v, want closed by %s", g, tc.code)
			}
			if _, err := svc.Run(context.Background(), ops.RunRequest{Update: u.ID}); !errors.Is(err, ops.ErrBlocked) {
				t.Fatalf("run: %v, want ErrBlocked", err)
			}
		})
	}
}

func TestGateOutsideTheWindowSaysWhenItOpens(t *testing.T) {
	w := newGatedWorld(t)
	start := w.clk.Now().Add(3 * time.Hour)
	p, err := w.svc.Propose(context.Background(), ops.ProposeRequest{Environment: "production", Version: "1.0.0", Start: start, End: start.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	w.deliverAll(t)
	u, _ := w.svc.GetUpdate(context.Background(), p.Update.ID)
	w.cs.approve(u.ChangeNumber)
	w.sync(t)
	u, _ = w.svc.GetUpdate(context.Background(), u.ID)
	g, err := w.svc.Gate(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	if g.Open || !g.NextOpen.Equal(start) {
		t.Fatalf("gate %+v, want closed until %s", g, start)
	}
	w.clk.Advance(3*time.Hour + time.Minute)
	if g, _ := w.svc.Gate(context.Background(), u); !g.Open {
		t.Fatalf("inside the window: %s", g.Summary())
	}
}

func TestOutboxRetriesUnavailableAndKeepsOrder(t *testing.T) {
	w := newGatedWorld(t)
	w.cs.failNext, w.cs.failErr = 3, fmt.Errorf("fake: 503: %w", ops.ErrUnavailable)
	p, err := w.svc.Propose(context.Background(), ops.ProposeRequest{Environment: "production", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := w.svc.DeliverOutbox(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Delivered != 0 || st.Retrying == 0 {
		t.Fatalf("first pass %+v: the create must wait for its retry", st)
	}
	items, _ := w.db.ListOutbox(context.Background(), ops.OutboxFilter{Key: p.Update.ID})
	if len(items) == 0 || items[0].Attempts == 0 || items[0].LastError == "" {
		t.Fatalf("retrying item %+v", items)
	}
	w.deliverAll(t)
	var order []string
	for _, c := range w.cs.calls {
		if c != "create" || len(order) == 0 || order[len(order)-1] != "create" {
			order = append(order, c)
		}
	}
	if len(order) < 2 || order[0] != "create" || order[1] != "request_approval" {
		t.Fatalf("calls %v: the change must be created before its approval is requested", w.cs.calls)
	}
	u, _ := w.svc.GetUpdate(context.Background(), p.Update.ID)
	if u.ChangeNumber == "" {
		t.Fatal("no change after the retries")
	}
}

func TestOutboxRefusalIsVisibleAndDoesNotRetry(t *testing.T) {
	w := newGatedWorld(t)
	w.cs.refuse["create"] = true
	if _, err := w.svc.Propose(context.Background(), ops.ProposeRequest{Environment: "production", Version: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	st, err := w.svc.DeliverOutbox(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Failed != 1 {
		t.Fatalf("stats %+v, want the create refused", st)
	}
	calls := len(w.cs.calls)
	w.clk.Advance(time.Hour)
	if _, err := w.svc.DeliverOutbox(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(w.cs.calls) != calls {
		t.Fatalf("a refused write was sent again: %v", w.cs.calls)
	}
	failed, _ := w.db.ListOutbox(context.Background(), ops.OutboxFilter{States: []ops.OutboxState{ops.OutboxFailed}})
	if len(failed) != 1 || !strings.Contains(failed[0].LastError, "not allowed") {
		t.Fatalf("failed items %+v", failed)
	}
}

func TestAutoRunRunsOnlyWhenTheGateOpens(t *testing.T) {
	w := newGatedWorld(t, func(e *ops.Environment, _ *ops.Config) { e.AutoRun = true })
	p, err := w.svc.Propose(context.Background(), ops.ProposeRequest{Environment: "production", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	w.deliverAll(t)
	if res, err := w.svc.AutoRun(context.Background(), nil); err != nil || len(res) != 0 {
		t.Fatalf("auto-run before approval: %+v, %v", res, err)
	}
	u, _ := w.svc.GetUpdate(context.Background(), p.Update.ID)
	w.cs.approve(u.ChangeNumber)
	w.sync(t)
	res, err := w.svc.AutoRun(context.Background(), nil)
	if err != nil || len(res) != 1 || res[0].Run.State != ops.RunSucceeded {
		t.Fatalf("auto-run after approval: %+v, %v", res, err)
	}
}
