package ops_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// recorder is an EngineObserver that keeps what it is told.
type recorder struct {
	mu      sync.Mutex
	cycles  int
	errs    []error
	passes  [][]ops.RunResult
	events  int
	alerts  int
	started int
}

func (r *recorder) CycleStarted() { r.mu.Lock(); r.started++; r.mu.Unlock() }
func (r *recorder) Cycle(_ ops.SyncReport, _ time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cycles++
	if err != nil {
		r.errs = append(r.errs, err)
	}
}

func (r *recorder) Compliance(a []ops.PolicyAlert, _ error) {
	r.mu.Lock()
	r.alerts += len(a)
	r.mu.Unlock()
}
func (r *recorder) RunEvent(ops.RunEvent) { r.mu.Lock(); r.events++; r.mu.Unlock() }
func (r *recorder) Pass(res []ops.RunResult, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.passes = append(r.passes, res)
}

func TestEngineRunOnceDeliversSyncsAndRunsWhatTheGateLetsThrough(t *testing.T) {
	w := newGatedWorld(t, func(e *ops.Environment, _ *ops.Config) { e.AutoRun = true })
	p, err := w.svc.Propose(context.Background(), ops.ProposeRequest{Environment: "production", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	eng := w.svc.NewEngine(ops.EngineOptions{Interval: time.Second, Observer: rec})
	eng.RunOnce(context.Background()) // delivers the create; nothing approved yet
	u, _ := w.svc.GetUpdate(context.Background(), p.Update.ID)
	if u.ChangeNumber == "" {
		t.Fatalf("the engine's cycle did not raise the change: %+v", u)
	}
	if len(rec.passes) != 1 || len(rec.passes[0]) != 0 {
		t.Fatalf("passes %+v: nothing may run before approval", rec.passes)
	}
	w.cs.approve(u.ChangeNumber)
	eng.RunOnce(context.Background())
	u, _ = w.svc.GetUpdate(context.Background(), p.Update.ID)
	if u.State != ops.UpdateSucceeded {
		t.Fatalf("after approval and a cycle: %s", u.State)
	}
	if rec.cycles != 2 || rec.started != 2 || len(rec.errs) != 0 || rec.events == 0 {
		t.Fatalf("observer: %+v", rec)
	}
}

func TestEngineMirrorOnlyWritesAndRunsNothing(t *testing.T) {
	w := newGatedWorld(t, func(e *ops.Environment, _ *ops.Config) { e.AutoRun = true })
	if _, err := w.svc.Propose(context.Background(), ops.ProposeRequest{Environment: "production", Version: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	w.svc.Wait()
	calls := len(w.cs.calls)
	rec := &recorder{}
	w.svc.NewEngine(ops.EngineOptions{Interval: time.Second, MirrorOnly: true, Observer: rec}).RunOnce(context.Background())
	if len(w.cs.calls) != calls {
		t.Fatalf("a read-only engine wrote to the change system: %v", w.cs.calls[calls:])
	}
	if rec.cycles != 1 || len(rec.passes) != 0 {
		t.Fatalf("observer %+v: one mirror cycle, no engine pass", rec)
	}
}

func TestEngineRunStopsWithItsContext(t *testing.T) {
	w := newGatedWorld(t)
	ctx, cancel := context.WithCancel(context.Background())
	rec := &recorder{}
	done := make(chan struct{})
	go func() {
		w.svc.NewEngine(ops.EngineOptions{Interval: 10 * time.Millisecond, Observer: rec}).Run(ctx)
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec.mu.Lock()
		n := rec.cycles
		rec.mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d cycles", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was canceled")
	}
}
