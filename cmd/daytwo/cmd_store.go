package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/store"
	"github.com/daytwo/daytwo/store/pg"
)

func (a *app) storeCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "store", Short: "The database: move it to PostgreSQL"}
	cmd.AddCommand(a.storeCopyCommand())
	return cmd
}

func (a *app) storeCopyCommand() *cobra.Command {
	var from, to, out string
	cmd := &cobra.Command{
		Use:   "copy --from sqlite:///path/daytwo.db --to postgres://user@host/db",
		Short: "Copy a whole SQLite database into an empty PostgreSQL database",
		Long: `Copies every row of a daytwo SQLite database — history, runs and their
journal, the outbox, the ServiceNow mirror and the audit chain — into an empty
PostgreSQL database, in one transaction, then verifies the audit chain on the
copy. Stop the daemons writing to the SQLite file first. The PostgreSQL
password comes from DAYTWO_DB_PASSWORD, PGPASSWORD or store.password_file,
never the URL. --to defaults to store.url.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			ctx := cmd.Context()
			cfg, err := a.config()
			if err != nil {
				return err
			}
			path, err := sqlitePath(from)
			if err != nil {
				return err
			}
			if to == "" {
				to = cfg.Store.URL
			}
			if err := checkPGURL(to); err != nil {
				return err
			}
			if _, err := os.Stat(path); err != nil {
				return usagef("--from %s: %v", from, errors.Unwrap(err))
			}
			// Open once through the store: a database from a newer daytwo is
			// refused, an older one brought up to date.
			src, err := store.Open(ctx, path, store.Options{Logger: a.log()})
			if err != nil {
				return err
			}
			src.Close()
			if store.SchemaVersion() != pg.SchemaVersion() {
				return fmt.Errorf("store copy: this daytwo's SQLite schema is version %d and its PostgreSQL schema %d", store.SchemaVersion(), pg.SchemaVersion())
			}
			raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
			if err != nil {
				return fmt.Errorf("store copy: %s: %w", path, err)
			}
			defer raw.Close()
			dst, err := pg.Open(ctx, to, pg.Options{Logger: a.log(), Password: cfg.Secrets.DBPassword, AuditKey: cfg.Secrets.AuditKey})
			if err != nil {
				return err
			}
			defer dst.Close()
			counts, err := dst.ImportSQLite(ctx, raw)
			if err != nil {
				return err
			}
			v, err := dst.VerifyAudit(ctx)
			if err != nil {
				return err
			}
			if out == outJSON {
				if err := a.printJSON(map[string]any{"from": path, "to": dst.URL(), "rows": counts, "audit": v}); err != nil {
					return err
				}
			} else {
				tables := make([]string, 0, len(counts))
				for t := range counts {
					tables = append(tables, t)
				}
				sort.Strings(tables)
				rows := [][]string{{"TABLE", "ROWS"}}
				for _, t := range tables {
					rows = append(rows, []string{t, strconv.FormatInt(counts[t], 10)})
				}
				fmt.Fprintf(a.stdout, "copied %s to %s\n", path, dst.URL())
				if err := a.table(rows); err != nil {
					return err
				}
				if v.OK {
					fmt.Fprintf(a.stdout, "audit chain verifies on the copy: %d events, head %s\n", v.Events, short(v.HeadHash))
				}
			}
			if !v.OK {
				fmt.Fprintf(a.stdout, "audit chain does NOT verify on the copy: event %d: %s\n", v.BadSeq, v.Problem)
				return silentError{code: exitError}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the SQLite database: sqlite:///path/daytwo.db (or a path)")
	cmd.Flags().StringVar(&to, "to", "", "the empty PostgreSQL database: postgres://user@host:5432/db (default store.url)")
	addOutputFlag(cmd, &out)
	return cmd
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// sqlitePath reads --from: sqlite:///abs/path, sqlite://rel/path or a path.
func sqlitePath(from string) (string, error) {
	p := from
	if rest, ok := strings.CutPrefix(from, "sqlite://"); ok {
		p = rest
	} else if strings.Contains(from, "://") {
		return "", usagef("--from %q: want sqlite:///path/daytwo.db", from)
	}
	if p == "" {
		return "", usagef("--from: want sqlite:///path/daytwo.db")
	}
	return p, nil
}

// checkPGURL refuses a missing URL, another scheme, or one with a password
// (without repeating it).
func checkPGURL(raw string) error {
	if raw == "" {
		return usagef("--to: want postgres://user@host:5432/db (or set store.url)")
	}
	if !pg.IsURL(raw) {
		return usagef("--to: want a postgres:// URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return usagef("--to: not a URL")
	}
	if _, has := u.User.Password(); has || u.Query().Has("password") {
		return usagef("--to: the URL must not contain a password: set DAYTWO_DB_PASSWORD (or PGPASSWORD) or store.password_file")
	}
	return nil
}

// daemonID names this process as ops names it in leases and runs
// (host:pid, ops' default holder).
func daemonID() store.Daemon {
	host, _ := os.Hostname()
	return store.Daemon{ID: fmt.Sprintf("%s:%d", host, os.Getpid()), Host: host, PID: os.Getpid(), Version: version}
}

// startHeartbeats records this daemon in the store now and every interval
// until ctx ends, then removes it; the channel closes once it is removed.
func (a *app) startHeartbeats(ctx context.Context, db appStore, interval time.Duration) <-chan struct{} {
	done := make(chan struct{})
	me := daemonID()
	log := a.log()
	beat := func() {
		if err := db.Heartbeat(ctx, me); err != nil && ctx.Err() == nil {
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
				if err := db.DaemonStopped(sctx, me.ID); err != nil {
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
func writeHolds(ctx context.Context, w io.Writer, db appStore) {
	leases, err := db.Leases(ctx)
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
