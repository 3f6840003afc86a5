// Package pg is daytwo's store on PostgreSQL: the same domain contract as
// the SQLite store (package store, checked by store/storetest), for teams
// that run daytwo on several machines.
//
// It talks to PostgreSQL through github.com/jackc/pgx/v5 and its pool
// (pgxpool), used through database/sql (pgx's stdlib adapter) so that the
// queries read like the SQLite store's. Differences from SQLite, where
// PostgreSQL needs them:
//   - every write transaction (Atomic) takes one advisory transaction lock,
//     which serialises writers as SQLite's BEGIN IMMEDIATE does; the audit
//     chain's head row is also locked FOR UPDATE by every append;
//   - fencing checks lock the lease row (FOR SHARE), so a step cannot be
//     journalled under an epoch that a concurrent takeover is replacing;
//   - outbox claims skip items another pass has locked (FOR UPDATE SKIP
//     LOCKED) rather than waiting for them.
//
// Timestamps are stored as the SQLite store stores them (fixed-width UTC
// text), so that `daytwo store copy` moves rows unchanged and the audit
// chain's hashes still verify.
package pg

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store"
)

// Errors: the SQLite store's, so callers branch on one set.
var (
	ErrNotFound     = ops.ErrNotFound
	ErrConflict     = ops.ErrConflict
	ErrSchemaTooNew = store.ErrSchemaTooNew
	ErrAuditKey     = store.ErrAuditKey
)

// ActionAuditKeyed is the marker event of a keyed chain (as in SQLite).
const ActionAuditKeyed = store.ActionAuditKeyed

const timeFormat = "2006-01-02T15:04:05.000000000Z"

// writerLock is the advisory lock key every write transaction holds
// ("daytwo" in ASCII): PostgreSQL's stand-in for BEGIN IMMEDIATE.
const writerLock = 0x646179747770

// Options tune Open.
type Options struct {
	// Clock stamps every write; nil means time.Now.
	Clock func() time.Time
	// Logger records schema migrations; nil discards.
	Logger *slog.Logger
	// AuditKey keys the audit chain (see the SQLite store). Never stored.
	AuditKey []byte
	// AnchorFile, when set, receives the audit chain head at every run's
	// close (append-only JSON lines).
	AnchorFile string
	// Password, when set, is the database password (from the environment
	// or a file: never the configuration file). It overrides one in the URL
	// and is never logged or shown in errors.
	Password string
	// MaxConns caps the pool (0: pgxpool's default).
	MaxConns int32
}

// DB is an open daytwo database on PostgreSQL.
type DB struct {
	pool       *pgxpool.Pool
	sql        conn   // its writes announce themselves (changed)
	quiet      conn   // for writes no reader shows (heartbeats, lease renewals)
	url        string // without the password
	secret     string
	clock      func() time.Time
	log        *slog.Logger
	auditKey   []byte
	anchorFile string

	kick       chan struct{} // a NOTIFY is due (notify.go)
	stopNotify chan struct{}
	notifyDone chan struct{}
}

// IsURL reports whether s names a PostgreSQL database.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Redact returns a connection URL without its password.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		}
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "REDACTED")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Open connects to the database at rawURL (postgres://…) and brings its
// schema up to date; a schema newer than this binary knows is refused with
// ErrSchemaTooNew and left untouched.
func Open(ctx context.Context, rawURL string, opts Options) (*DB, error) {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	db := &DB{url: Redact(rawURL), clock: opts.Clock, log: opts.Logger, anchorFile: opts.AnchorFile}
	if len(opts.AuditKey) > 0 {
		db.auditKey = append([]byte(nil), opts.AuditKey...)
	}
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("store: %s: bad PostgreSQL URL: %w", db.url, db.scrub(err))
	}
	db.secret = cfg.ConnConfig.Password
	if opts.Password != "" {
		cfg.ConnConfig.Password = opts.Password
		db.secret = opts.Password
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", db.url, db.scrub(err))
	}
	db.pool = pool
	sqldb := stdlib.OpenDBFromPool(pool)
	db.sql, db.quiet = conn{db: sqldb, changed: db.changed}, conn{db: sqldb}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %s: %w", db.url, db.scrub(err))
	}
	db.startNotifier()
	return db, nil
}

// scrubbed is an error whose text had the password removed.
type scrubbed struct {
	msg string
	err error
}

func (e scrubbed) Error() string { return e.msg }
func (e scrubbed) Unwrap() error { return e.err }

// scrub keeps the password out of an error's text.
func (db *DB) scrub(err error) error {
	if err == nil || db.secret == "" || !strings.Contains(err.Error(), db.secret) {
		return err
	}
	return scrubbed{msg: strings.ReplaceAll(err.Error(), db.secret, "REDACTED"), err: err}
}

// Path names the database (its URL without the password).
func (db *DB) Path() string { return db.url }

// URL is Path.
func (db *DB) URL() string { return db.url }

// ReadOnly is always "" (a read-only PostgreSQL reports its own errors).
func (db *DB) ReadOnly() string { return "" }

// Explain keeps the password out of err's text.
func (db *DB) Explain(err error) error { return db.scrub(err) }

// Close sends a pending change notification, then closes the pool.
func (db *DB) Close() error {
	if db.stopNotify != nil {
		close(db.stopNotify)
		<-db.notifyDone
		db.stopNotify = nil
	}
	err := db.sql.db.Close()
	db.pool.Close()
	return err
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.scrub(db.sql.db.PingContext(ctx)) }

// Tx is a write transaction with one timestamp for everything it stamps.
type Tx struct {
	tx          sqlTx
	db          *DB
	now         time.Time
	afterCommit []func()
}

