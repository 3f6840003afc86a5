package main

// The daemon (`sync --watch`, and the engine inside `tui --engine` and
// `demo`): its engine loop, Prometheus metrics, /healthz and /readyz, and
// its heartbeats in the store.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/daytwo/daytwo/itsm"
	"github.com/daytwo/daytwo/ops"
)

// syncMetrics are the daemon's Prometheus metrics, on a registry of its own.
type syncMetrics struct {
	reg       *prometheus.Registry
	cycles    *prometheus.CounterVec
	duration  prometheus.Histogram
	apiCalls  *prometheus.CounterVec
	outbox    *prometheus.GaugeVec
	changes   *prometheus.GaugeVec
	snUp      prometheus.Gauge
	runs      *prometheus.CounterVec
	alerts    *prometheus.GaugeVec
	lastOK    atomic.Int64 // unix seconds of the last successful cycle
	lastCycle atomic.Int64 // unix seconds of the last cycle start
	lastErr   atomic.Pointer[string]
}

func newSyncMetrics() *syncMetrics {
	m := &syncMetrics{
		reg: prometheus.NewRegistry(),
		cycles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daytwo_sync_cycles_total",
			Help: "Sync cycles by result (ok or error).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "daytwo_sync_cycle_duration_seconds",
			Help: "Duration of sync cycles.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		apiCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daytwo_servicenow_requests_total",
			Help: "HTTP requests to ServiceNow by method and status (0: no answer).",
		}, []string{"method", "status"}),
		outbox: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "daytwo_outbox_items",
			Help: "Outbox items not yet delivered, by state (pending, failed).",
		}, []string{"state"}),
		changes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "daytwo_changes",
			Help: "Active mirrored change requests by state.",
		}, []string{"state"}),
		snUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "daytwo_servicenow_up",
			Help: "1 when the last sync cycle reached ServiceNow.",
		}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "daytwo_runs_total",
			Help: "Runs finished by this daemon, by environment and result (succeeded, rolled_back, failed).",
		}, []string{"environment", "result"}),
		alerts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "daytwo_policy_alerts",
			Help: "Open continuous-compliance alerts (1 per failing policy), by environment, policy and action.",
		}, []string{"environment", "policy", "action"}),
	}
	m.reg.MustRegister(m.cycles, m.duration, m.apiCalls, m.outbox, m.changes, m.snUp, m.runs, m.alerts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, s := range []string{"pending", "failed"} {
		m.outbox.WithLabelValues(s)
	}
	return m
}

func (m *syncMetrics) observeRequest(r itsm.RequestInfo) {
	m.apiCalls.WithLabelValues(r.Method, strconv.Itoa(r.Status)).Inc()
}

func (m *syncMetrics) refreshGauges(ctx context.Context, svc *ops.Service) {
	changes, outbox, err := svc.MirrorCounts(ctx)
	if err != nil {
		return
	}
	m.changes.Reset()
	for k, v := range changes {
		m.changes.WithLabelValues(k).Set(float64(v))
	}
	for _, s := range []string{"pending", "failed"} {
		m.outbox.WithLabelValues(s).Set(float64(outbox[s]))
	}
}

// daemon runs sync cycles until ctx is canceled.
func (a *app) daemon(ctx context.Context, svc *ops.Service, m *syncMetrics, interval time.Duration, listen string) error {
	log := a.log()
	var srv *http.Server
	if listen != "" {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return fmt.Errorf("sync: listen on %s (sync.listen): %w", listen, err)
		}
		srv = &http.Server{Handler: a.withAlertmanager(a.daemonMux(svc, m, interval), svc), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server stopped", "err", err)
			}
		}()
		log.Info("daemon listening", "addr", ln.Addr().String(), "paths", "/metrics /healthz /readyz")
	}
	log.Info("daemon started", "interval", interval.String(), "instance", a.cfg.ServiceNow.Instance, "db", a.storeLocation(), "read_only", a.mirrorOnly)
	// Heartbeat at least three times a lease TTL: other hosts take a
	// daemon silent for a lease TTL as dead and release its outbox claims.
	beatEvery := interval
	if ttl := a.cfg.Sync.LeaseTTL / 3; ttl > 0 && ttl < beatEvery {
		beatEvery = ttl
	}
	heartbeats := a.startHeartbeats(ctx, svc, beatEvery)
	a.engineLoop(ctx, svc, m, interval, log)
	<-heartbeats
	log.Info("daemon stopped")
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	return nil
}

// engineLoop runs the engine (ops.Engine: sync, compliance, auto-run) until
// ctx is canceled, shared by the daemon, `tui --engine` and `daytwo demo`;
// what it does lands in the daemon's metrics and log.
func (a *app) engineLoop(ctx context.Context, svc *ops.Service, m *syncMetrics, interval time.Duration, log *slog.Logger) {
	opts := ops.EngineOptions{
		Interval: interval, MirrorOnly: a.mirrorOnly,
		Observer: &engineObserver{ctx: ctx, svc: svc, m: m, log: log},
	}
	if a.reloader != nil {
		a.reloader.watchSIGHUP(ctx)
		opts.Reload = a.reloader.next
	}
	eng := svc.NewEngine(opts)
	eng.Run(ctx)
	log.Info("daemon stopping; a running rollout stopped at its next step boundary and stays resumable (a rollback in progress finished)")
}

