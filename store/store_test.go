package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

func openTest(t *testing.T) *DB {
	t.Helper()
	clock := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "daytwo.db"), Options{Clock: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenMigratesAndReopens(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "d.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.sql.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != SchemaVersion() {
		t.Fatalf("schema_migrations rows = %d, %v; want %d", n, err, SchemaVersion())
	}
	var mode string
	if err := db.sql.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v", mode, err)
	}
	db.Close()
	db, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	db.Close()
}

func TestPragmasApplyToEveryPooledConnection(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	// Hold several connections at once so the pool has to open new ones.
	var conns []*sql.Conn
	for range 4 {
		c, err := db.sql.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		var fk, busy int
		if err := c.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
			t.Errorf("conn %d foreign_keys = %d, %v", i, fk, err)
		}
		if err := c.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy); err != nil || busy != 5000 {
			t.Errorf("conn %d busy_timeout = %d, %v", i, busy, err)
		}
		c.Close()
	}
}

func TestNewerSchemaIsRefusedAndLeftUntouched(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "d.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	future := SchemaVersion() + 1
	if _, err := db.sql.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', 'x')`, future); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(ctx, path, Options{})
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open on a newer schema: err = %v, want ErrSchemaTooNew", err)
	}
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var max int
	if err := raw.QueryRow(`SELECT MAX(version) FROM schema_migrations`).Scan(&max); err != nil || max != future {
		t.Fatalf("schema version after refused open = %d, %v; want %d", max, err, future)
	}
}

func TestConcurrentOpenMigratesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := Open(context.Background(), path, Options{})
			if err == nil {
				db.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestConstraintViolationIsErrConflict(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	err := db.WithTx(ctx, func(tx *Tx) error {
		_, err := tx.RecordRelease(ctx, ops.Release{Environment: "nowhere", Version: "1.0.0"})
		return err
	})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("release for an unknown environment: err = %v, want ErrConflict (foreign key)", err)
	}
}

