package pg_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/daytwo/daytwo/internal/pgtest"
	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store"
	"github.com/daytwo/daytwo/store/pg"
	"github.com/daytwo/daytwo/store/storetest"
)

// TestContract runs the store contract on a real PostgreSQL server.
func TestContract(t *testing.T) {
	srv := pgtest.Start(t)
	storetest.Run(t, func(t *testing.T, o storetest.Options) storetest.Store {
		url := ""
		if o.Same != nil {
			url = o.Same.(*pg.DB).URL()
		} else {
			url = srv.URL(srv.CreateDB(t))
		}
		db, err := pg.Open(context.Background(), url, pg.Options{Clock: o.Clock, AuditKey: o.AuditKey, Password: srv.Password})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}

// TestMigrationsMatchSQLite: a schema version names the same schema in
// both engines. A migration added to store/migrations needs its
// PostgreSQL counterpart in store/pg/migrations.
func TestMigrationsMatchSQLite(t *testing.T) {
	if pg.SchemaVersion() != store.SchemaVersion() {
		t.Fatalf("PostgreSQL schema version %d, SQLite %d: add the missing migration to store/pg/migrations", pg.SchemaVersion(), store.SchemaVersion())
	}
}

func TestNewerSchemaRefusedAndPasswordNeverShown(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	name := srv.CreateDB(t)
	db, err := pg.Open(ctx, srv.URL(name), pg.Options{Password: srv.Password})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	// Reopening migrates nothing and works.
	if db, err = pg.Open(ctx, srv.URL(name), pg.Options{Password: srv.Password}); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	db.Close()
	srv.Exec(t, name, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', '')`)
	_, err = pg.Open(ctx, srv.URL(name), pg.Options{Password: srv.Password})
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("newer schema: %v, want ErrSchemaTooNew", err)
	}
	// A wrong password in the URL fails without showing it.
	bad := strings.Replace(srv.URL(name), srv.User+"@", srv.User+":wrong-secret-pw@", 1)
	_, err = pg.Open(ctx, bad, pg.Options{})
	if err == nil || strings.Contains(err.Error(), "wrong-secret-pw") {
		t.Fatalf("bad password: %v (must fail and not show the password)", err)
	}
	if got := pg.Redact(bad); strings.Contains(got, "wrong-secret-pw") {
		t.Fatalf("Redact = %s", got)
	}
}

func TestAuditTamperingIsDetected(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	name := srv.CreateDB(t)
	db, err := pg.Open(ctx, srv.URL(name), pg.Options{Password: srv.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, a := range []string{"one", "two", "three"} {
		if _, err := db.AppendEvent(ctx, ops.Event{Actor: "t", Action: a}); err != nil {
			t.Fatal(err)
		}
	}
	srv.Exec(t, name, `UPDATE audit_events SET actor = 'mallory' WHERE seq = 2`)
	if v, err := db.VerifyAudit(ctx); err != nil || v.OK || v.BadSeq != 2 {
		t.Fatalf("edited event: %+v, %v", v, err)
	}
	srv.Exec(t, name, `UPDATE audit_events SET actor = 't' WHERE seq = 2`)
	srv.Exec(t, name, `DELETE FROM audit_events WHERE seq = 3`)
	if v, err := db.VerifyAudit(ctx); err != nil || v.OK || v.BadSeq != 3 || !strings.Contains(v.Problem, "cut off the end") {
		t.Fatalf("cut tail: %+v, %v", v, err)
	}
}

// TestServerRestartIsSurvived: while PostgreSQL is down the store reports
// errors (a daemon reports not ready); once it is back the same pool works
// again and nothing committed is lost.
func TestServerRestartIsSurvived(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	db, err := pg.Open(ctx, srv.URL(srv.CreateDB(t)), pg.Options{Password: srv.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.AppendEvent(ctx, ops.Event{Actor: "t", Action: "before"}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded with the server down")
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for db.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the pool never reconnected")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := db.AppendEvent(ctx, ops.Event{Actor: "t", Action: "after"}); err != nil {
		t.Fatal(err)
	}
	if v, err := db.VerifyAudit(ctx); err != nil || !v.OK || v.Events != 2 {
		t.Fatalf("after restart: %+v, %v", v, err)
	}
}
