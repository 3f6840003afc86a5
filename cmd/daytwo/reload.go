package main

// SIGHUP reloads the daemon's configuration (`sync --watch`): the file is
// read and checked again; a valid one is in force from the next cycle (a
// new environment, policies, freezes, ServiceNow settings, sync.interval),
// an invalid one is refused with a log line naming the file and key, and
// the previous configuration stays in force. A run in progress goes on
// under the configuration it started with and keeps its lease.

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/daytwo/daytwo/cmd/daytwo/internal/config"
	"github.com/daytwo/daytwo/itsm"
	"github.com/daytwo/daytwo/ops"
)

// configReloader builds a service for each reloaded configuration and
// hands it to the engine at its next cycle.
type configReloader struct {
	a    *app
	opts []itsm.Option
	// intervalFlag, listenFlag: --interval or --listen was given and wins
	// over the file.
	intervalFlag, listenFlag bool
	// current is the configuration in force (the last valid one).
	current *config.Config
	pending atomic.Pointer[reloadedConfig]
}

type reloadedConfig struct {
	svc      *ops.Service
	interval time.Duration
}

// watchSIGHUP reloads on every SIGHUP until ctx ends.
func (r *configReloader) watchSIGHUP(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				r.reload(ctx)
			}
		}
	}()
}

// reload reads the configuration again and, when it is valid, queues a
// service built on it for the engine's next cycle.
func (r *configReloader) reload(ctx context.Context) {
	log := r.a.log()
	file := r.current.File
	refuse := func(err error) {
		log.Error("SIGHUP: configuration not reloaded; the previous configuration stays in force", "file", file, "err", err.Error())
	}
	cfg, err := r.a.loadConfig()
	if err != nil {
		refuse(err)
		return
	}
	if cfg.File == "" {
		refuse(r.a.noConfigError())
		return
	}
	file = cfg.File
	interval := cfg.Sync.Interval
	if r.intervalFlag {
		interval = 0 // --interval stays
	} else if interval < time.Second {
		refuse(&config.Error{File: cfg.File, Problems: []config.Problem{{Key: "sync.interval", Message: fmt.Sprintf("%s: at least 1s", interval)}}})
		return
	}
	svc, err := r.a.serviceFor(ctx, cfg, r.opts...)
	if err != nil {
		refuse(err)
		return
	}
	if r.a.db.ReadOnly() == "" {
		if err := r.a.db.SyncEnvironments(ctx, cfg.Environments, r.a.actor()); err != nil {
			refuse(err)
			return
		}
	}
	old := r.current
	var restart []string
	if cfg.Store.Path != old.Store.Path || cfg.Store.URL != old.Store.URL {
		restart = append(restart, "store")
	}
	if cfg.Sync.Listen != old.Sync.Listen && !r.listenFlag {
		restart = append(restart, "sync.listen")
	}
	if cfg.Console.ReadOnly != old.Console.ReadOnly {
		restart = append(restart, "console.read_only")
	}
	if r.listenFlag {
		cfg.Sync.Listen = old.Sync.Listen
	}
	r.current = cfg
	r.pending.Store(&reloadedConfig{svc: svc, interval: interval})
	names := make([]string, len(cfg.Environments))
	for i, e := range cfg.Environments {
		names[i] = e.Name
	}
	attrs := []any{"file", cfg.File, "environments", names}
	if interval > 0 {
		attrs = append(attrs, "interval", interval.String())
	}
	if len(restart) > 0 {
		attrs = append(attrs, "needs_restart", restart)
	}
	log.Info("SIGHUP: configuration reloaded; in force from the next cycle (a run in progress finishes under the previous one)", attrs...)
}

// next hands the engine the service of the newest reload, once.
func (r *configReloader) next() (*ops.Service, time.Duration) {
	p := r.pending.Swap(nil)
	if p == nil {
		return nil, 0
	}
	return p.svc, p.interval
}
