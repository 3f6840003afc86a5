package main

// The store's wiring: the only file of the command that knows the store
// packages (TestOnlyWiringImportsTheStore). It opens the configured
// database for the service, and does the store administration that is
// about the database itself rather than the domain: `store copy` and the
// schema version.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store"
	"github.com/daytwo/daytwo/store/pg"
)

// appStore is what the wiring needs of a store: the SQLite store
// (store.DB) or the PostgreSQL one (pg.DB). Commands never see it: they
// read through the service (ops/readmodels.go), which finds the store's
// extra capabilities (summary, daemons, anchors, counts, ping) by the
// interfaces ops declares; the checks below keep both stores offering them.
type appStore interface {
	ops.Store
	ops.StatusReader
	ops.DaemonRegistry
	ops.AnchorVerifier
	ops.MirrorCounter
	ops.Pinger
	Path() string
	Close() error
	ReadOnly() string
	Explain(err error) error
	SyncEnvironments(ctx context.Context, envs []ops.Environment, actor string) error
}

var (
	_ appStore = (*store.DB)(nil)
	_ appStore = (*pg.DB)(nil)
)

// Capabilities one engine has: SQLite keeps the console's search index in
// memory, PostgreSQL announces commits (LISTEN/NOTIFY). The service finds
// them by type assertion; these keep a rename from switching them off.
var (
	_ ops.SearchWarmer = (*store.DB)(nil)
	_ ops.ChangeFeed   = (*pg.DB)(nil)
)

// store opens the database named by the configuration (PostgreSQL when
// store.url is set, else the SQLite file at store.path) and records the
// configured environments in it.
func (a *app) store(ctx context.Context) (appStore, error) {
	if a.db != nil {
		return a.db, nil
	}
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	path := cfg.Store.Path
	if a.class == roRead && cfg.Store.URL == "" {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			// A read never creates the database: it reads an empty one
			// that is gone when the command ends.
			tmp, err := os.MkdirTemp("", "daytwo-empty-store")
			if err != nil {
				return nil, err
			}
			a.closers = append(a.closers, func() error { return os.RemoveAll(tmp) })
			a.noStore, path = cfg.Store.Path, filepath.Join(tmp, "daytwo.db")
		}
	}
	db, err := a.openStore(ctx, cfg.Store.URL, path)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, db.Close)
	// A read-only database (see store.Open) still serves reads; the
	// configured environments are recorded by the next writable open.
	if db.ReadOnly() == "" {
		if err := db.SyncEnvironments(ctx, cfg.Environments, a.actor()); err != nil {
			return nil, err
		}
	}
	a.db = db
	return db, nil
}

// openStore opens a PostgreSQL store when url is set, else the SQLite file
// at path, with the configured audit key, anchor file and (PostgreSQL) the
// password from the environment or store.password_file.
func (a *app) openStore(ctx context.Context, url, path string) (appStore, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	if url != "" {
		return pg.Open(ctx, url, pg.Options{
			Clock: a.clock, Logger: a.log(), AuditKey: cfg.Secrets.AuditKey,
			AnchorFile: cfg.Audit.AnchorFile, Password: cfg.Secrets.DBPassword,
		})
	}
	return store.Open(ctx, path, store.Options{
		Clock: a.clock, Logger: a.log(),
		AuditKey: cfg.Secrets.AuditKey, AnchorFile: cfg.Audit.AnchorFile,
	})
}

// storeLocation names the open store (its file, or PostgreSQL's URL
// without a password), for log lines.
func (a *app) storeLocation() string {
	if a.db == nil {
		return ""
	}
	return a.db.Path()
}

// schemaVersion is the store schema this daytwo writes.
func schemaVersion() int { return store.SchemaVersion() }

// readAnchorFile reads the audit anchors an anchor file holds; the format
// is the store's, which appends to it (a missing file is os.ErrNotExist).
func readAnchorFile(path string) ([]ops.AuditAnchor, error) { return store.ReadAnchorFile(path) }

// storeCopy is what `store copy` did (its -o json: fields in the order
// the map it replaced printed them).
type storeCopy struct {
	Audit ops.AuditVerification `json:"audit"`
	From  string                `json:"from"`
	Rows  map[string]int64      `json:"rows"`
	To    string                `json:"to"`
}

// copyStore copies the SQLite database at path into the empty PostgreSQL
// database at url, in one transaction, and verifies the audit chain on
// the copy.
func (a *app) copyStore(ctx context.Context, path, url string) (storeCopy, error) {
	cfg, err := a.config()
	if err != nil {
		return storeCopy{}, err
	}
	// Open once through the store: a database from a newer daytwo is
	// refused, an older one brought up to date.
	src, err := store.Open(ctx, path, store.Options{Logger: a.log()})
	if err != nil {
		return storeCopy{}, err
	}
	src.Close()
	if store.SchemaVersion() != pg.SchemaVersion() {
		return storeCopy{}, fmt.Errorf("store copy: this daytwo's SQLite schema is version %d and its PostgreSQL schema %d", store.SchemaVersion(), pg.SchemaVersion())
	}
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return storeCopy{}, fmt.Errorf("store copy: %s: %w", path, err)
	}
	defer raw.Close()
	dst, err := pg.Open(ctx, url, pg.Options{Logger: a.log(), Password: cfg.Secrets.DBPassword, AuditKey: cfg.Secrets.AuditKey})
	if err != nil {
		return storeCopy{}, err
	}
	defer dst.Close()
	counts, err := dst.ImportSQLite(ctx, raw)
	if err != nil {
		return storeCopy{}, err
	}
	v, err := dst.VerifyAudit(ctx)
	if err != nil {
		return storeCopy{}, err
	}
	return storeCopy{From: path, To: dst.URL(), Rows: counts, Audit: v}, nil
}

// isPGURL reports whether raw names a PostgreSQL database.
func isPGURL(raw string) bool { return pg.IsURL(raw) }

// changeMarker returns a cheap reading of whether the store changed, for
// -w/--watch: SQLite's data_version on a connection of its own (it moves
// whenever another connection commits). An empty reading means "unknown:
// read the list again" (PostgreSQL, or no database yet).
func (a *app) changeMarker(ctx context.Context) (marker func() string, closeFn func()) {
	unknown := func() string { return "" }
	if a.db == nil || a.noStore != "" || a.cfg == nil || a.cfg.Store.URL != "" {
		return unknown, func() {}
	}
	raw, err := sql.Open("sqlite", "file:"+a.db.Path()+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return unknown, func() {}
	}
	conn, err := raw.Conn(ctx)
	if err != nil {
		raw.Close()
		return unknown, func() {}
	}
	return func() string {
			var v int64
			if err := conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v); err != nil {
				return ""
			}
			return fmt.Sprint(v)
		}, func() {
			conn.Close()
			raw.Close()
		}
}
