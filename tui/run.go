package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/styles"
)

// Options configures the console.
type Options struct {
	// ReadOnly disables every action that changes ServiceNow or an
	// environment.
	ReadOnly bool
	// Instance is the ServiceNow instance URL shown on the connection
	// screen.
	Instance string
	// Refresh is how often the screens re-read the store (default 1s), so
	// a `daytwo sync --watch` daemon on the same database shows up live.
	Refresh time.Duration
	// PingEvery is how many refreshes pass between ServiceNow pings
	// (default 10); 0 uses the default, a negative value never pings.
	PingEvery int
	// Timeout bounds each store read and each short action (default 30s).
	Timeout time.Duration
	// FlashFor is how long the flash line stays (default 6s).
	FlashFor time.Duration
	// Clock renders elapsed times (default time.Now; fixed in tests).
	Clock func() time.Time
	// Logger receives debug logs; it must not write to the terminal.
	Logger *slog.Logger
	// LogFile, when Logger is nil, is where Run writes debug logs.
	LogFile string
	// Styles overrides the theme's styles.
	Styles *styles.Styles
	// Theme is console.theme: auto (default), dark, light or none;
	// NO_COLOR in the environment forces none.
	Theme string
	// Banner is shown on the connection screen and in the help: what the
	// demo printed before the console hid it behind the alternate screen
	// (the config path, how to run CLI commands against it).
	Banner string
	// Clipboard receives the OSC 52 sequence y copies with (default
	// stderr: the terminal, outside the renderer's stdout).
	Clipboard io.Writer
}

func (o *Options) defaults() {
	if o.Refresh <= 0 {
		o.Refresh = time.Second
	}
	if o.PingEvery == 0 {
		o.PingEvery = 10
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.FlashFor <= 0 {
		o.FlashFor = 6 * time.Second
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Styles == nil {
		o.Styles = styles.Default()
		if name, err := styles.Resolve(o.Theme, os.Getenv("NO_COLOR")); err == nil {
			o.Styles, _ = styles.Named(name)
		}
	}
	if o.Clipboard == nil {
		o.Clipboard = os.Stderr
	}
}

// Run runs the console in the alternate screen until the operator quits.
func Run(ctx context.Context, svc *ops.Service, opts Options, progOpts ...tea.ProgramOption) error {
	if _, err := styles.Resolve(opts.Theme, ""); err != nil {
		return fmt.Errorf("tui: %w", err)
	}
	if opts.Logger == nil && opts.LogFile != "" {
		f, err := os.OpenFile(opts.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("tui: log file: %w", err)
		}
		defer f.Close()
		opts.Logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := New(ctx, svc, opts)
	p := tea.NewProgram(m, append([]tea.ProgramOption{tea.WithAltScreen(), tea.WithContext(ctx)}, progOpts...)...)
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil // the caller's context ended: a normal way out
	}
	return err
}
