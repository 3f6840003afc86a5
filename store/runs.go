package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/daytwo/daytwo/ops"
)

// InsertRun records a new run inside tx.
func (tx *Tx) InsertRun(ctx context.Context, r ops.Run) error {
	if r.StartedAt.IsZero() {
		r.StartedAt = tx.now
	}
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO runs (id, update_id, environment, kind, state, holder, epoch, error, started_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.ID, r.UpdateID, r.Environment, string(r.Kind), string(r.State), r.Holder, r.Epoch, r.Error, formatTime(r.StartedAt))
	if err != nil {
		return fmt.Errorf("store: insert run %s: %w", r.ID, mapErr(err))
	}
	return nil
}

// FinishRun sets a running run's final state inside tx.
func (tx *Tx) FinishRun(ctx context.Context, id string, state ops.RunState, cause string) error {
	res, err := tx.tx.ExecContext(ctx, `UPDATE runs SET state = ?, error = ?, finished_at = ? WHERE id = ? AND state = 'running'`,
		string(state), cause, formatTime(tx.now), id)
	if err != nil {
		return fmt.Errorf("store: finish run %s: %w", id, mapErr(err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("store: run %s is not running: %w", id, ErrConflict)
	}
	return nil
}

// TakeOverRun records, inside tx, that the fence's holder now owns a
// running run, and marks the steps earlier holders left unfinished as
// abandoned (recovery has made sure their programs are gone).
func (tx *Tx) TakeOverRun(ctx context.Context, id string, f ops.Fence) error {
	if err := tx.CheckFence(ctx, f); err != nil {
		return err
	}
	res, err := tx.tx.ExecContext(ctx, `UPDATE runs SET holder = ?, epoch = ? WHERE id = ? AND state = 'running'`, f.Holder, f.Epoch, id)
	if err != nil {
		return fmt.Errorf("store: take over run %s: %w", id, mapErr(err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("store: run %s is not running: %w", id, ErrConflict)
	}
	_, err = tx.tx.ExecContext(ctx, `UPDATE run_steps SET state = 'abandoned', finished_at = ?,
		detail = 'unfinished when ' || ? || ' took the run over'
		WHERE run_id = ? AND state = 'started' AND epoch < ?`, formatTime(tx.now), f.Holder, id, f.Epoch)
	if err != nil {
		return fmt.Errorf("store: take over run %s: %w", id, mapErr(err))
	}
	return nil
}

// DecideRollback journals a run's decision to roll back, keeping the first
// reason if it was already decided, and returns the run.
func (tx *Tx) DecideRollback(ctx context.Context, id, reason string) (ops.Run, error) {
	_, err := tx.tx.ExecContext(ctx, `UPDATE runs SET decision = 'rollback', decision_reason = ? WHERE id = ? AND decision = ''`, reason, id)
	if err != nil {
		return ops.Run{}, fmt.Errorf("store: decide rollback of run %s: %w", id, mapErr(err))
	}
	runs, err := QueryRuns(ctx, tx.tx, runColumns+` WHERE id = ?`, id)
	if err != nil {
		return ops.Run{}, err
	}
	if len(runs) == 0 {
		return ops.Run{}, fmt.Errorf("store: run %s: %w", id, ErrNotFound)
	}
	return runs[0], nil
}

// RecordFact records a piece of evidence a run wrote; false when it was
// already recorded.
func (tx *Tx) RecordFact(ctx context.Context, runID, fact string) (bool, error) {
	res, err := tx.tx.ExecContext(ctx, `INSERT INTO run_facts (run_id, fact, recorded_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		runID, fact, formatTime(tx.now))
	if err != nil {
		return false, fmt.Errorf("store: record %s of run %s: %w", fact, runID, mapErr(err))
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// StepStarted journals a step before it runs, committed on its own, and
// returns its id. The insert happens only while f is the current lease.
func (db *DB) StepStarted(ctx context.Context, f ops.Fence, s ops.StepRecord) (int64, error) {
	args := []any{s.RunID, s.Batch, s.Target, s.Step, s.Version, s.RunID, s.Target, s.Step, f.Holder, f.Epoch, s.Detail, formatTime(db.clock())}
	res, err := db.execWrite(ctx, `INSERT INTO run_steps (run_id, batch, target, step, version, attempt, holder, epoch, state, detail, started_at)
		SELECT ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(attempt), 0) + 1 FROM run_steps WHERE run_id = ? AND target = ? AND step = ?), ?, ?, 'started', ?, ?
		WHERE `+fenceClause, append(args, fenceArgs(f)...)...)
	if err != nil {
		return 0, fmt.Errorf("store: journal %s of %s: %w", s.Step, s.Target, mapErr(err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return 0, errLeaseLost(f)
	}
	return res.LastInsertId()
}

// StepProcess records the process group of a started step's program.
func (db *DB) StepProcess(ctx context.Context, f ops.Fence, id int64, pgid int) error {
	res, err := db.execWrite(ctx, `UPDATE run_steps SET pgid = ? WHERE id = ? AND state = 'started' AND `+fenceClause,
		append([]any{pgid, id}, fenceArgs(f)...)...)
	if err != nil {
		return fmt.Errorf("store: journal step %d: %w", id, mapErr(err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return errLeaseLost(f)
	}
	return nil
}

// StepFinished journals a step's outcome, only while f is the current
// lease and the step is still started (not abandoned by a recovery).
func (db *DB) StepFinished(ctx context.Context, f ops.Fence, id int64, state ops.StepState, detail string) error {
	res, err := db.execWrite(ctx, `UPDATE run_steps SET state = ?, detail = ?, finished_at = ? WHERE id = ? AND state = 'started' AND `+fenceClause,
		append([]any{string(state), detail, formatTime(db.clock()), id}, fenceArgs(f)...)...)
	if err != nil {
		return fmt.Errorf("store: journal step %d: %w", id, mapErr(err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return errLeaseLost(f)
	}
	return nil
}

// AppendLog stores log lines in one transaction, only while f is the
// current lease (a fenced-off runner's lines are refused).
func (db *DB) AppendLog(ctx context.Context, f ops.Fence, lines []ops.LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	return db.WithTx(ctx, func(tx *Tx) error {
		if err := tx.CheckFence(ctx, f); err != nil {
			return err
		}
		stmt, err := tx.tx.PrepareContext(ctx, `INSERT INTO run_log (run_id, ts, target, stream, line) VALUES (?, ?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("store: append log: %w", err)
		}
		defer stmt.Close()
		for _, l := range lines {
			ts := l.Time
			if ts.IsZero() {
				ts = tx.now
			}
			if _, err := stmt.ExecContext(ctx, l.RunID, formatTime(ts), l.Target, l.Stream, l.Line); err != nil {
				return fmt.Errorf("store: append log: %w", mapErr(err))
			}
		}
		return nil
	})
}

const runColumns = `SELECT id, update_id, environment, kind, state, holder, epoch, decision, decision_reason, error, started_at, finished_at FROM runs`

// GetRun returns one run.
func (db *DB) GetRun(ctx context.Context, id string) (ops.Run, error) {
	runs, err := db.queryRuns(ctx, runColumns+` WHERE id = ?`, id)
	if err != nil {
		return ops.Run{}, err
	}
	if len(runs) == 0 {
		return ops.Run{}, fmt.Errorf("store: run %s: %w", id, ErrNotFound)
	}
	return runs[0], nil
}

// Runs returns the runs of an update, newest first ("" = every update),
// optionally only those in the given states.
func (db *DB) Runs(ctx context.Context, updateID string, states ...ops.RunState) ([]ops.Run, error) {
	q := runColumns + ` WHERE 1 = 1`
	var args []any
	if updateID != "" {
		q += ` AND update_id = ?`
		args = append(args, updateID)
	}
	if len(states) > 0 {
		marks := make([]string, len(states))
		for i, s := range states {
			marks[i] = "?"
			args = append(args, string(s))
		}
		q += ` AND state IN (` + strings.Join(marks, ", ") + `)`
	}
	// rowid breaks ties in insertion order (runs started within one clock tick).
	return db.queryRuns(ctx, q+` ORDER BY started_at DESC, rowid DESC`, args...)
}

// LatestRuns returns every running run and each environment's newest
// run that is not running, newest first: what a status view needs, one
// index seek per environment (runs_env_started) instead of reading every
// run ever made. An environment no longer configured is left out, but for
// its running runs.
func (db *DB) LatestRuns(ctx context.Context) ([]ops.Run, error) { return LatestRunsIn(ctx, db.sql) }

// LatestRun returns the newest run of any environment.
func (db *DB) LatestRun(ctx context.Context) (ops.Run, bool, error) { return LatestRunIn(ctx, db.sql) }

// LatestRunsIn is LatestRuns over either engine's handle (the PostgreSQL
// store shares it: its runs carry a rowid identity column too).
func LatestRunsIn(ctx context.Context, db Querier) ([]ops.Run, error) {
	return QueryRuns(ctx, db, runColumns+` WHERE state = ? OR rowid IN (
		SELECT (SELECT r.rowid FROM runs r WHERE r.environment = e.name AND r.state <> ?
			ORDER BY r.started_at DESC, r.rowid DESC LIMIT 1) FROM environments e)
		ORDER BY started_at DESC, rowid DESC`, string(ops.RunRunning), string(ops.RunRunning))
}

// LatestRunIn is LatestRun over either engine's handle.
func LatestRunIn(ctx context.Context, db Querier) (ops.Run, bool, error) {
	runs, err := QueryRuns(ctx, db, runColumns+` ORDER BY started_at DESC, rowid DESC LIMIT 1`)
	if err != nil || len(runs) == 0 {
		return ops.Run{}, false, err
	}
	return runs[0], true, nil
}

func (db *DB) queryRuns(ctx context.Context, q string, args ...any) ([]ops.Run, error) {
	return QueryRuns(ctx, db.sql, q, args...)
}

// Querier is a pool or a transaction, of this store or of the PostgreSQL
// one (which rebinds `?`): what the queries both engines share need.
type Querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// QueryRuns runs a query of runColumns and reads its runs.
func QueryRuns(ctx context.Context, db Querier, q string, args ...any) ([]ops.Run, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: runs: %w", err)
	}
	defer rows.Close()
	var out []ops.Run
	for rows.Next() {
		var (
			r             ops.Run
			started, fini string
		)
		if err := rows.Scan(&r.ID, &r.UpdateID, &r.Environment, &r.Kind, &r.State, &r.Holder, &r.Epoch, &r.Decision, &r.DecisionReason, &r.Error, &started, &fini); err != nil {
			return nil, fmt.Errorf("store: scan run: %w", err)
		}
		if r.StartedAt, err = parseTime(started); err != nil {
			return nil, err
		}
		if r.FinishedAt, err = parseTime(fini); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Steps returns a run's journal in order.
func (db *DB) Steps(ctx context.Context, runID string) ([]ops.StepRecord, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT id, run_id, batch, target, step, version, attempt, holder, epoch, pgid, state, detail, started_at, finished_at
		FROM run_steps WHERE run_id = ? ORDER BY id`, runID)
	if err != nil {
		return nil, fmt.Errorf("store: steps of %s: %w", runID, err)
	}
	defer rows.Close()
	var out []ops.StepRecord
	for rows.Next() {
		var (
			s             ops.StepRecord
			started, fini string
		)
		if err := rows.Scan(&s.ID, &s.RunID, &s.Batch, &s.Target, &s.Step, &s.Version, &s.Attempt, &s.Holder, &s.Epoch, &s.PGID, &s.State, &s.Detail, &started, &fini); err != nil {
			return nil, fmt.Errorf("store: scan step: %w", err)
		}
		if s.StartedAt, err = parseTime(started); err != nil {
			return nil, err
		}
		if s.FinishedAt, err = parseTime(fini); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// LogLines returns up to limit lines of a run's log after line id after;
// with runID empty, of every run's log (the log feed).
func (db *DB) LogLines(ctx context.Context, runID string, after int64, limit int) ([]ops.LogLine, error) {
	return LogLinesIn(ctx, db.sql, runID, after, limit)
}

// LogLinesIn is LogLines over either engine's handle.
func LogLinesIn(ctx context.Context, db Querier, runID string, after int64, limit int) ([]ops.LogLine, error) {
	if limit <= 0 {
		limit = 1000
	}
	q, args := `SELECT id, run_id, ts, target, stream, line FROM run_log
		WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?`, []any{runID, after, limit}
	if runID == "" {
		q, args = `SELECT id, run_id, ts, target, stream, line FROM run_log
		WHERE id > ? ORDER BY id LIMIT ?`, []any{after, limit}
	}
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: log of %s: %w", runID, err)
	}
	defer rows.Close()
	var out []ops.LogLine
	for rows.Next() {
		var (
			l  ops.LogLine
			ts string
		)
		if err := rows.Scan(&l.ID, &l.RunID, &ts, &l.Target, &l.Stream, &l.Line); err != nil {
			return nil, fmt.Errorf("store: scan log: %w", err)
		}
		if l.Time, err = parseTime(ts); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// LastLogLine returns the id of the newest line of any run's log (0 for
// none): where a log feed that starts now begins.
func (db *DB) LastLogLine(ctx context.Context) (int64, error) {
	var id int64
	if err := db.sql.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM run_log`).Scan(&id); err != nil {
		return 0, fmt.Errorf("store: last log line: %w", err)
	}
	return id, nil
}

// TargetVersions returns, per target of env, the version its last
// successful deploy or rollback step left it on, and the targets whose
// last step never finished (unknown state after a crash).
func (db *DB) TargetVersions(ctx context.Context, env string) (versions map[string]string, unknown []string, err error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT s.target, s.step, s.version, s.state FROM run_steps s JOIN runs r ON r.id = s.run_id
		WHERE r.environment = ? AND s.step IN ('deploy', 'rollback') ORDER BY s.id`, env)
	if err != nil {
		return nil, nil, fmt.Errorf("store: target versions of %s: %w", env, err)
	}
	defer rows.Close()
	versions = map[string]string{}
	last := map[string]string{}
	for rows.Next() {
		var target, step, version, state string
		if err := rows.Scan(&target, &step, &version, &state); err != nil {
			return nil, nil, err
		}
		last[target] = state
		if state == string(ops.StepSucceeded) {
			versions[target] = version
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	for t, st := range last {
		if st == string(ops.StepStarted) || st == string(ops.StepAbandoned) {
			unknown = append(unknown, t)
		}
	}
	return versions, unknown, nil
}
