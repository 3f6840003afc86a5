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
	"sync"
	"syscall"
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
	// ErrReadOnly reports a write to a database that cannot be written.
	ErrReadOnly = errors.New("the database is read-only")
	// ErrDiskFull reports a write that failed for lack of space.
	ErrDiskFull = errors.New("the disk is full")
)

// maxConns bounds the pool: enough for a rollout's parallel steps to
// journal without opening connections, few enough to stay light.
const maxConns = 16

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
	// readOnly is why the database could only be opened read-only.
	readOnly string
	// writeGate (capacity 1) queues this process's writers in Go: SQLite's
	// own busy handler makes a writer that finds the lock taken sleep for
	// 1, 2, 5 … 100 ms, so 50 parallel steps journaling through 16
	// connections spent most of a rollout asleep. The busy timeout still
	// covers other processes.
	writeGate chan struct{}
	busy      time.Duration
	stmts     sync.Map // query text → *sql.Stmt
	search    searchIndex
	cache     mirrorCache
	group     groupCommit
}

// lockWrites waits for this process's other writers. If the gate is not
// free within the busy timeout (a writer nested in another's transaction),
// it gives up and lets SQLite's busy handling decide, as before the gate.
func (db *DB) lockWrites(ctx context.Context) (release func()) {
	select {
	case db.writeGate <- struct{}{}:
		return func() { <-db.writeGate }
	default:
	}
	t := time.NewTimer(db.busy)
	defer t.Stop()
	select {
	case db.writeGate <- struct{}{}:
		return func() { <-db.writeGate }
	case <-ctx.Done():
	case <-t.C:
	}
	return func() {}
}

// prepared returns a statement prepared once for the pool (database/sql
// re-prepares it per connection as needed): the journal's statements run
// twice per step, and parsing them was a fifth of a rollout's CPU.
func (db *DB) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := db.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := db.sql.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := db.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// execWrite runs one prepared write statement (the run journal's) behind
// the write gate, committed when it returns. Writes that arrive together
// commit together (group commit): while one batch commits, the next
// gathers, and its first writer runs it in one transaction. A rollout of
// 50 parallel steps made three commits per target, each a WAL write, and
// most of its journaling time was commits. Each statement keeps its own
// result (rows affected, the fencing check; the inserted id); a batch
// that fails is run again statement by statement, each in its own
// commit, so one write's error is never another's.
func (db *DB) execWrite(ctx context.Context, query string, args ...any) (sql.Result, error) {
	w := &groupWrite{ctx: ctx, query: query, args: args}
	g := &db.group
	g.mu.Lock()
	if g.cond == nil {
		g.cond = sync.NewCond(&g.mu)
	}
	g.queue = append(g.queue, w)
	for !w.finished {
		if g.leading {
			g.cond.Wait()
			continue
		}
		g.leading = true
		batch := g.queue
		g.queue = nil
		g.mu.Unlock()
		db.runGroup(batch)
		g.mu.Lock()
		for _, b := range batch {
			b.finished = true
		}
		g.leading = false
		g.cond.Broadcast()
	}
	g.mu.Unlock()
	return w.res, w.err
}

// groupCommit is execWrite's queue: the writes waiting for the next batch,
// and whether a batch is running.
type groupCommit struct {
	mu      sync.Mutex
	cond    *sync.Cond
	queue   []*groupWrite
	leading bool
}

// groupWrite is one journal write and, once finished, its result.
type groupWrite struct {
	ctx      context.Context
	query    string
	args     []any
	res      sql.Result
	err      error
	finished bool
}

// runGroup runs a batch: one statement alone, several in one transaction.
func (db *DB) runGroup(batch []*groupWrite) {
	live := batch[:0:0]
	for _, w := range batch {
		if err := w.ctx.Err(); err != nil {
			w.err = err
			continue
		}
		live = append(live, w)
	}
	if len(live) == 0 {
		return
	}
	release := db.lockWrites(live[0].ctx)
	defer release()
	if len(live) == 1 || !db.runGroupTx(live) {
		for _, w := range live {
			w.res, w.err = db.execOne(w)
		}
	}
}

