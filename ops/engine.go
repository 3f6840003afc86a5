package ops

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// EngineObserver is told what the engine does, for metrics and logs; the
// CLI keeps its Prometheus collectors behind it. Calls come from the
// engine's goroutines, one cycle or pass at a time each.
type EngineObserver interface {
	// CycleStarted is called as each cycle starts.
	CycleStarted()
	// Cycle reports one sync cycle (a mirror in read-only mode).
	Cycle(rep SyncReport, took time.Duration, err error)
	// Compliance reports the open continuous-compliance findings.
	Compliance(alerts []PolicyAlert, err error)
	// RunEvent reports progress of a run the engine started or recovered.
	RunEvent(ev RunEvent)
	// Pass reports the runs one engine pass recovered or started.
	Pass(results []RunResult, err error)
}

// EngineOptions configure the engine.
type EngineOptions struct {
	// Interval between cycles.
	Interval time.Duration
	// MirrorOnly (read-only mode) mirrors ServiceNow and checks compliance,
	// but delivers no queued write and runs or recovers nothing.
	MirrorOnly bool
	// Observer, if set, is told about every cycle, pass and run event.
	Observer EngineObserver
	// Reload, if set, is asked before each cycle of Run for a new service
	// (a reloaded configuration) and interval; a nil service keeps the
	// current one, an interval <= 0 the current interval. An engine pass
	// in progress finishes on the service it started with (its run and
	// lease are not touched); the next pass starts on the new one.
	Reload func() (*Service, time.Duration)
}

// Engine is the daemon's loop: every interval a sync cycle (mirror,
// approvals, outbox), continuous compliance, and — beside the loop, so a
// long rollout never stalls mirroring — an engine pass (recover runs a dead
// process left, then auto-run what the gate lets through), one pass at a
// time. `sync --watch`, `tui --engine` and `demo` all run it.
type Engine struct {
	svc  *Service
	opts EngineOptions
	busy atomic.Bool
	wg   sync.WaitGroup
	// retired are the services Reload replaced, waited for at the end.
	retired []*Service
}

// NewEngine builds the engine over the service.
func (s *Service) NewEngine(opts EngineOptions) *Engine {
	if opts.Interval <= 0 {
		opts.Interval = 30 * time.Second
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	return &Engine{svc: s, opts: opts}
}

// RunOnce runs one cycle and one engine pass, waiting for both.
func (e *Engine) RunOnce(ctx context.Context) {
	e.cycle(ctx)
	if !e.opts.MirrorOnly {
		e.pass(ctx, e.svc)
	}
	e.svc.Wait()
}

// Run runs cycles until ctx is canceled. It returns once the engine pass in
// progress has stopped (a rollout at its next step boundary, resumable; a
// rollback finished) and queued background deliveries have ended.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.opts.Interval)
	defer t.Stop()
	for {
		if e.opts.Reload != nil {
			if svc, interval := e.opts.Reload(); svc != nil || interval > 0 {
				if svc != nil {
					e.retired = append(e.retired, e.svc)
					e.svc = svc
				}
				if interval > 0 && interval != e.opts.Interval {
					e.opts.Interval = interval
					t.Reset(interval)
				}
			}
		}
		e.cycle(ctx)
		if !e.opts.MirrorOnly && e.busy.CompareAndSwap(false, true) {
			e.wg.Add(1)
			go func(svc *Service) {
				defer e.wg.Done()
				defer e.busy.Store(false)
				e.pass(ctx, svc)
			}(e.svc)
		}
		select {
		case <-ctx.Done():
			e.wg.Wait()
			for _, s := range e.retired {
				s.Wait()
			}
			e.svc.Wait()
			return
		case <-t.C:
		}
	}
}

func (e *Engine) cycle(ctx context.Context) {
	e.opts.Observer.CycleStarted()
	start := e.svc.clock()
	var (
		rep SyncReport
		err error
	)
	if e.opts.MirrorOnly {
		rep, err = e.svc.MirrorOnce(ctx)
	} else {
		rep, err = e.svc.SyncOnce(ctx)
	}
	if ctx.Err() != nil {
		return
	}
	e.opts.Observer.Cycle(rep, e.svc.clock().Sub(start), err)
	alerts, err := e.svc.Compliance(ctx)
	if ctx.Err() != nil {
		return
	}
	e.opts.Observer.Compliance(alerts, err)
}

func (e *Engine) pass(ctx context.Context, svc *Service) {
	results, err := svc.AutoRun(ctx, e.opts.Observer.RunEvent)
	// Verification windows after the close a process left (verify_after_close.go).
	more, verr := svc.AfterCloseWindows(ctx, e.opts.Observer.RunEvent)
	e.opts.Observer.Pass(append(results, more...), errors.Join(err, verr))
}

type nopObserver struct{}

func (nopObserver) CycleStarted()                          {}
func (nopObserver) Cycle(SyncReport, time.Duration, error) {}
func (nopObserver) Compliance([]PolicyAlert, error)        {}
func (nopObserver) RunEvent(RunEvent)                      {}
func (nopObserver) Pass([]RunResult, error)                {}
