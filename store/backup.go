package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Backup writes a consistent copy of the open database to path with
// SQLite's VACUUM INTO: the copy is the snapshot of one read transaction,
// so daemons and consoles keep writing while it is taken and the copy
// never holds half of a transaction. path must not exist (nothing is
// overwritten) and its directory must. The copy is checked with
// PRAGMA integrity_check before Backup returns; a copy that fails it is
// removed.
// It returns the size of the copy in bytes.
func (db *DB) Backup(ctx context.Context, path string) (int64, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, fmt.Errorf("backup %s: %w", path, err)
	}
	if same, _ := samePath(abs, db.path); same {
		return 0, fmt.Errorf("backup %s: that is the database itself", path)
	}
	if _, err := os.Lstat(abs); err == nil {
		return 0, fmt.Errorf("backup %s: %w (choose a new file; nothing is overwritten)", path, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("backup %s: %w", path, err)
	}
	if st, err := os.Stat(filepath.Dir(abs)); err != nil || !st.IsDir() {
		return 0, fmt.Errorf("backup %s: directory %s does not exist", path, filepath.Dir(abs))
	}
	if _, err := db.sql.ExecContext(ctx, "VACUUM INTO ?", abs); err != nil {
		os.Remove(abs)
		return 0, fmt.Errorf("backup %s: %w", path, err)
	}
	if err := checkCopy(ctx, abs); err != nil {
		os.Remove(abs)
		return 0, fmt.Errorf("backup %s: the copy failed its integrity check: %w", path, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return 0, fmt.Errorf("backup %s: %w", path, err)
	}
	return st.Size(), nil
}

// checkCopy runs SQLite's integrity check on the file at path, read-only.
func checkCopy(ctx context.Context, path string) error {
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return err
	}
	defer raw.Close()
	var res string
	if err := raw.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return err
	}
	if res != "ok" {
		return errors.New(res)
	}
	return nil
}

func samePath(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}
