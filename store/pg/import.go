package pg

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// importOrder lists every domain table, parents before children. Import
// refuses a database with tables it does not name, so that a table added
// by a migration is not silently left behind.
var importOrder = []string{
	"environments", "releases", "updates", "conflict_checks", "changes", "approvals", "incidents",
	"runs", "run_steps", "run_log", "run_facts", "outbox", "sync_watermarks",
	"leases", "drift", "policy_alerts", "audit_events", "daemons", "ci_cache", "changes_generation", "changes_writes",
}

// identityTables have a generated id whose sequence must follow the copy.
var identityTables = map[string]string{"releases": "id", "run_steps": "id", "run_log": "id", "outbox": "id"}

// ImportSQLite copies every row of a daytwo SQLite database (src, opened
// read-only at the same schema version) into this database, which must be
// empty, in one transaction: rows keep their ids, timestamps and audit
// hashes, so the audit chain verifies on the copy. It returns the rows
// copied per table.
func (db *DB) ImportSQLite(ctx context.Context, src *sql.DB) (map[string]int64, error) {
	if err := db.checkTables(ctx); err != nil {
		return nil, err
	}
	srcTx, err := src.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("store copy: read source: %w", err)
	}
	defer srcTx.Rollback() //nolint:errcheck // read-only
	if err := checkSQLiteTables(ctx, srcTx); err != nil {
		return nil, err
	}
	counts := map[string]int64{}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("store copy: %w", db.scrub(err))
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit, a no-op
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(writerLock)); err != nil {
		return nil, fmt.Errorf("store copy: %w", db.scrub(err))
	}
	for _, table := range importOrder {
		var n int64
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
			return nil, fmt.Errorf("store copy: %s: %w", table, db.scrub(err))
		}
		if n > 0 {
			return nil, fmt.Errorf("store copy: the destination %s is not empty (table %s has %d rows): copy into a new, empty database", db.url, table, n)
		}
	}
	for _, table := range importOrder {
		cols, err := pgColumns(ctx, tx, table)
		if err != nil {
			return nil, err
		}
		rows, err := srcTx.QueryContext(ctx, `SELECT `+joinCols(cols)+` FROM `+table+` ORDER BY rowid`)
		if err != nil {
			return nil, fmt.Errorf("store copy: read %s: %w", table, err)
		}
		var batch [][]any
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store copy: read %s: %w", table, err)
			}
			for i, v := range vals {
				if b, ok := v.([]byte); ok {
					vals[i] = string(b)
				}
			}
			batch = append(batch, vals)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("store copy: read %s: %w", table, err)
		}
		n, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(batch))
		if err != nil {
			return nil, fmt.Errorf("store copy: write %s: %w", table, db.scrub(err))
		}
		counts[table] = n
		if col, ok := identityTables[table]; ok {
			if _, err := tx.Exec(ctx, fmt.Sprintf(`SELECT setval(pg_get_serial_sequence('%s', '%s'), COALESCE(MAX(%s), 0) + 1, false) FROM %s`,
				table, col, col, table)); err != nil {
				return nil, fmt.Errorf("store copy: %s sequence: %w", table, db.scrub(err))
			}
		}
	}
	// The highest audit sequence ever written (SQLite's sqlite_sequence)
	// carries over, so that a tail cut before the copy is still reported.
	var written sql.NullInt64
	err = srcTx.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'audit_events'`).Scan(&written)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store copy: read the audit counter: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE audit_head SET seq = GREATEST($1, (SELECT COALESCE(MAX(seq), 0) FROM audit_events)) WHERE id = 1`, written.Int64); err != nil {
		return nil, fmt.Errorf("store copy: audit counter: %w", db.scrub(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("store copy: commit: %w", db.scrub(err))
	}
	return counts, nil
}

func joinCols(cols []string) string {
	s := ""
	for i, c := range cols {
		if i > 0 {
			s += ", "
		}
		s += c
	}
	return s
}

// pgColumns lists a table's columns that a copy fills (all but generated
// identities that only PostgreSQL has, such as runs.rowid).
func pgColumns(ctx context.Context, tx pgx.Tx, table string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1 AND identity_generation IS DISTINCT FROM 'ALWAYS'
		ORDER BY ordinal_position`, table)
	if err != nil {
		return nil, fmt.Errorf("store copy: columns of %s: %w", table, err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store copy: columns of %s: %w", table, err)
	}
	return cols, nil
}

// checkTables makes sure importOrder names every table of the schema.
func (db *DB) checkTables(ctx context.Context) error {
	rows, err := db.pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()
		AND table_name NOT IN ('schema_migrations', 'audit_head') ORDER BY table_name`)
	if err != nil {
		return fmt.Errorf("store copy: %w", db.scrub(err))
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("store copy: %w", db.scrub(err))
	}
	return sameTables("PostgreSQL", names)
}

func checkSQLiteTables(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table'
		AND name NOT IN ('schema_migrations', 'sqlite_sequence') ORDER BY name`)
	if err != nil {
		return fmt.Errorf("store copy: read source tables: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return err
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return sameTables("the SQLite source", names)
}

func sameTables(where string, names []string) error {
	want := slices.Clone(importOrder)
	slices.Sort(want)
	slices.Sort(names)
	if !slices.Equal(want, names) {
		return fmt.Errorf("store copy: %s has tables %v, this daytwo copies %v: a migration is missing on one side", where, names, want)
	}
	return nil
}
