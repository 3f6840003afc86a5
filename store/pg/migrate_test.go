package pg_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/daytwo/daytwo/internal/pgtest"
	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store"
	"github.com/daytwo/daytwo/store/pg"
)

// schema3 is the SQL of migrations 1 to 3 in dir: a database as daytwo
// left it before the conflict checks, the outbox resolution and the
// one-open-update rule.
func schema3(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "000[123]_*.sql"))
	if err != nil || len(files) != 3 {
		t.Fatalf("migrations 1-3 in %s: %v %v", dir, files, err)
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// oldRows is what older daytwo wrote, in SQL both engines accept: conflict
// checks only in the audit log (valid, empty, missing, not JSON), conflict
// status only in raw_json (object, string, absent, not JSON), two open
// updates of one environment, and outbox payloads with Go field names (a
// JSON null field, a payload already renamed, one that is not JSON).
const oldRows = `
INSERT INTO schema_migrations (version, name, applied_at) VALUES
	(1, 'init', '2026-11-01T00:00:00.000000000Z'), (2, 'audit', '2026-11-01T00:00:00.000000000Z'),
	(3, 'safety', '2026-11-01T00:00:00.000000000Z');
INSERT INTO environments (name, spec_json, updated_at) VALUES ('production', '{}', '2026-11-01T00:00:00.000000000Z'),
	('staging', '{}', '2026-11-01T00:00:00.000000000Z');
INSERT INTO updates (id, environment, version, plan_json, plan_digest, state, change_sys_id, change_number, created_at, updated_at) VALUES
	('u-old', 'production', '1.0.0', '{}', 'd1', 'awaiting_approval', 'c1', 'CHG0000001', '2026-11-01T00:00:00.000000000Z', '2026-11-01T00:00:00.000000000Z'),
	('u-new', 'production', '1.1.0', '{}', 'd2', 'proposed', 'c2', '', '2026-11-02T00:00:00.000000000Z', '2026-11-02T00:00:00.000000000Z'),
	('u-run', 'staging', '1.0.0', '{}', 'd3', 'running', '', '', '2026-11-01T00:00:00.000000000Z', '2026-11-01T00:00:00.000000000Z'),
	('u-later', 'staging', '1.1.0', '{}', 'd4', 'approved', '', 'CHG0000004', '2026-11-03T00:00:00.000000000Z', '2026-11-03T00:00:00.000000000Z'),
	('u-done', 'staging', '0.9.0', '{}', 'd5', 'succeeded', '', '', '2026-10-01T00:00:00.000000000Z', '2026-10-01T00:00:00.000000000Z');
INSERT INTO audit_events (seq, ts, actor, action, update_id, result, detail_json, prev_hash, hash) VALUES
	(1, '2026-11-01T01:00:00.000000000Z', 'daytwo', 'change.conflicts', 'u-old', 'Conflict', '{"conflicts":["Blackout (Year-end freeze)"]}', '', 'h1'),
	(2, '2026-11-01T02:00:00.000000000Z', 'daytwo', 'change.conflicts', 'u-old', 'Conflict', '{"conflicts":[]}', 'h1', 'h2'),
	(3, '2026-11-02T01:00:00.000000000Z', 'daytwo', 'change.conflicts', 'u-new', 'Conflict', '{"conflicts":["CI Already Scheduled (with CHG0000001)","Maintenance"]}', 'h2', 'h3'),
	(4, '2026-11-02T02:00:00.000000000Z', 'daytwo', 'change.conflicts', 'u-run', 'Conflict', 'not json', 'h3', 'h4'),
	(5, '2026-11-02T03:00:00.000000000Z', 'daytwo', 'change.conflicts', 'u-later', '', '{"note":"none"}', 'h4', 'h5'),
	(6, '2026-11-02T04:00:00.000000000Z', 'daytwo', 'change.conflicts', '', '', '{"conflicts":["x"]}', 'h5', 'h6');
INSERT INTO changes (sys_id, number, state, sys_updated_on, sys_mod_count, raw_json, mirrored_at) VALUES
	('c1', 'CHG1', -2, '2026-11-01T00:00:00.000000000Z', 1, '{"conflict_status":{"value":"Conflict","display_value":"Conflict"}}', '2026-11-01T00:00:00.000000000Z'),
	('c2', 'CHG2', -2, '2026-11-01T00:00:00.000000000Z', 1, '{"conflict_status":"No Conflict"}', '2026-11-01T00:00:00.000000000Z'),
	('c3', 'CHG3', -2, '2026-11-01T00:00:00.000000000Z', 1, 'not json', '2026-11-01T00:00:00.000000000Z'),
	('c4', 'CHG4', -2, '2026-11-01T00:00:00.000000000Z', 1, '{"number":"CHG4"}', '2026-11-01T00:00:00.000000000Z');
INSERT INTO outbox (id, ordering_key, kind, payload_json, state, next_attempt_at, created_at) VALUES
	(1, 'u-new', 'change.create', '{"update_id":"u-new","request":{"CorrelationID":"daytwo:u-new","Type":"normal","Template":"","ShortDescription":"s","Description":"d","CmdbCI":"ci","AssignmentGroup":"g","Risk":null,"Impact":"","Start":"2026-11-02T00:00:00Z","End":"2026-11-02T02:00:00Z"}}',
		'pending', '2026-11-02T00:00:00.000000000Z', '2026-11-02T00:00:00.000000000Z'),
	(2, 'u-new', 'incident.create', '{"update_id":"u-new","request":{"CorrelationID":"daytwo:u-new:incident","ShortDescription":"s","Description":"d","CmdbCI":"ci","AssignmentGroup":"g","Impact":"2","Urgency":"2","CausedBy":"abc"}}',
		'failed', '2026-11-02T00:00:00.000000000Z', '2026-11-02T00:00:00.000000000Z'),
	(3, 'u-run', 'change.create', '{"update_id":"u-run","request":{"correlation_id":"daytwo:u-run","type":"normal"}}',
		'failed', '2026-11-02T00:00:00.000000000Z', '2026-11-02T00:00:00.000000000Z'),
	(4, 'u-run', 'change.create', 'not json', 'failed', '2026-11-02T00:00:00.000000000Z', '2026-11-02T00:00:00.000000000Z'),
	(5, 'u-run', 'change.create', '{"update_id":"u-run"}', 'failed', '2026-11-02T00:00:00.000000000Z', '2026-11-02T00:00:00.000000000Z');
`

// migrated is what a store reads after migrating oldRows.
type migrated struct {
	Checks  map[string]any
	Status  map[string]ops.ConflictStatus
	Updates map[string][2]string // state, reason
	Outbox  map[int64]any        // payload as decoded JSON, or the text when not JSON
}

type migratedStore interface {
	ConflictCheck(ctx context.Context, updateID string) (ops.ConflictCheck, error)
	GetChange(ctx context.Context, sysID string) (ops.Change, error)
	GetUpdate(ctx context.Context, id string) (ops.Update, error)
	GetOutbox(ctx context.Context, id int64) (ops.OutboxItem, error)
}

func readMigrated(t *testing.T, s migratedStore) migrated {
	t.Helper()
	ctx := context.Background()
	m := migrated{Checks: map[string]any{}, Status: map[string]ops.ConflictStatus{}, Updates: map[string][2]string{}, Outbox: map[int64]any{}}
	for _, id := range []string{"u-old", "u-new", "u-run", "u-later", "u-done"} {
		chk, err := s.ConflictCheck(ctx, id)
		if err != nil {
			m.Checks[id] = err.Error()
		} else {
			m.Checks[id] = chk
		}
		u, err := s.GetUpdate(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		m.Updates[id] = [2]string{string(u.State), u.Reason}
	}
	for _, id := range []string{"c1", "c2", "c3", "c4"} {
		ch, err := s.GetChange(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		m.Status[id] = ch.ConflictStatus
	}
	for id := int64(1); id <= 5; id++ {
		it, err := s.GetOutbox(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if json.Unmarshal(it.Payload, &v) != nil {
			v = string(it.Payload)
		}
		m.Outbox[id] = v
	}
	return m
}

// TestMigrationsCarryOverLikeSQLite: the PostgreSQL migrations 4 to 6 carry
// what older daytwo wrote over as the SQLite ones do (the same conflict
// checks, conflict status, canceled updates and renamed payloads), from the
// same rows.
func TestMigrationsCarryOverLikeSQLite(t *testing.T) {
	ctx := context.Background()

	path := filepath.Join(t.TempDir(), "old.db")
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	stmts := append(schema3(t, filepath.Join("..", "migrations")),
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`, oldRows)
	for _, q := range stmts {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("SQLite: %v: %.80s", err, q)
		}
	}
	raw.Close()
	lite, err := store.Open(ctx, path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	want := readMigrated(t, lite)

	srv := pgtest.Start(t)
	name := srv.CreateDB(t)
	for _, q := range append(schema3(t, "migrations"),
		`CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`, oldRows) {
		srv.Exec(t, name, q)
	}
	db, err := pg.Open(ctx, srv.URL(name), pg.Options{Password: srv.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got := readMigrated(t, db)

	// The carry-over did something: the data the comparison stands on.
	if chk, ok := want.Checks["u-new"].(ops.ConflictCheck); !ok || chk.State != ops.ConflictFound || len(chk.Conflicts) != 2 {
		t.Fatalf("SQLite carried u-new's check over as %+v", want.Checks["u-new"])
	}
	if want.Updates["u-old"][0] != string(ops.UpdateCanceled) || want.Updates["u-later"][0] != string(ops.UpdateCanceled) ||
		want.Status["c1"] != ops.ConflictStatusConflict {
		t.Fatalf("SQLite carried over updates %v, status %v", want.Updates, want.Status)
	}
	if req, _ := want.Outbox[1].(map[string]any)["request"].(map[string]any); req["correlation_id"] != "daytwo:u-new" || req["risk"] != "" {
		t.Fatalf("SQLite renamed payload 1 to %v", want.Outbox[1])
	}
	for _, part := range []struct {
		name      string
		got, want any
	}{
		{"conflict checks", got.Checks, want.Checks},
		{"conflict status", got.Status, want.Status},
		{"updates", got.Updates, want.Updates},
		{"outbox payloads", got.Outbox, want.Outbox},
	} {
		if !reflect.DeepEqual(part.got, part.want) {
			t.Errorf("%s after migration:\nPostgreSQL %+v\nSQLite     %+v", part.name, part.got, part.want)
		}
	}
	// No helper the migrations used is left behind.
	srv.Exec(t, name, `DO $$ BEGIN
		IF EXISTS (SELECT 1 FROM pg_proc WHERE proname LIKE 'daytwo%') THEN RAISE EXCEPTION 'a migration left its function behind'; END IF;
	END $$`)
	if t.Failed() {
		return
	}
	if !strings.Contains(got.Updates["u-old"][1], "CHG0000001") {
		t.Fatalf("the canceled update's reason does not name its change: %q", got.Updates["u-old"][1])
	}
}