// execOne runs one write in its own commit.
func (db *DB) execOne(w *groupWrite) (sql.Result, error) {
	st, err := db.prepared(w.ctx, w.query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(w.ctx, w.args...)
}

// runGroupTx runs the batch in one transaction and reports whether it
// committed; on false no result is set and nothing was written. The
// statements run without their callers' cancellation: a write already
// queued is one the caller decided, and one caller's cancel must not
// fail the others'.
func (db *DB) runGroupTx(batch []*groupWrite) bool {
	ctx := context.WithoutCancel(batch[0].ctx)
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return false
	}
	results := make([]sql.Result, len(batch))
	for i, w := range batch {
		st, err := db.prepared(ctx, w.query)
		if err != nil {
			_ = tx.Rollback()
			return false
		}
		if results[i], err = tx.StmtContext(ctx, st).ExecContext(ctx, w.args...); err != nil {
			_ = tx.Rollback()
			return false
		}
	}
	if err := tx.Commit(); err != nil {
		return false
	}
	for i, w := range batch {
		w.res = results[i]
	}
	return true
}

// Open opens (creating if needed) the database at path and brings its schema
// up to date. A database whose schema is newer than this binary knows is
// refused with ErrSchemaTooNew rather than touched.
//
// A database file that exists but cannot be written (a read-only file
// system, an immutable file, no write permission) is opened read-only:
// reads work, and every write fails with ErrReadOnly naming the file and
// the cause. A read-only database is never migrated.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if path == "" {
		return nil, errors.New("store: no database path configured (store.path or DAYTWO_DB)")
	}
	if path == ":memory:" {
		return nil, errors.New("store: in-memory databases are not supported; each pooled connection would get its own")
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
	s := &DB{
		path: path, clock: opts.Clock, log: opts.Logger, anchorFile: opts.AnchorFile,
		writeGate: make(chan struct{}, 1), busy: opts.BusyTimeout,
	}
	s.search.kick = make(chan struct{}, 1)
	if len(opts.AuditKey) > 0 {
		s.auditKey = append([]byte(nil), opts.AuditKey...)
	}
	if cause := notWritable(path); cause != "" {
		return s.openReadOnly(ctx, cause, opts.BusyTimeout)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("store: create directory for %s: %w", path, err)
		}
	}
	if err := createWithPageSize(ctx, path, opts.BusyTimeout); err != nil {
		return nil, fmt.Errorf("store: create %s: %w", path, s.Explain(mapErr(err)))
	}
	db, err := sql.Open("sqlite", dsn(path, opts.BusyTimeout))
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// Keep the connections a busy rollout uses open: database/sql keeps 2
	// idle by default, so 50 parallel steps opened (and parsed the schema
	// of) hundreds of connections per run. WAL lets readers run beside the
	// one writer; writers queue on the busy timeout.
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s.sql = db
	if err := s.migrateWhenFree(ctx, opts.BusyTimeout); err != nil {
		db.Close()
		if e := s.Explain(err); e != err {
			return nil, fmt.Errorf("store: %w", e) // Explain names the file
		}
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	return s, nil
}

// pageSize is the page size of the databases daytwo creates. SQLite's
// default of 4 KiB made a mirror page of 1,000 changes, whose random
// sys_id, number and correlation keys dirty most index leaves, write and
// balance four times as many pages; at 8 KiB the 100k-change store
// benchmark takes ~15% less CPU and ~25% fewer syscalls, and a journaled
// rollout step costs the same (BENCHMARKS.md).
const pageSize = 8192

// createWithPageSize gives a database file that does not exist yet (or is
// empty) daytwo's page size: it must be set before the first write, and the
// connection's own pragmas (applied in alphabetical order, journal_mode
// before page_size) would write page 1 first. An existing database keeps
// its page size.
func createWithPageSize(ctx context.Context, path string, busy time.Duration) error {
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		return nil
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Both on one connection, in this order: a page size on an empty file,
	// then WAL, which writes page 1 with it. On a file another process
	// has just created, the page size is a no-op.
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA page_size = %d", pageSize)); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "PRAGMA journal_mode = WAL")
	return err
}

