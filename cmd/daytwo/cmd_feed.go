package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/daytwo/daytwo/ops"
)

// feedOptions are `feed`'s flags (and `sync --watch --feed`'s).
type feedOptions struct {
	follow  bool
	cursor  string // file keeping the feed's position
	from    string // start | now, without a cursor file
	streams []string
	env     string
	poll    time.Duration
}

var feedStreams = []string{ops.FeedRunLog, ops.FeedAudit, ops.FeedAlert}

func (a *app) feedCommand() *cobra.Command {
	opts := &feedOptions{}
	cmd := &cobra.Command{
		Use:   "feed",
		Short: "Write run logs, audit events and alerts as JSON lines for a log pipeline (Vector, Fluent Bit)",
		Long: `Write daytwo's log feed on standard output, one JSON object per line: every
run log line (deploy, rollback and check output, daytwo's progress), every
audit event and every alert, in time order, each labelled with service,
environment, unit, run, change and update.

--follow keeps writing as records commit, from any daytwo process on the
same store (several daemons on PostgreSQL feed one stream). --cursor FILE
keeps the position in FILE: a pipeline that restarts the command goes on
where it stopped and loses nothing; a record can repeat after a restart
(never be missed), and its "id" is unique, so the pipeline can drop the
repeat. Without a cursor the feed starts at the beginning (--from start) or
at the end (--from now).

The daemon writes the same feed on its own standard output with
` + "`sync --watch --feed`" + ` (its JSON logs stay on standard error).`,
		Args: exactArgs(),
		RunE: a.runE(nil, func(*cobra.Command, []string) error { return opts.check() }, func(ctx context.Context, svc *ops.Service, _ []string) error {
			f, err := a.newFeed(ctx, svc, opts)
			if err != nil {
				return err
			}
			return a.writeFeed(ctx, f, opts, a.stdout, a.stderrLogger())
		}),
	}
	fl := cmd.Flags()
	fl.BoolVarP(&opts.follow, "follow", "f", false, "keep writing records as they commit (until Ctrl-C or SIGTERM)")
	opts.addFlags(fl, "")
	fl.StringVar(&opts.from, "from", "start", "without a cursor file: start at the beginning (start) or at the end (now)")
	return cmd
}

// addFlags adds the flags `feed` and `sync --watch` share; prefix names
// them for the daemon ("feed-").
func (o *feedOptions) addFlags(f *pflag.FlagSet, prefix string) {
	f.StringVar(&o.cursor, prefix+"cursor", "", "keep the feed's position in this file (created if missing)")
	f.StringSliceVar(&o.streams, prefix+"stream", nil, "only these streams: "+strings.Join(feedStreams, ", ")+" (default all)")
	f.StringVar(&o.env, prefix+"env", "", "only this environment (a stage, or a unit's key); --service narrows to a service")
	f.DurationVar(&o.poll, prefix+"poll", time.Second, "with --follow: how often to look for new records")
}

func (o *feedOptions) check() error {
	for _, s := range o.streams {
		if !slices.Contains(feedStreams, s) {
			return usagef("--stream %q: want one of %s", s, strings.Join(feedStreams, ", "))
		}
	}
	if o.from != "" && o.from != "start" && o.from != "now" {
		return usagef("--from %q: want start or now", o.from)
	}
	if o.poll < 10*time.Millisecond {
		return usagef("--poll %s: at least 10ms", o.poll)
	}
	return nil
}

// newFeed opens the feed where the cursor file says, or per --from.
func (a *app) newFeed(ctx context.Context, svc *ops.Service, o *feedOptions) (*ops.LogFeed, error) {
	filter := ops.FeedFilter{Service: a.serviceFlag, Environment: o.env, Streams: o.streams}
	if filter.Service != "" && !slices.Contains(svc.ServiceNames(), filter.Service) {
		return nil, usagef("--service %q: no such service (configured: %s)", filter.Service, strings.Join(svc.ServiceNames(), ", "))
	}
	if filter.Environment != "" && !knownEnvironment(svc.Environments(), filter.Environment) {
		return nil, usagef("--env %q: no environment or unit of that name", filter.Environment)
	}
	var cur ops.FeedCursor
	found, err := readFeedCursor(o.cursor, &cur)
	if err != nil {
		return nil, err
	}
	if !found && o.from == "now" {
		if cur, err = svc.FeedHead(ctx); err != nil {
			return nil, err
		}
	}
	return svc.NewLogFeed(cur, filter), nil
}

func knownEnvironment(envs []ops.Environment, name string) bool {
	return slices.ContainsFunc(envs, func(e ops.Environment) bool { return e.Name == name || e.StageName() == name })
}

// writeFeed writes the feed's records as JSON lines on w, saving the
// cursor after each batch is written; following, until ctx ends. A store
// that fails while following is retried (reported on log once per kind of
// failure); the position is kept.
func (a *app) writeFeed(ctx context.Context, f *ops.LogFeed, o *feedOptions, w io.Writer, log *slog.Logger) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	var lastErr string
	// The first pass saves the cursor even if nothing moved: a feed that
	// starts now and restarts goes on from where it started.
	var saved *ops.FeedCursor
	for {
		recs, err := f.Next(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && !o.follow:
			return err
		case err != nil:
			if err.Error() != lastErr {
				log.Error("log feed: reading the store failed; retrying", "err", err)
				lastErr = err.Error()
			}
		default:
			lastErr = ""
			for _, r := range recs {
				if err := enc.Encode(r); err != nil {
					return fmt.Errorf("log feed: write: %w", err)
				}
			}
			if err := bw.Flush(); err != nil {
				return fmt.Errorf("log feed: write: %w", err)
			}
			if cur := f.Cursor(); saved == nil || cur != *saved {
				if err := writeFeedCursor(o.cursor, cur); err != nil {
					return err
				}
				saved = &cur
			}
			if !o.follow && len(recs) == 0 {
				return nil
			}
			if !o.follow {
				continue // the next batch at once: reading to the end
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.poll):
		}
	}
}

// stderrLogger is the logger of a command that writes data on stdout.
func (a *app) stderrLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(a.stderr, nil))
}

func readFeedCursor(path string, c *ops.FeedCursor) (bool, error) {
	if path == "" {
		return false, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("feed cursor %s: %w", path, err)
	}
	if err := json.Unmarshal(b, c); err != nil || c.AuditSeq < 0 || c.LogID < 0 {
		return false, usagef("feed cursor %s: not a daytwo feed cursor (want {\"audit_seq\":N,\"log_id\":N}): %s", path, strings.TrimSpace(string(b)))
	}
	return true, nil
}

// writeFeedCursor replaces the cursor file atomically: a crash leaves the
// previous position or the new one, never a torn file.
func writeFeedCursor(path string, c ops.FeedCursor) error {
	if path == "" {
		return nil
	}
	b, _ := json.Marshal(c)
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("feed cursor %s: %w", path, err)
	}
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("feed cursor %s: %w", path, err)
	}
	return nil
}
