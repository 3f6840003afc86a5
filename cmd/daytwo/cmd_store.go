package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/cmd/daytwo/internal/config"
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
		RunE: a.configRunE(&out, nil, func(ctx context.Context, cfg *config.Config, _ []string) error {
			return a.runStoreCopy(ctx, cfg, from, to, out)
		}),
	}
	cmd.Flags().StringVar(&from, "from", "", "the SQLite database: sqlite:///path/daytwo.db (or a path)")
	cmd.Flags().StringVar(&to, "to", "", "the empty PostgreSQL database: postgres://user@host:5432/db (default store.url)")
	addOutputFlag(cmd, &out)
	return cmd
}

// runStoreCopy checks the two databases named and copies (wire_store.go
// does the copy: it is store administration, not the domain).
func (a *app) runStoreCopy(ctx context.Context, cfg *config.Config, from, to, out string) error {
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
	res, err := a.copyStore(ctx, path, to)
	if err != nil {
		return err
	}
	v := res.Audit
	if out == outJSON {
		if err := a.printJSON(res); err != nil {
			return err
		}
	} else {
		tables := slices.Sorted(maps.Keys(res.Rows))
		fmt.Fprintf(a.stdout, "copied %s to %s\n", res.From, res.To)
		if err := printList(a, outTable, tables, []string{"TABLE", "ROWS"}, func(t string) []string {
			return []string{t, strconv.FormatInt(res.Rows[t], 10)}
		}); err != nil {
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
	if !isPGURL(raw) {
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