// notWritable says why an existing database file (or the directory its
// -wal and -shm files live in) cannot be written, or "" when it can or
// does not exist. It asks the kernel (an O_RDWR open), so it sees what
// file modes alone do not: a read-only mount or an immutable file stops
// root too.
func notWritable(path string) string {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	switch {
	case err == nil:
		f.Close()
	case errors.Is(err, os.ErrNotExist):
		return ""
	case isWriteDenied(err):
		return causeOf(err)
	default:
		return "" // let SQLite report it
	}
	// The file is writable; in WAL mode SQLite also creates -wal and -shm
	// beside it.
	if _, err := os.Stat(path + "-wal"); err == nil {
		return ""
	}
	probe, err := os.CreateTemp(filepath.Dir(path), ".daytwo-probe-*")
	if err != nil {
		if isWriteDenied(err) {
			return "its directory is " + causeOf(err)
		}
		return ""
	}
	probe.Close()
	os.Remove(probe.Name())
	return ""
}

func isWriteDenied(err error) bool {
	return errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM)
}

func causeOf(err error) string {
	switch {
	case errors.Is(err, syscall.EROFS):
		return "on a read-only file system"
	case errors.Is(err, syscall.EPERM):
		return "not writable (operation not permitted: immutable?)"
	default:
		return "not writable (permission denied)"
	}
}

// openReadOnly opens an existing database that cannot be written. SQLite
// first tries an ordinary read-only open (which needs the -shm file of a
// WAL database to exist or be creatable); failing that, and only when no
// -wal file holds frames the main file lacks, it opens the file as
// immutable: a consistent snapshot, since nothing can write through this
// path.
func (s *DB) openReadOnly(ctx context.Context, cause string, busy time.Duration) (*DB, error) {
	s.readOnly = cause
	try := func(dsn string) error {
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return err
		}
		var v int
		if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
			db.Close()
			return err
		}
		s.sql = db
		return s.checkSchemaReadOnly(v)
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Set("mode", "ro")
	err := try("file:" + s.path + "?" + q.Encode())
	if err != nil && s.sql == nil {
		if fi, werr := os.Stat(s.path + "-wal"); werr == nil && fi.Size() > 0 {
			return nil, fmt.Errorf("store: %s is %s, and its -wal file holds changes that cannot be read without writing: %w (%w)",
				s.path, cause, ErrReadOnly, s.Explain(err))
		}
		q.Del("mode")
		q.Set("immutable", "1")
		err = try("file:" + s.path + "?" + q.Encode())
	}
	if err != nil {
		if s.sql != nil {
			s.sql.Close()
		}
		return nil, fmt.Errorf("store: open %s (%s) read-only: %w", s.path, cause, err)
	}
	s.log.Warn("database opened read-only", "path", s.path, "cause", cause)
	return s, nil
}

func (s *DB) checkSchemaReadOnly(v int) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	switch {
	case v > len(ms):
		return fmt.Errorf("%w: database is at schema version %d, this daytwo knows up to %d; upgrade daytwo", ErrSchemaTooNew, v, len(ms))
	case v < len(ms):
		return fmt.Errorf("%w: the database is at schema version %d and this daytwo needs %d; open it once where it is writable so it can be migrated", ErrReadOnly, v, len(ms))
	}
	return nil
}

// ReadOnly says why the database was opened read-only ("" when it is
// writable).
func (db *DB) ReadOnly() string { return db.readOnly }

