package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// A database daytwo creates has its page size (the mirror's writes are
// cheaper with it); one that exists keeps its own.
func TestNewDatabaseGetsThePageSize(t *testing.T) {
	ctx := context.Background()
	pageOf := func(db *DB) int {
		t.Helper()
		var n int
		if err := db.sql.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	path := filepath.Join(t.TempDir(), "daytwo.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := pageOf(db); got != pageSize {
		t.Fatalf("new database: page_size %d, want %d", got, pageSize)
	}
	var mode string
	if err := db.sql.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
	db.Close()

	// An existing 4 KiB database is opened as it is.
	old := filepath.Join(t.TempDir(), "old.db")
	raw, err := sqlOpenPlain(old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`PRAGMA page_size = 4096; CREATE TABLE keep (x)`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	db, err = Open(ctx, old, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := pageOf(db); got != 4096 {
		t.Fatalf("existing database: page_size %d, want its own 4096", got)
	}
}

func sqlOpenPlain(path string) (*sql.DB, error) { return sql.Open("sqlite", "file:"+path) }
