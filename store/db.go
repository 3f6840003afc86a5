// Package store is daytwo's local state: a SQLite database (modernc.org/sqlite,
// no cgo) holding environments, releases, updates, the ServiceNow mirror,
// runs and their journal, the outbox, sync watermarks, leases and the
// hash-chained audit log.
//
// The database runs in WAL mode with a busy timeout so that the console and
// a `daytwo sync --watch` daemon can share one file. Pragmas are set in the
// DSN so that every pooled connection gets them.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/daytwo/daytwo/ops"
)

// Errors returned by the store; they are the ops sentinels, so callers that
// only know ops can branch on them.
var (
	ErrNotFound = ops.ErrNotFound
	ErrConflict = ops.ErrConflict
	// ErrSchemaTooNew reports a database written by a newer daytwo.
	ErrSchemaTooNew = errors.New("database schema is newer than this daytwo")
)

// timeFormat is fixed-width so that stored timestamps sort as text.
const timeFormat = "2006-01-02T15:04:05.000000000Z"

// Options tune Open.
type Options struct {
	// Clock stamps every write; nil means time.Now.
	Clock func() time.Time
	// BusyTimeout is how long a writer waits for another process's lock.
	BusyTimeout time.Duration
	// Logger records schema migrations; nil discards.
	Logger *slog.Logger
	// AuditKey, when set, keys the audit chain: every event appended
	// carries an HMAC-SHA256 under it (see AppendEvent). It is never
	// stored.
	AuditKey []byte
	// AnchorFile, when set, receives the audit chain head as a JSON line at
	// every run's close (append-only).
	AnchorFile string
}

// DB is an open daytwo database.
type DB struct {
	sql        *sql.DB
	path       string
	clock      func() time.Time
	log        *slog.Logger
	auditKey   []byte
	anchorFile string
}

// Open opens (creating if needed) the database at path and brings its schema
// up to date. A database whose schema is newer than this binary knows is
// refused with ErrSchemaTooNew rather than touched.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if path == "" {
		return nil, errors.New("store: no database path configured (store.path or DAYTWO_DB)")
	}
	if path == ":memory:" {
		return nil, errors.New("store: in-memory databases are not supported; each pooled connection would get its own")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("store: create directory for %s: %w", path, err)
		}
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.BusyTimeout == 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	db, err := sql.Open("sqlite", dsn(path, opts.BusyTimeout))
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &DB{sql: db, path: path, clock: opts.Clock, log: opts.Logger, anchorFile: opts.AnchorFile}
	if len(opts.AuditKey) > 0 {
		s.auditKey = append([]byte(nil), opts.AuditKey...)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	return s, nil
}

func dsn(path string, busy time.Duration) string {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Close closes the database.
func (db *DB) Close() error { return db.sql.Close() }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.sql.PingContext(ctx) }

// Tx is a write transaction with one timestamp for everything it stamps.
type Tx struct {
	tx  *sql.Tx
	db  *DB
	now time.Time
	// afterCommit runs once the transaction committed (anchor sinks).
	afterCommit []func()
}

// Now is the transaction's timestamp.
func (tx *Tx) Now() time.Time { return tx.now }

// WithTx runs fn in a write transaction (BEGIN IMMEDIATE), committing when fn
// returns nil and rolling back otherwise.
func (db *DB) WithTx(ctx context.Context, fn func(tx *Tx) error) error {
	sqlTx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", mapErr(err))
	}
	tx := &Tx{tx: sqlTx, db: db, now: db.clock().UTC()}
	if err := fn(tx); err != nil {
		_ = sqlTx.Rollback()
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", mapErr(err))
	}
	for _, f := range tx.afterCommit {
		f()
	}
	return nil
}

// Atomic is WithTx for callers that only know ops.Tx.
func (db *DB) Atomic(ctx context.Context, fn func(tx ops.Tx) error) error {
	return db.WithTx(ctx, func(tx *Tx) error { return fn(tx) })
}

// Compile-time checks that the store implements what ops declares.
var (
	_ ops.Store = (*DB)(nil)
	_ ops.Tx    = (*Tx)(nil)
)

// mapErr maps driver errors onto the store's sentinels.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CONSTRAINT:
			return fmt.Errorf("%w: %s", ErrConflict, se.Error())
		}
	}
	return err
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeFormat)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(timeFormat, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("store: bad timestamp %q: %w", s, err)
	}
	return t, nil
}
