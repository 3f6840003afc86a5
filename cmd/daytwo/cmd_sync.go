package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/cmd/daytwo/internal/config"
	"github.com/daytwo/daytwo/itsm"
	"github.com/daytwo/daytwo/ops"
)

// syncOptions are `sync`'s flags.
type syncOptions struct {
	once, watch bool
	out         string
	// interval and listen override sync.interval and sync.listen when set.
	interval               time.Duration
	listen                 string
	intervalSet, listenSet bool
	// feed writes the log feed on stdout while the daemon runs.
	feed     bool
	feedOpts feedOptions
}

func (a *app) syncCommand() *cobra.Command {
	opts := &syncOptions{}
	cmd := &cobra.Command{
		Use:   "sync (--once | --watch)",
		Short: "Mirror ServiceNow and deliver the outbox: one cycle, or continuously as a daemon",
		Long: `--once runs one cycle and prints what it did: outbox writes delivered, change
requests fetched and stored, approvals, deletions, and updates that moved.

--watch is the headless daemon: a cycle every --interval (sync.interval), with
/metrics (Prometheus), /healthz and /readyz on --listen (sync.listen), JSON logs
on stderr, and a graceful stop on SIGTERM or Ctrl-C. --feed also writes the
log feed (see daytwo feed) as JSON lines on stdout. SIGHUP reloads the
configuration: a valid file is in force from the next cycle (a run in progress
finishes under the previous one and keeps its lease); an invalid one is refused
in the log, naming the file and key, and the previous one stays.`,
		Args: exactArgs(),
		RunE: a.configRunE(&opts.out, func(cmd *cobra.Command, _ []string) error {
			if opts.once == opts.watch {
				return usagef("sync: give exactly one of --once or --watch")
			}
			if opts.watch && a.logLevel == "" {
				a.logLevel = "info"
			}
			if opts.feed && !opts.watch {
				return usagef("sync: --feed needs --watch (use daytwo feed for a one-off copy)")
			}
			if err := opts.feedOpts.check(); err != nil {
				return err
			}
			opts.intervalSet, opts.listenSet = cmd.Flags().Changed("interval"), cmd.Flags().Changed("listen")
			return nil
		}, func(ctx context.Context, cfg *config.Config, _ []string) error {
			if cfg.ServiceNow.Instance == "" {
				return usagef("sync: no ServiceNow instance configured (servicenow.instance, DAYTWO_SN_INSTANCE or --instance)")
			}
			if opts.once {
				// One cycle serves no metrics: no registry to build.
				svc, err := a.service(ctx)
				if err != nil {
					return err
				}
				return a.runSyncOnce(ctx, svc, opts.out)
			}
			m := newSyncMetrics()
			itsmOpts := []itsm.Option{itsm.WithRequestHook(m.observeRequest)}
			svc, err := a.service(ctx, itsmOpts...)
			if err != nil {
				return err
			}
			if opts.intervalSet {
				cfg.Sync.Interval = opts.interval
			}
			if opts.listenSet {
				cfg.Sync.Listen = opts.listen
			}
			if cfg.Sync.Interval < time.Second {
				return usagef("--interval %s: at least 1s", cfg.Sync.Interval)
			}
			a.reloader = &configReloader{a: a, opts: itsmOpts, intervalFlag: opts.intervalSet, listenFlag: opts.listenSet, current: cfg}
			if opts.feed {
				// From now on, unless a cursor file says where it stopped.
				opts.feedOpts.follow, opts.feedOpts.from = true, "now"
				feed, err := a.newFeed(ctx, svc, &opts.feedOpts)
				if err != nil {
					return err
				}
				done := make(chan error, 1)
				go func() { done <- a.writeFeed(ctx, feed, &opts.feedOpts, a.stdout, a.log()) }()
				err = a.daemon(ctx, svc, m, cfg.Sync.Interval, cfg.Sync.Listen)
				if ferr := <-done; err == nil {
					err = ferr
				}
				return err
			}
			return a.daemon(ctx, svc, m, cfg.Sync.Interval, cfg.Sync.Listen)
		}),
	}
	addOutputFlag(cmd, &opts.out)
	f := cmd.Flags()
	f.BoolVar(&opts.once, "once", false, "run one cycle and exit")
	f.BoolVar(&opts.watch, "watch", false, "run continuously (the daemon)")
	f.DurationVar(&opts.interval, "interval", 0, "cycle interval (default sync.interval)")
	f.StringVar(&opts.listen, "listen", "", "address for /metrics, /healthz, /readyz (default sync.listen; empty config value disables)")
	f.BoolVar(&opts.feed, "feed", false, "with --watch: write the log feed (run logs, audit events, alerts) as JSON lines on stdout")
	opts.feedOpts.addFlags(f, "feed-")
	return cmd
}

// runSyncOnce runs one cycle (in read-only mode: mirrors only) and says
// what it did.
func (a *app) runSyncOnce(ctx context.Context, svc *ops.Service, out string) error {
	sync := svc.SyncOnce
	if a.mirrorOnly {
		sync = svc.MirrorOnce // read-only: no write reaches ServiceNow
	}
	rep, err := sync(ctx)
	if err != nil {
		return err
	}
	if out == outJSON {
		sum := syncSummary(rep)
		sum.ReadOnly = a.mirrorOnly
		return a.printJSON(sum)
	}
	if a.mirrorOnly {
		fmt.Fprintln(a.stdout, "sync: read-only: mirrored only; queued writes stay queued")
	}
	fmt.Fprintf(a.stdout, "sync: fetched %d, upserted %d (%d unchanged), deleted %d, approvals %d, updates moved %d; outbox delivered %d, retrying %d, refused %d; %d requests in %s\n",
		rep.Fetched, rep.Upserted, rep.Unchanged, rep.Deleted, rep.Approvals, rep.Transitions,
		rep.Outbox.Delivered, rep.Outbox.Retrying, rep.Outbox.Failed, rep.Requests, rep.Duration.Round(time.Millisecond))
	return nil
}

type syncSummaryJSON struct {
	Fetched     int               `json:"fetched"`
	Upserted    int               `json:"upserted"`
	Unchanged   int               `json:"unchanged"`
	Deleted     int               `json:"deleted"`
	Approvals   int               `json:"approvals"`
	Transitions int               `json:"updates_moved"`
	Outbox      ops.DeliveryStats `json:"outbox"`
	Requests    int               `json:"requests"`
	Duration    time.Duration     `json:"duration"`
	ReadOnly    bool              `json:"read_only,omitempty"`
}

func syncSummary(r ops.SyncReport) syncSummaryJSON {
	return syncSummaryJSON{
		Fetched: r.Fetched, Upserted: r.Upserted, Unchanged: r.Unchanged, Deleted: r.Deleted,
		Approvals: r.Approvals, Transitions: r.Transitions, Outbox: r.Outbox, Requests: r.Requests, Duration: r.Duration.Round(time.Millisecond),
	}
}