// engineObserver turns what the engine does into metrics and log lines.
type engineObserver struct {
	ctx context.Context
	svc *ops.Service
	m   *syncMetrics
	log *slog.Logger
}

func (o *engineObserver) CycleStarted() { o.m.lastCycle.Store(time.Now().Unix()) }

func (o *engineObserver) Cycle(rep ops.SyncReport, took time.Duration, err error) {
	o.m.duration.Observe(took.Seconds())
	o.m.refreshGauges(context.WithoutCancel(o.ctx), o.svc)
	if err != nil {
		o.m.cycles.WithLabelValues("error").Inc()
		o.m.snUp.Set(0)
		msg := err.Error()
		o.m.lastErr.Store(&msg)
		o.log.Warn("sync cycle failed; the mirror keeps serving and writes stay queued", "err", err)
		return
	}
	o.m.cycles.WithLabelValues("ok").Inc()
	o.m.snUp.Set(1)
	o.m.lastOK.Store(time.Now().Unix())
	o.m.lastErr.Store(nil)
	lvl := slog.LevelDebug
	if rep.Fetched > 0 || rep.Transitions > 0 || rep.Outbox != (ops.DeliveryStats{}) {
		lvl = slog.LevelInfo
	}
	o.log.Log(o.ctx, lvl, "sync cycle", "fetched", rep.Fetched, "upserted", rep.Upserted, "deleted", rep.Deleted,
		"approvals", rep.Approvals, "updates_moved", rep.Transitions, "outbox_delivered", rep.Outbox.Delivered,
		"outbox_retrying", rep.Outbox.Retrying, "outbox_refused", rep.Outbox.Failed, "requests", rep.Requests,
		"duration_ms", rep.Duration.Milliseconds())
}

func (o *engineObserver) Compliance(alerts []ops.PolicyAlert, err error) {
	if err != nil {
		o.log.Warn("compliance check failed", "err", err)
		return
	}
	o.m.alerts.Reset()
	for _, al := range alerts {
		o.m.alerts.WithLabelValues(al.Environment, al.Policy, al.Action).Set(1)
	}
}

func (o *engineObserver) RunEvent(ev ops.RunEvent) {
	o.log.Info("run", "run", ev.RunID, "batch", ev.Batch, "target", ev.Target, "step", ev.Step, "state", ev.State, "msg", ev.Message)
}

func (o *engineObserver) Pass(results []ops.RunResult, err error) {
	for _, r := range results {
		if r.Run.ID != "" && r.Run.State != ops.RunRunning {
			o.m.runs.WithLabelValues(r.Run.Environment, string(r.Run.State)).Inc()
		}
	}
	if err != nil && o.ctx.Err() == nil {
		o.log.Warn("engine pass failed", "err", err)
	}
}

func (a *app) daemonMux(svc *ops.Service, m *syncMetrics, interval time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		// Alive: the loop started a cycle recently.
		if last := m.lastCycle.Load(); last > 0 && time.Since(time.Unix(last, 0)) > 3*interval+time.Minute {
			http.Error(w, "sync loop stuck", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := svc.PingStore(ctx); err != nil {
			http.Error(w, "store: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if m.lastOK.Load() == 0 || m.lastErr.Load() != nil {
			msg := "servicenow: no successful sync yet"
			if e := m.lastErr.Load(); e != nil {
				msg = "servicenow: " + *e
			}
			http.Error(w, msg, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
		writeHolds(ctx, w, svc)
	})
	return mux
}

// daemonID names this process as ops names it in leases and runs
// (host:pid, ops' default holder).
func daemonID() ops.Daemon {
	host, _ := os.Hostname()
	return ops.Daemon{ID: fmt.Sprintf("%s:%d", host, os.Getpid()), Host: host, PID: os.Getpid(), Version: version}
}

// startHeartbeats records this daemon in the store now and every interval
// until ctx ends, then removes it; the channel closes once it is removed.
func (a *app) startHeartbeats(ctx context.Context, svc *ops.Service, interval time.Duration) <-chan struct{} {
	done := make(chan struct{})
	me := daemonID()
	log := a.log()
	beat := func() {
		if err := svc.Heartbeat(ctx, me); err != nil && ctx.Err() == nil {
			log.Warn("heartbeat not recorded", "err", err)
		}
	}
	beat()
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				if err := svc.DaemonStopped(sctx, me.ID); err != nil {
					log.Warn("daemon not removed from the store", "err", err)
				}
				return
			case <-t.C:
				beat()
			}
		}
	}()
	return done
}

// writeHolds says, for /readyz, which environments' leases this daemon
// holds (it is the active runner there).
func writeHolds(ctx context.Context, w io.Writer, svc *ops.Service) {
	leases, err := svc.Leases(ctx)
	if err != nil {
		fmt.Fprintf(w, "holds: unknown (%v)\n", err)
		return
	}
	me := daemonID().ID
	n := 0
	for _, l := range leases {
		if l.Holder == me {
			fmt.Fprintf(w, "holds: %s (run %s, epoch %d, until %s)\n", l.Environment, orDash(l.RunID), l.Epoch, l.ExpiresAt.UTC().Format(time.RFC3339))
			n++
		}
	}
	if n == 0 {
		fmt.Fprintf(w, "holds: nothing (daemon %s)\n", me)
	}
}
