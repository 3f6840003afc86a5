package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui"
	"github.com/daytwo/daytwo/tui/common"
)

func (a *app) tuiCommand() *cobra.Command {
	var engine bool
	cmd := &cobra.Command{
		Use:   "tui",
		Short: "Open the operator console",
		Long: `Open the operator console: environments, updates and changes, plan details,
the live run monitor, the audit chain and the ServiceNow connection, all from
the keyboard (press ? for help). It reads the local store, so it opens instantly
and keeps working while ServiceNow is slow or down, and it shows what a
` + "`daytwo sync --watch`" + ` daemon on the same database does, live.

--engine also runs the daemon's loop inside the console (sync, auto-runs,
compliance), for when no daemon is running.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.openConsole(cmd.Context(), engine)
		},
	}
	cmd.Flags().BoolVar(&engine, "engine", false, "also run the daemon's sync and engine loop in this process")
	return cmd
}

func (a *app) runConsole(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unknown command %q for daytwo", args[0])
	}
	return a.openConsole(cmd.Context(), false)
}

// openConsole loads the configuration, sends logs to console.log_file (or
// nowhere: never to the terminal), and runs the console.
func (a *app) openConsole(ctx context.Context, engine bool) error {
	if !isatty.IsTerminal(os.Stdout.Fd()) && !isatty.IsCygwinTerminal(os.Stdout.Fd()) {
		return usagef("the console needs a terminal; for scripts use the commands (daytwo --help)")
	}
	cfg, err := a.config()
	if err != nil {
		return err
	}
	if a.logger == nil {
		var w io.Writer = io.Discard
		if cfg.Console.LogFile != "" {
			f, err := os.OpenFile(cfg.Console.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
			if err != nil {
				return fmt.Errorf("console.log_file: %w", err)
			}
			defer f.Close()
			w = f
		}
		a.logger = slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	svc, err := a.service(ctx)
	if err != nil {
		return err
	}
	svc.WarmSearch() // the search index builds in the background
	if engine {
		ectx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			a.engineLoop(ectx, svc, newSyncMetrics(), cfg.Sync.Interval, a.logger)
		}()
		defer func() { cancel(); <-done }()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	feed, _ := svc.ChangeFeed()
	return a.console(ctx, svc, "", liveRefresh(ctx, feed)...)
}

// liveRefresh makes the console re-read its screens as soon as the store
// announces a commit by any process (ops.ChangeFeed: PostgreSQL's
// LISTEN/NOTIFY), at most every 100ms, besides its 1s polling; nothing when
// the store has no feed (SQLite).
func liveRefresh(ctx context.Context, feed ops.ChangeFeed) []tea.ProgramOption {
	if feed == nil {
		return nil
	}
	var prog *tea.Program
	running := make(chan struct{}) // closed by the first message through the event loop
	var once sync.Once
	go func() {
		select {
		case <-running:
		case <-ctx.Done():
			return
		}
		for range feed.Changes(ctx) {
			prog.Send(common.RefreshMsg{})
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return []tea.ProgramOption{
		func(p *tea.Program) { prog = p },
		tea.WithFilter(func(_ tea.Model, msg tea.Msg) tea.Msg { once.Do(func() { close(running) }); return msg }),
	}
}

// console runs the operator console on svc until the operator quits;
// banner (the demo's) is shown on its connection screen and help.
func (a *app) console(ctx context.Context, svc *ops.Service, banner string, progOpts ...tea.ProgramOption) error {
	cfg, err := a.config()
	if err != nil {
		return err
	}
	return tui.Run(ctx, svc, tui.Options{
		ReadOnly: cfg.Console.ReadOnly,
		Instance: cfg.ServiceNow.Instance,
		Refresh:  time.Second,
		Logger:   a.logger,
		Theme:    cfg.Console.Theme,
		Banner:   banner,
	}, progOpts...)
}
