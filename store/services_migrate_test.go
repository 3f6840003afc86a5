package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/daytwo/daytwo/ops"
)

// TestServicesMigrationKeepsHistory: a database made before services
// (schema 10, one environment with a release and an update) opens under
// migration 0011 with its history intact: the environment becomes a pair
// of the implicit service keyed by its old name, its update a member of no
// bundle.
func TestServicesMigrationKeepsHistory(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`}
	for _, m := range ms {
		if m.Version > 10 {
			break
		}
		stmts = append(stmts, m.SQL, fmt.Sprintf(`INSERT INTO schema_migrations VALUES (%d, '%s', '2026-11-01T00:00:00.000000000Z')`, m.Version, m.Name))
	}
	stmts = append(stmts,
		`INSERT INTO environments (name, tier, requires_change, spec_json, updated_at) VALUES ('production', 'production', 1, '{"name":"production"}', '2026-11-01T00:00:00.000000000Z')`,
		`INSERT INTO updates (id, environment, version, plan_json, plan_digest, state, created_at, updated_at) VALUES ('u-1', 'production', '1.4.2', '{}', 'd1', 'succeeded', '2026-11-01T00:00:00.000000000Z', '2026-11-01T00:00:00.000000000Z')`,
		`INSERT INTO releases (environment, version, digest, update_id, status, created_at) VALUES ('production', '1.4.2', 'x', 'u-1', 'active', '2026-11-01T00:00:00.000000000Z')`,
	)
	for _, q := range stmts {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
	raw.Close()

	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var service, stage string
	if err := db.sql.QueryRowContext(ctx, `SELECT service, stage FROM environments WHERE name = 'production'`).Scan(&service, &stage); err != nil {
		t.Fatal(err)
	}
	if service != "" || stage != "production" {
		t.Fatalf("carried over as service %q stage %q", service, stage)
	}
	rels, err := db.Releases(ctx, "production", 0)
	if err != nil || len(rels) != 1 || rels[0].Version != "1.4.2" {
		t.Fatalf("releases = %+v, %v", rels, err)
	}
	ups, err := db.ListUpdates(ctx, ops.UpdateFilter{Environment: "production"})
	if err != nil || len(ups) != 1 || ups[0].ID != "u-1" {
		t.Fatalf("updates = %+v, %v", ups, err)
	}
	var bundle string
	if err := db.sql.QueryRowContext(ctx, `SELECT bundle_id FROM updates WHERE id = 'u-1'`).Scan(&bundle); err != nil || bundle != "" {
		t.Fatalf("bundle_id = %q, %v", bundle, err)
	}
	// The implicit service's pair keeps the old key; syncing the
	// configuration names its service and stage.
	if err := db.SyncEnvironments(ctx, []ops.Environment{{Name: "production", Service: "checkout", Stage: "production", Tier: "production"}}, "test"); err != nil {
		t.Fatal(err)
	}
	if err := db.sql.QueryRowContext(ctx, `SELECT service, stage FROM environments WHERE name = 'production'`).Scan(&service, &stage); err != nil || service != "checkout" || stage != "production" {
		t.Fatalf("after sync: %q %q %v", service, stage, err)
	}
}