// Now is the transaction's timestamp.
func (tx *Tx) Now() time.Time { return tx.now }

// WithTx runs fn in a write transaction, serialised with every other
// daytwo writer on this database by an advisory lock, committing when fn
// returns nil and rolling back otherwise.
func (db *DB) WithTx(ctx context.Context, fn func(tx *Tx) error) error {
	t, err := db.sql.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", db.scrub(err))
	}
	dirty := false
	tx := &Tx{tx: sqlTx{tx: t, dirty: &dirty}, db: db, now: db.clock().UTC()}
	if _, err := t.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(writerLock)); err != nil {
		_ = t.Rollback()
		return fmt.Errorf("store: lock writers: %w", db.scrub(err))
	}
	if err := fn(tx); err != nil {
		_ = t.Rollback()
		return db.scrub(err)
	}
	if err := t.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", db.scrub(mapErr(err)))
	}
	if dirty {
		db.changed()
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

// Compile-time checks that the store implements what ops declares: the
// whole Store and each role on its own.
var (
	_ ops.Store           = (*DB)(nil)
	_ ops.Transactor      = (*DB)(nil)
	_ ops.ReleaseReader   = (*DB)(nil)
	_ ops.UpdateReader    = (*DB)(nil)
	_ ops.ChangeMirror    = (*DB)(nil)
	_ ops.ConflictRecords = (*DB)(nil)
	_ ops.OutboxStore     = (*DB)(nil)
	_ ops.AuditLog        = (*DB)(nil)
	_ ops.Journal         = (*DB)(nil)
	_ ops.DriftStore      = (*DB)(nil)
	_ ops.ComplianceStore = (*DB)(nil)
	_ ops.LeaseStore      = (*DB)(nil)
	_ ops.Tx              = (*Tx)(nil)
	_ ops.AuditAnchorer   = (*Tx)(nil)
)

// mapErr maps driver errors onto the store's sentinels.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && strings.HasPrefix(pe.Code, "23") { // integrity constraint violation
		return fmt.Errorf("%w: %s", ErrConflict, pe.Error())
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

// rebind turns the SQLite store's ? placeholders into PostgreSQL's $n,
// outside quoted literals and -- comments, so that queries read the same in
// both stores.
func rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var (
		b     strings.Builder
		n     int
		quote bool
	)
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'':
			quote = !quote
		case !quote && c == '-' && i+1 < len(q) && q[i+1] == '-':
			end := strings.IndexByte(q[i:], '\n')
			if end < 0 {
				end = len(q) - i
			}
			b.WriteString(q[i : i+end])
			i += end - 1
			continue
		case c == '?' && !quote:
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// args stores flags as 0/1, as the SQLite store does.
func args(in []any) []any {
	for i, a := range in {
		if v, ok := a.(bool); ok {
			if v {
				in[i] = int64(1)
			} else {
				in[i] = int64(0)
			}
		}
	}
	return in
}

// conn and sqlTx run the store's queries with rebind and args, and note
// writes that changed rows: a conn's at once (changed), a transaction's at
// its commit (dirty), for the change feed.
type conn struct {
	db      *sql.DB
	changed func() // nil: writes are not announced
}

func (c conn) ExecContext(ctx context.Context, q string, a ...any) (sql.Result, error) {
	res, err := c.db.ExecContext(ctx, rebind(q), args(a)...)
	if err == nil && c.changed != nil {
		if n, _ := res.RowsAffected(); n > 0 {
			c.changed()
		}
	}
	return res, err
}

func (c conn) QueryContext(ctx context.Context, q string, a ...any) (*sql.Rows, error) {
	rows, err := c.db.QueryContext(ctx, rebind(q), args(a)...)
	if err == nil && c.changed != nil && writes(q) {
		c.changed()
	}
	return rows, err
}

func (c conn) QueryRowContext(ctx context.Context, q string, a ...any) *sql.Row {
	row := c.db.QueryRowContext(ctx, rebind(q), args(a)...)
	if c.changed != nil && writes(q) && row.Err() == nil {
		c.changed()
	}
	return row
}

type sqlTx struct {
	tx    *sql.Tx
	dirty *bool // set when a statement may have changed rows
}

func (t sqlTx) mark() {
	if t.dirty != nil {
		*t.dirty = true
	}
}

func (t sqlTx) ExecContext(ctx context.Context, q string, a ...any) (sql.Result, error) {
	res, err := t.tx.ExecContext(ctx, rebind(q), args(a)...)
	if err == nil {
		if n, _ := res.RowsAffected(); n > 0 {
			t.mark()
		}
	}
	return res, err
}

func (t sqlTx) QueryContext(ctx context.Context, q string, a ...any) (*sql.Rows, error) {
	if writes(q) {
		t.mark()
	}
	return t.tx.QueryContext(ctx, rebind(q), args(a)...)
}

func (t sqlTx) QueryRowContext(ctx context.Context, q string, a ...any) *sql.Row {
	if writes(q) {
		t.mark()
	}
	return t.tx.QueryRowContext(ctx, rebind(q), args(a)...)
}

func (t sqlTx) PrepareContext(ctx context.Context, q string) (stmt, error) {
	s, err := t.tx.PrepareContext(ctx, rebind(q))
	return stmt{s: s, tx: t}, err
}

type stmt struct {
	s  *sql.Stmt
	tx sqlTx
}

func (s stmt) ExecContext(ctx context.Context, a ...any) (sql.Result, error) {
	res, err := s.s.ExecContext(ctx, args(a)...)
	if err == nil {
		if n, _ := res.RowsAffected(); n > 0 {
			s.tx.mark()
		}
	}
	return res, err
}

func (s stmt) Close() error { return s.s.Close() }