func TestReleasesSupersede(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	if err := db.SyncEnvironments(ctx, []ops.Environment{{Name: "staging"}, {Name: "production", RequiresChange: true}}, "test"); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1.0.0", "1.1.0"} {
		if err := db.WithTx(ctx, func(tx *Tx) error {
			_, err := tx.RecordRelease(ctx, ops.Release{Environment: "staging", Version: v, Config: map[string]string{"a": "b"}})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	cur, err := db.CurrentReleases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := cur["staging"]; got.Version != "1.1.0" || got.Config["a"] != "b" || got.Digest != ops.ReleaseDigest("1.1.0", map[string]string{"a": "b"}) {
		t.Fatalf("current staging release = %+v", got)
	}
	if _, ok := cur["production"]; ok {
		t.Fatal("production has no release yet")
	}
	hist, err := db.Releases(ctx, "staging", 0)
	if err != nil || len(hist) != 2 || hist[1].Status != ops.ReleaseSuperseded {
		t.Fatalf("history = %+v, %v", hist, err)
	}
	names, err := db.EnvironmentNames(ctx)
	if err != nil || fmt.Sprint(names) != "[production staging]" {
		t.Fatalf("names = %v, %v", names, err)
	}
}

func TestUpsertChangesIsBatchedAndIdempotent(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	page := make([]ops.Change, 2000)
	for i := range page {
		page[i] = ops.Change{
			SysID: fmt.Sprintf("%032x", i), Number: fmt.Sprintf("CHG%07d", i), Type: "normal", State: ops.ChangeNew,
			Approval: "not requested", CorrelationID: fmt.Sprintf("daytwo:u%d", i), Active: true,
			SysUpdatedOn: base.Add(time.Duration(i/10) * time.Second), SysModCount: 1, Raw: []byte(`{"x":"1"}`),
		}
	}
	st, err := db.UpsertChanges(ctx, page)
	if err != nil || st.Written != 2000 || st.Unchanged != 0 {
		t.Fatalf("first upsert = %+v, %v", st, err)
	}
	st, err = db.UpsertChanges(ctx, page)
	if err != nil || st.Written != 0 || st.Unchanged != 2000 {
		t.Fatalf("replayed upsert = %+v, %v; want all unchanged", st, err)
	}
	newer := page[7]
	newer.State, newer.SysModCount, newer.SysUpdatedOn = ops.ChangeAssess, 2, base.Add(time.Hour)
	older := page[8]
	older.State, older.SysModCount = ops.ChangeCanceled, 0
	st, err = db.UpsertChanges(ctx, []ops.Change{newer, older})
	if err != nil || st.Written != 1 || st.Unchanged != 1 {
		t.Fatalf("mixed upsert = %+v, %v", st, err)
	}
	got, err := db.GetChange(ctx, newer.Number)
	if err != nil || got.State != ops.ChangeAssess || got.SysModCount != 2 || !got.SysUpdatedOn.Equal(newer.SysUpdatedOn) {
		t.Fatalf("newer change = %+v, %v", got, err)
	}
	got, err = db.GetChange(ctx, older.SysID)
	if err != nil || got.State != ops.ChangeNew {
		t.Fatalf("stale write must not win: %+v, %v", got, err)
	}
	if _, err := db.GetChange(ctx, "CHG9999999"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing change: err = %v", err)
	}
	list, err := db.ListChanges(ctx, ops.ChangeFilter{CorrelationPrefix: "daytwo:u19", Limit: 5})
	if err != nil || len(list) != 5 || list[0].CorrelationID[:10] != "daytwo:u19" {
		t.Fatalf("filtered list = %d rows, %v", len(list), err)
	}
	if n, _ := db.CountChanges(ctx, ops.ChangeFilter{}); n != 2000 {
		t.Fatalf("count = %d", n)
	}
}

func TestWatermarkCommitsWithTx(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	w := ops.Watermark{UpdatedOn: time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC), SysID: "abc"}
	boom := errors.New("boom")
	err := db.WithTx(ctx, func(tx *Tx) error {
		if err := tx.SetWatermark(ctx, "change_request", w); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if got, _ := db.GetWatermark(ctx, "change_request"); got != (ops.Watermark{}) {
		t.Fatalf("rolled-back watermark leaked: %+v", got)
	}
	if err := db.WithTx(ctx, func(tx *Tx) error { return tx.SetWatermark(ctx, "change_request", w) }); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.GetWatermark(ctx, "change_request"); got != w {
		t.Fatalf("watermark = %+v", got)
	}
}

func TestSyncEnvironmentsAuditsOnlyChanges(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	envs := []ops.Environment{{Name: "staging"}, {Name: "production", RequiresChange: true}}
	for range 2 {
		if err := db.SyncEnvironments(ctx, envs, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	envs[1].Strategy.MaxFailures = 1
	if err := db.SyncEnvironments(ctx, envs, "bob"); err != nil {
		t.Fatal(err)
	}
	evs, err := db.ListEvents(ctx, ops.EventFilter{})
	if err != nil || len(evs) != 3 {
		t.Fatalf("events = %+v, %v; want 2 creations and 1 change", evs, err)
	}
	if evs[2].Actor != "bob" || evs[2].Environment != "production" || evs[2].Action != "environment.configured" {
		t.Fatalf("last event = %+v", evs[2])
	}
}

// parseTime's fast path answers exactly what time.Parse answers, and
// leaves what it does not take (other shapes, impossible dates) to it.
func TestParseTimeFastSameAsParse(t *testing.T) {
	for _, s := range []string{
		"2026-11-26T10:00:00.000000000Z", "2024-02-29T23:59:59.999999999Z", "0001-01-01T00:00:00.000000000Z",
		"2026-04-31T10:00:00.000000000Z", "2026-13-01T10:00:00.000000000Z", "2026-11-26T24:00:00.000000000Z",
		"2026-11-26T10:00:60.000000000Z", "2026-11-26 10:00:00.000000000Z", "2026-11-26T10:00:00.00000000xZ",
		"2026-11-26T10:00:00Z", "2023-02-29T10:00:00.000000000Z", "+026-11-26T10:00:00.000000000Z",
	} {
		want, wantErr := time.Parse(timeFormat, s)
		got, err := parseTime(s)
		if (err != nil) != (wantErr != nil) || !got.Equal(want) || (err == nil && got.Location() != want.Location()) {
			t.Errorf("parseTime(%q) = %v, %v; time.Parse %v, %v", s, got, err, want, wantErr)
		}
	}
	now := time.Now().UTC()
	for i := range 1000 {
		tm := now.Add(time.Duration(i) * 7919 * time.Hour).Add(time.Duration(i) * 104729)
		got, err := parseTime(formatTime(tm))
		if err != nil || !got.Equal(tm) {
			t.Fatalf("round trip of %v: %v, %v", tm, got, err)
		}
	}
}
