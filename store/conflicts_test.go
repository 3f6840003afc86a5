package store

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

func TestConflictCheckRecord(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	if _, err := db.ConflictCheck(ctx, "u-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no check yet: %v", err)
	}
	started := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	save := func(chk ops.ConflictCheck) {
		t.Helper()
		if err := db.Atomic(ctx, func(tx ops.Tx) error { return tx.SaveConflictCheck(ctx, chk) }); err != nil {
			t.Fatal(err)
		}
	}
	save(ops.ConflictCheck{UpdateID: "u-1", ChangeSysID: "c1", State: ops.ConflictRunning, Worker: "w1", StartedAt: started})
	got, err := db.ConflictCheck(ctx, "u-1")
	if err != nil || got.State != ops.ConflictRunning || got.Worker != "w1" || !got.StartedAt.Equal(started) || got.CheckedAt.IsZero() {
		t.Fatalf("running check: %+v %v", got, err)
	}
	found := []ops.Conflict{{Type: "blackout", Label: "Blackout", Schedule: "Year-end freeze", CI: "checkout-service"}}
	save(ops.ConflictCheck{
		UpdateID: "u-1", ChangeSysID: "c1", State: ops.ConflictFound, Worker: "w1", StartedAt: started,
		LastRun: started.Add(2 * time.Second), Conflicts: found, CheckedAt: started.Add(3 * time.Second),
	})
	got, err = db.ConflictCheck(ctx, "u-1")
	if err != nil || got.State != ops.ConflictFound || len(got.Conflicts) != 1 || got.Conflicts[0] != found[0] ||
		!got.LastRun.Equal(started.Add(2*time.Second)) {
		t.Fatalf("completed check replaces the running one: %+v %v", got, err)
	}
	due, err := db.ConflictChecks(ctx, ops.ConflictFound, started.Add(time.Minute))
	if err != nil || len(due) != 1 || due[0].UpdateID != "u-1" {
		t.Fatalf("due: %+v %v", due, err)
	}
	if due, _ := db.ConflictChecks(ctx, ops.ConflictFound, started); len(due) != 0 {
		t.Fatalf("a check recorded after the bound is due: %+v", due)
	}
}

// Migration 0002 carries the checks recorded in the audit log (the last
// change.conflicts event per update) and conflict_status from raw_json.
func TestMigrationCarriesConflictChecksOver(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "d.db")
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	ts := "2026-05-01T10:00:00.000000000Z"
	for _, q := range []string{
		ms[0].SQL,
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`,
		`INSERT INTO schema_migrations VALUES (1, 'init', '` + ts + `')`,
		`INSERT INTO environments VALUES ('production', '', 1, '{}', '` + ts + `')`,
		`INSERT INTO updates (id, environment, version, plan_json, plan_digest, state, change_sys_id, created_at, updated_at)
			VALUES ('u-1', 'production', '1.0.0', '{}', 'd', 'approved', 'c1', '` + ts + `', '` + ts + `'),
			       ('u-2', 'production', '1.0.1', '{}', 'd', 'approved', 'c2', '` + ts + `', '` + ts + `')`,
		`INSERT INTO audit_events (ts, actor, action, update_id, result, detail_json, prev_hash, hash) VALUES
			('` + ts + `', 'daytwo', 'change.conflicts', 'u-1', 'Conflict', '{"conflicts":["Blackout (Year-end freeze)"]}', '', 'h1'),
			('` + ts + `', 'daytwo', 'change.conflicts', 'u-1', 'Conflict', '{"conflicts":[]}', 'h1', 'h2'),
			('` + ts + `', 'daytwo', 'change.conflicts', 'u-2', 'Conflict', '{"conflicts":["CI Already Scheduled (with CHG0000001)"]}', 'h2', 'h3')`,
		`INSERT INTO changes (sys_id, number, state, sys_updated_on, sys_mod_count, raw_json, mirrored_at) VALUES
			('c1', 'CHG1', -2, '` + ts + `', 1, '{"conflict_status":{"value":"Conflict","display_value":"Conflict"}}', '` + ts + `'),
			('c2', 'CHG2', -2, '` + ts + `', 1, '{"conflict_status":"No Conflict"}', '` + ts + `'),
			('c3', 'CHG3', -2, '` + ts + `', 1, 'not json', '` + ts + `')`,
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u1, err := db.ConflictCheck(ctx, "u-1")
	if err != nil || u1.State != ops.ConflictClear || len(u1.Conflicts) != 0 || u1.ChangeSysID != "c1" {
		t.Errorf("u-1 (last check found none): %+v %v", u1, err)
	}
	u2, err := db.ConflictCheck(ctx, "u-2")
	if err != nil || u2.State != ops.ConflictFound || len(u2.Conflicts) != 1 || u2.Conflicts[0].Label != "CI Already Scheduled (with CHG0000001)" {
		t.Errorf("u-2: %+v %v", u2, err)
	}
	for id, want := range map[string]ops.ConflictStatus{"c1": ops.ConflictStatusConflict, "c2": ops.ConflictStatusNone, "c3": ""} {
		if ch, err := db.GetChange(ctx, id); err != nil || ch.ConflictStatus != want {
			t.Errorf("change %s: conflict_status %q (%v), want %q", id, ch.ConflictStatus, err, want)
		}
	}
}
