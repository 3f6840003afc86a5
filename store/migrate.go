package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migration is one schema migration: a file NNNN_name.sql.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// migrations returns the SQLite store's embedded migrations in version
// order.
func migrations() ([]Migration, error) { return ReadMigrations(migrationFS) }

// ReadMigrations reads the files NNNN_name.sql of the directory
// "migrations" in fsys, in version order, and refuses a gap or a bad name:
// the loader both engines use.
func ReadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, e := range entries {
		base := strings.TrimSuffix(e.Name(), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration file %s: want NNNN_name.sql", e.Name())
		}
		body, err := fs.ReadFile(fsys, path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migrations: want version %d, found %d (%s)", i+1, m.Version, m.Name)
		}
	}
	return ms, nil
}

// SchemaVersion is the newest schema version this binary knows.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil {
		return 0
	}
	return len(ms)
}

// migrate applies pending migrations, each in its own transaction, and
// refuses a database from a newer binary. The version check runs inside the
// write transaction, so two processes opening a new file at once do not both
// apply a migration.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	// An up-to-date database is only read: opening it takes no write lock,
	// so a read or a backup never waits behind a busy writer.
	var current int
	if err := db.sql.QueryRowContext(ctx, currentVersionSQL).Scan(&current); err == nil {
		if err := RefuseNewerSchema(current, len(ms)); err != nil {
			return err
		}
		if current == len(ms) {
			return nil
		}
	}
	if _, err := db.sql.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for _, m := range ms {
		err := db.WithTx(ctx, func(tx *Tx) error {
			var current int
			if err := tx.tx.QueryRowContext(ctx, currentVersionSQL).Scan(&current); err != nil {
				return fmt.Errorf("read schema version: %w", err)
			}
			if err := RefuseNewerSchema(current, len(ms)); err != nil {
				return err
			}
			if current >= m.Version {
				return nil
			}
			if _, err := tx.tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("apply migration %04d_%s: %w", m.Version, m.Name, err)
			}
			if _, err := tx.tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.Version, m.Name, formatTime(tx.now)); err != nil {
				return err
			}
			db.log.Info("applied schema migration", "version", m.Version, "name", m.Name, "path", db.path)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

const currentVersionSQL = `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`

// RefuseNewerSchema refuses a database a newer daytwo migrated (either
// engine: the PostgreSQL store says the same words).
func RefuseNewerSchema(current, known int) error {
	if current > known {
		return fmt.Errorf("%w: database is at schema version %d, this daytwo knows up to %d; upgrade daytwo (the database was left untouched)", ErrSchemaTooNew, current, known)
	}
	return nil
}
