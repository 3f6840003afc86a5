package pg

import (
	"context"
	"embed"
	"fmt"

	"github.com/daytwo/daytwo/store"
)

// The PostgreSQL migrations mirror the SQLite store's one for one (same
// versions, same meaning), so that a version names one schema in both
// engines and `daytwo store copy` can check both ends.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

func migrations() ([]store.Migration, error) { return store.ReadMigrations(migrationFS) }

// SchemaVersion is the newest schema version this binary knows.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil {
		return 0
	}
	return len(ms)
}

// migrate applies pending migrations, each in its own transaction under the
// writers' advisory lock (two daemons starting at once migrate once), and
// refuses a database from a newer binary.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	err = db.WithTx(ctx, func(tx *Tx) error {
		_, err := tx.tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    BIGINT PRIMARY KEY,
			name       TEXT NOT NULL,
			applied_at TEXT NOT NULL)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for _, m := range ms {
		err := db.WithTx(ctx, func(tx *Tx) error {
			var current int
			if err := tx.tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
				return fmt.Errorf("read schema version: %w", err)
			}
			if err := store.RefuseNewerSchema(current, len(ms)); err != nil {
				return err
			}
			if current >= m.Version {
				return nil
			}
			if _, err := tx.tx.tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("apply migration %04d_%s: %w", m.Version, m.Name, err)
			}
			if _, err := tx.tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.Version, m.Name, formatTime(tx.now)); err != nil {
				return err
			}
			db.log.Info("applied schema migration", "version", m.Version, "name", m.Name, "url", db.url)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