func dsn(path string, busy time.Duration) string {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", "cache_size(-4096)")
	// Checkpoint the WAL every ~16 MB instead of every 4 MB: a mirror page
	// of 1,000 changes writes ~5 MB of frames (its rows and the index
	// leaves its random keys touch), so at the default every commit also
	// ran a checkpoint and wrote those index pages a second time.
	q.Add("_pragma", "wal_autocheckpoint(4000)")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// migrateWhenFree migrates, retrying while another process (or pool
// connection) holds a lock the busy handler does not wait for — switching a
// new file to WAL, or a schema change racing a reader — for up to busy.
func (db *DB) migrateWhenFree(ctx context.Context, busy time.Duration) error {
	deadline := time.Now().Add(busy)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := db.migrate(ctx)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Close closes the database.
func (db *DB) Close() error {
	db.stopSearch()
	db.stmts.Range(func(k, v any) bool {
		v.(*sql.Stmt).Close()
		db.stmts.Delete(k)
		return true
	})
	return db.sql.Close()
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.sql.PingContext(ctx) }

// Tx is a write transaction with one timestamp for everything it stamps.
type Tx struct {
	tx  *sql.Tx
	db  *DB
	now time.Time
	// afterCommit runs once the transaction committed (anchor sinks).
	afterCommit []func()
	// changesWritten: the transaction changed mirrored rows (the search
	// index catches up after the commit).
	changesWritten bool
	// mirror is what it wrote to the mirror, for the DB's cache.
	mirror mirrorWrites
}

// Now is the transaction's timestamp.
func (tx *Tx) Now() time.Time { return tx.now }

// WithTx runs fn in a write transaction (BEGIN IMMEDIATE), committing when fn
// returns nil and rolling back otherwise.
func (db *DB) WithTx(ctx context.Context, fn func(tx *Tx) error) error {
	if db.readOnly != "" {
		return db.Explain(errReadOnlyWrite)
	}
	release := db.lockWrites(ctx)
	defer release()
	sqlTx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", db.Explain(mapErr(err)))
	}
	tx := &Tx{tx: sqlTx, db: db, now: db.clock().UTC()}
	if err := fn(tx); err != nil {
		_ = sqlTx.Rollback()
		return db.Explain(err)
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", db.Explain(mapErr(err)))
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
)

var errReadOnlyWrite = errors.New("this command writes")

// Explain names the cause of a write that failed because of where the
// database lives: read-only (ErrReadOnly), out of space (ErrDiskFull), or
// unopenable, each with the file. Other errors come back unchanged. It is
// safe to call more than once on the same error.
func (db *DB) Explain(err error) error {
	if err == nil || errors.Is(err, ErrReadOnly) || errors.Is(err, ErrDiskFull) {
		return err
	}
	if errors.Is(err, errReadOnlyWrite) {
		return fmt.Errorf("%w: %s is %s, and this command writes to it (read-only commands such as status, lists and audit verify work)", ErrReadOnly, db.path, db.readOnly)
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	dir := filepath.Dir(db.path)
	switch code := se.Code(); code & 0xff {
	case sqlite3.SQLITE_FULL:
		return fmt.Errorf("%w: the file system holding %s has no space left; free some and retry (nothing of this write was committed): %w", ErrDiskFull, db.path, err)
	case sqlite3.SQLITE_IOERR:
		if diskFull(dir) {
			return fmt.Errorf("%w: the file system holding %s has no space left; free some and retry (nothing of this write was committed): %w", ErrDiskFull, db.path, err)
		}
		return fmt.Errorf("store: disk I/O error on %s (or its -wal/-shm files): %w", db.path, err)
	case sqlite3.SQLITE_READONLY:
		cause := db.readOnly
		if cause == "" {
			if cause = notWritable(db.path); cause == "" {
				cause = "not writable"
			}
		}
		return fmt.Errorf("%w: %s is %s, and this command writes to it: %w", ErrReadOnly, db.path, cause, err)
	case sqlite3.SQLITE_CANTOPEN:
		if cause := notWritable(db.path); cause != "" {
			return fmt.Errorf("%w: %s is %s: %w", ErrReadOnly, db.path, cause, err)
		}
		if diskFull(dir) {
			return fmt.Errorf("%w: the file system holding %s has no space left: %w", ErrDiskFull, db.path, err)
		}
		return fmt.Errorf("store: cannot open %s (check that the file and its directory exist and are writable): %w", db.path, err)
	}
	return err
}

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

// parseTimeFast parses what formatTime writes (timeFormat, all digits in
// place) without time.Parse's layout walk: a cycle with 1,000 open
// changes parses thousands of these. Anything else (or an out-of-range
// field) is left to time.Parse, which also makes the error.
func parseTimeFast(s string) (time.Time, bool) {
	if len(s) != len(timeFormat) || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' || s[29] != 'Z' {
		return time.Time{}, false
	}
	num := func(from, to int) (int, bool) {
		n := 0
		for i := from; i < to; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(5, 7)
	d, ok3 := num(8, 10)
	h, ok4 := num(11, 13)
	mi, ok5 := num(14, 16)
	sec, ok6 := num(17, 19)
	ns, ok7 := num(20, 29)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || !ok7 ||
		mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, ns, time.UTC)
	if t.Day() != d { // 31 April and the like: time.Parse refuses them
		return time.Time{}, false
	}
	return t, true
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
	if t, ok := parseTimeFast(s); ok {
		return t, nil
	}
	t, err := time.Parse(timeFormat, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("store: bad timestamp %q: %w", s, err)
	}
	return t, nil
}
