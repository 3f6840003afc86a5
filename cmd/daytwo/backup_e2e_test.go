package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupIsAConsistentOnlineCopy backs the database up while another
// connection holds SQLite's write lock with an uncommitted row: the backup
// must not wait for it, must not contain it, and must carry every
// committed row and a verifying audit chain.
func TestBackupIsAConsistentOnlineCopy(t *testing.T) {
	env, dbPath := exampleEnv(t)
	if r := daytwo(t, env, "propose", "staging", "1.4.2"); r.code != 0 {
		t.Fatalf("propose: %+v", r)
	}

	raw, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ctx := context.Background()
	conn, err := raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO daemons (id, host, pid, started_at, heartbeat_at) VALUES ('uncommitted:1', 'h', 1, 'x', 'x')`); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	copyPath := filepath.Join(dir, "copy.db")
	r := daytwo(t, env, "backup", "--to", copyPath, "-o", "json")
	if r.code != 0 {
		t.Fatalf("backup while a writer holds the lock: %+v", r)
	}
	var res backupResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if res.Path != copyPath || res.Bytes <= 0 || res.AuditEvents != 3 || res.AuditHead == "" {
		t.Fatalf("result = %+v", res)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}

	cp, err := sql.Open("sqlite", "file:"+copyPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	var daemons, updates int
	if err := cp.QueryRow(`SELECT count(*) FROM daemons WHERE id = 'uncommitted:1'`).Scan(&daemons); err != nil {
		t.Fatal(err)
	}
	if err := cp.QueryRow(`SELECT count(*) FROM updates`).Scan(&updates); err != nil {
		t.Fatal(err)
	}
	if daemons != 0 || updates != 1 {
		t.Fatalf("copy holds %d uncommitted daemon rows (want 0) and %d updates (want 1)", daemons, updates)
	}
	// The copy is a daytwo database: commands read it.
	copyEnv := append(append([]string(nil), env...), "DAYTWO_DB="+copyPath)
	if r := daytwo(t, copyEnv, "update", "list", "-o", "json"); r.code != 0 || !strings.Contains(r.stdout, `"version": "1.4.2"`) {
		t.Fatalf("update list on the copy: %+v", r)
	}

	// Nothing is overwritten.
	before, err := os.ReadFile(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	r = daytwo(t, env, "backup", "--to", copyPath)
	if r.code == 0 || !strings.Contains(r.stderr, copyPath) || !strings.Contains(r.stderr, "nothing is overwritten") {
		t.Fatalf("backup over an existing file: %+v", r)
	}
	if after, _ := os.ReadFile(copyPath); string(after) != string(before) {
		t.Fatal("a refused backup changed the existing file")
	}
	if r := daytwo(t, env, "backup", "--to", dbPath); r.code == 0 || !strings.Contains(r.stderr, dbPath) {
		t.Fatalf("backup onto the database itself: %+v", r)
	}
	if r := daytwo(t, env, "backup"); r.code != 2 || !strings.Contains(r.stderr, "--to FILE is required") {
		t.Fatalf("backup without --to: %+v", r)
	}
	if r := daytwo(t, env, "backup", "--to", filepath.Join(dir, "no", "such", "dir", "x.db")); r.code == 0 || !strings.Contains(r.stderr, "does not exist") {
		t.Fatalf("backup into a missing directory: %+v", r)
	}
}

// TestBackupWithoutADatabaseSaysSo: a backup of nothing is an error that
// names the path, and creates no database.
func TestBackupWithoutADatabaseSaysSo(t *testing.T) {
	env, dbPath := exampleEnv(t)
	r := daytwo(t, env, "backup", "--to", filepath.Join(t.TempDir(), "copy.db"))
	if r.code != 2 || !strings.Contains(r.stderr, "there is no database at "+dbPath) {
		t.Fatalf("%+v", r)
	}
	if _, err := os.Stat(dbPath); !os.IsNotExist(err) {
		t.Fatalf("backup created the database: %v", err)
	}
}
