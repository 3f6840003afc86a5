package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/itsm"
	"github.com/daytwo/daytwo/ops"
)

func (a *app) syncCommand() *cobra.Command {
	var (
		once, watch bool
		interval    time.Duration
		listen      string
		out         string
	)
	cmd := &cobra.Command{
		Use:   "sync (--once | --watch)",
		Short: "Mirror ServiceNow and deliver the outbox: one cycle, or continuously as a daemon",
		Long: `--once runs one cycle and prints what it did: outbox writes delivered, change
requests fetched and stored, approvals, deletions, and updates that moved.

--watch is the headless daemon: a cycle every --interval (sync.interval), with
/metrics (Prometheus), /healthz and /readyz on --listen (sync.listen), JSON logs
on stderr, and a graceful stop on SIGTERM or Ctrl-C.`,
		Args: exactArgs(),
		RunE: a.preamble(&out, nil, func(cmd *cobra.Command, args []string) error {
			if once == watch {
				return usagef("sync: give exactly one of --once or --watch")
			}
			if watch && a.logLevel == "" {
				a.logLevel = "info"
			}
			cfg, err := a.config()
			if err != nil {
				return err
			}
			if cfg.ServiceNow.Instance == "" {
				return usagef("sync: no ServiceNow instance configured (servicenow.instance, DAYTWO_SN_INSTANCE or --instance)")
			}
			m := newSyncMetrics()
			svc, err := a.service(cmd.Context(), itsm.WithRequestHook(m.observeRequest))
			if err != nil {
				return err
			}
			if once {
				sync := svc.SyncOnce
				if a.mirrorOnly {
					sync = svc.MirrorOnce // read-only: no write reaches ServiceNow
				}
				rep, err := sync(cmd.Context())
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
			if cmd.Flags().Changed("interval") {
				cfg.Sync.Interval = interval
			}
			if cmd.Flags().Changed("listen") {
				cfg.Sync.Listen = listen
			}
			if cfg.Sync.Interval < time.Second {
				return usagef("--interval %s: at least 1s", cfg.Sync.Interval)
			}
			return a.daemon(cmd.Context(), svc, m, cfg.Sync.Interval, cfg.Sync.Listen)
		}),
	}
	addOutputFlag(cmd, &out)
	f := cmd.Flags()
	f.BoolVar(&once, "once", false, "run one cycle and exit")
	f.BoolVar(&watch, "watch", false, "run continuously (the daemon)")
	f.DurationVar(&interval, "interval", 0, "cycle interval (default sync.interval)")
	f.StringVar(&listen, "listen", "", "address for /metrics, /healthz, /readyz (default sync.listen; empty config value disables)")
	return cmd
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
	return syncSummaryJSON{Fetched: r.Fetched, Upserted: r.Upserted, Unchanged: r.Unchanged, Deleted: r.Deleted,
		Approvals: r.Approvals, Transitions: r.Transitions, Outbox: r.Outbox, Requests: r.Requests, Duration: r.Duration.Round(time.Millisecond)}
}
