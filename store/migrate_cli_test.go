package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/daytwo/daytwo/ops"
)

// TestOneOpenUpdateMigrationCarriesDataOver builds a schema-1 database by hand with
// what older daytwo wrote (two open updates for one environment, a change
// request payload with Go field names) and opens it: the newest open update
// stays, the older one is canceled saying why, and the payload is renamed
// to snake_case and still decodes.
func TestOneOpenUpdateMigrationCarriesDataOver(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		ms[0].SQL,
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`,
		`INSERT INTO schema_migrations VALUES (1, 'init', '2026-11-01T00:00:00.000000000Z')`,
		`INSERT INTO environments (name, spec_json, updated_at) VALUES ('production', '{}', '2026-11-01T00:00:00.000000000Z')`,
		`INSERT INTO updates (id, environment, version, plan_json, plan_digest, state, change_number, created_at, updated_at)
			VALUES ('u-old', 'production', '1.0.0', '{}', 'd1', 'awaiting_approval', 'CHG0000001', '2026-11-01T00:00:00.000000000Z', '2026-11-01T00:00:00.000000000Z'),
			       ('u-new', 'production', '1.1.0', '{}', 'd2', 'proposed', '', '2026-11-02T00:00:00.000000000Z', '2026-11-02T00:00:00.000000000Z')`,
		`INSERT INTO outbox (ordering_key, kind, payload_json, state, next_attempt_at, created_at)
			VALUES ('u-new', 'change.create', '{"update_id":"u-new","request":{"CorrelationID":"daytwo:u-new","Type":"normal","Template":"","ShortDescription":"s","Description":"d","CmdbCI":"ci","AssignmentGroup":"g","Risk":"low","Impact":"","Start":"2026-11-02T00:00:00Z","End":"2026-11-02T02:00:00Z"}}',
			        'pending', '2026-11-02T00:00:00.000000000Z', '2026-11-02T00:00:00.000000000Z'),
			       ('u-new', 'incident.create', '{"update_id":"u-new","request":{"CorrelationID":"daytwo:u-new:incident","ShortDescription":"s","Description":"d","CmdbCI":"ci","AssignmentGroup":"g","Impact":"2","Urgency":"2","CausedBy":"abc"}}',
			        'failed', '2026-11-02T00:00:00.000000000Z', '2026-11-02T00:00:00.000000000Z')`,
	} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%v: %s", err, q)
		}
	}
	raw.Close()

	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old, err := db.GetUpdate(ctx, "u-old")
	if err != nil || old.State != ops.UpdateCanceled || old.Reason == "" {
		t.Fatalf("older open update = %+v (%v), want canceled with a reason", old, err)
	}
	if u, err := db.GetUpdate(ctx, "u-new"); err != nil || u.State != ops.UpdateProposed {
		t.Fatalf("newest open update = %+v (%v), want it kept", u, err)
	}
	items, err := db.ListOutbox(ctx, ops.OutboxFilter{States: []ops.OutboxState{ops.OutboxPending, ops.OutboxFailed}})
	if err != nil || len(items) != 2 {
		t.Fatalf("outbox %+v %v", items, err)
	}
	if items[0].Kind != ops.OutboxCreateChange {
		items[0], items[1] = items[1], items[0]
	}
	var inc struct {
		Request ops.IncidentRequest `json:"request"`
	}
	if err := json.Unmarshal(items[1].Payload, &inc); err != nil || inc.Request.CausedBy != "abc" || inc.Request.Urgency != "2" {
		t.Fatalf("migrated incident payload decodes to %+v (%v): %s", inc.Request, err, items[1].Payload)
	}
	var p struct {
		Request ops.ChangeRequest `json:"request"`
	}
	if err := json.Unmarshal(items[0].Payload, &p); err != nil {
		t.Fatal(err)
	}
	if p.Request.CorrelationID != "daytwo:u-new" || p.Request.CmdbCI != "ci" || p.Request.End.IsZero() {
		t.Fatalf("migrated payload decodes to %+v (%s)", p.Request, items[0].Payload)
	}
	// A second open update for one environment is refused by the store.
	err = db.WithTx(ctx, func(tx *Tx) error {
		return tx.InsertUpdate(ctx, ops.Update{ID: "u-3", Environment: "production", Version: "1.2.0", State: ops.UpdateApproved, Plan: []byte("{}")})
	})
	if err == nil {
		t.Fatal("a second open update for production was stored")
	}
}
