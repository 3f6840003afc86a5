package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// backupResult is `daytwo backup -o json`.
type backupResult struct {
	Database    string `json:"database"`
	Path        string `json:"path"`
	Bytes       int64  `json:"bytes"`
	AuditEvents int64  `json:"audit_events"`
	AuditHead   string `json:"audit_head,omitempty"`
}

// backuper is a store that can copy itself online (SQLite).
type backuper interface {
	Backup(ctx context.Context, path string) (int64, error)
	Path() string
}

func (a *app) backupCommand() *cobra.Command {
	var to, out string
	cmd := &cobra.Command{
		Use:   "backup --to FILE",
		Short: "Make a consistent online copy of the SQLite database",
		Long: `Copies the SQLite database to a new file with SQLite's VACUUM INTO: the copy
is one consistent snapshot, taken while daemons and consoles keep working.
The copy is integrity-checked and its audit chain verified before the
command succeeds; nothing is overwritten. Restore by stopping daytwo and
putting the copy in place of store.path.

A PostgreSQL store (store.url) is backed up with PostgreSQL's own tools
(pg_dump, or continuous archiving).`,
		Example: `  daytwo backup --to /var/backups/daytwo-$(date +%F).db
  daytwo backup --to copy.db -o json`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(cmd, &out); err != nil {
				return err
			}
			if to == "" {
				return usagef("backup: --to FILE is required")
			}
			ctx := cmd.Context()
			cfg, err := a.config()
			if err != nil {
				return err
			}
			if cfg.Store.URL != "" {
				return usagef("backup: the store is PostgreSQL (store.url); back it up with pg_dump or continuous archiving")
			}
			// Open the database as it is: no environments recorded, no
			// write taken, so a backup never waits for a busy writer.
			if _, err := os.Stat(cfg.Store.Path); errors.Is(err, fs.ErrNotExist) {
				return usagef("backup: there is no database at %s (store.path)", cfg.Store.Path)
			}
			st, err := a.openStore(ctx, "", cfg.Store.Path)
			if err != nil {
				return err
			}
			defer st.Close()
			b, ok := st.(backuper)
			if !ok {
				return fmt.Errorf("backup: this store cannot copy itself")
			}
			n, err := b.Backup(ctx, to)
			if err != nil {
				return err
			}
			// The copy must be a daytwo database whose chain verifies, or
			// it is not a backup.
			cp, err := a.openStore(ctx, "", to)
			if err != nil {
				return fmt.Errorf("backup: the copy %s does not open: %w", to, err)
			}
			v, err := cp.VerifyAudit(ctx)
			cp.Close()
			if err != nil {
				return fmt.Errorf("backup: verifying the copy's audit chain: %w", err)
			}
			if !v.OK {
				return fmt.Errorf("backup: the copy's audit chain does not verify at event %d: %s (the database itself has the same problem: run `daytwo audit verify`)", v.BadSeq, v.Problem)
			}
			abs, _ := filepath.Abs(to)
			res := backupResult{Database: b.Path(), Path: abs, Bytes: n, AuditEvents: v.Events, AuditHead: v.HeadHash}
			if out == outJSON {
				return a.printJSON(res)
			}
			fmt.Fprintf(a.stdout, "backed up %s to %s (%d bytes, %d audit events, head %s)\n", res.Database, res.Path, res.Bytes, res.AuditEvents, orDash(res.AuditHead))
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the new file to write (must not exist)")
	addOutputFlag(cmd, &out)
	return cmd
}
