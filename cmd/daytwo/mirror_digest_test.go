package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/daytwo/daytwo/itsm"
	"github.com/daytwo/daytwo/itsm/snowsim"
	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store"
)

// mirrorGoldenDigest is the digest of what the mirror stores for
// mirrorDigestWorld (rows, every stored field including the raw JSON, and
// the watermark). It was computed before the mirror's decoder, paging and
// upserts were rewritten for speed (issue 14) and must not change: a
// faster mirror that stores something else is a broken mirror.
const mirrorGoldenDigest = "cf0567815fea5aec8c08e77e26e43cfb3227e108b9dd2201ff02ce34f949a362"

// mirrorInterruptedDigest is the same for a first run cut off by a
// transport error at the forward query after 00:01:00 (the rows and the
// watermark inside that run's last second).
const mirrorInterruptedDigest = "3f2c48df08e8d07d79e6a8245647773ffe6e75e731bfbd3935a1e512b0985ce9"

// hexIDRE matches sys_ids. The simulator draws them at random, so the
// digest names each by its first appearance in number order instead.
var hexIDRE = regexp.MustCompile(`[0-9a-f]{32}`)

// mirrorDigest reads the mirrored tables of the database at path straight
// through SQL (not through the store's own readers, which could change with
// it) and hashes them in a stable order.
func mirrorDigest(t *testing.T, path string) (digest string, rows int) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var sb strings.Builder
	q := `SELECT number, sys_id, type, state, approval, risk, short_description, cmdb_ci, assignment_group,
		requested_by, requested_by_id, start_date, end_date, correlation_id, active, close_code, sys_updated_on,
		sys_mod_count, raw_json, conflict_status FROM changes ORDER BY number, sys_id`
	r, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := r.Columns()
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for r.Next() {
		if err := r.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		rows++
		for i, v := range vals {
			fmt.Fprintf(&sb, "%s=%q;", cols[i], v.String)
		}
		sb.WriteByte('\n')
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	// A watermark's sys_id is named by its rank in its second (1 = the
	// first by sys_id) out of the rows of that second: which row sorts last
	// is up to the simulator's random ids, its position is not.
	var table, updated, at string
	wm, err := db.Query(`SELECT table_name, updated_on, CASE WHEN sys_id = '' THEN 'start of second' ELSE
			(SELECT COUNT(*) FROM changes c WHERE c.sys_updated_on = w.updated_on AND c.sys_id <= w.sys_id) || ' of ' ||
			(SELECT COUNT(*) FROM changes c WHERE c.sys_updated_on = w.updated_on) END
		FROM sync_watermarks w ORDER BY table_name`)
	if err != nil {
		t.Fatal(err)
	}
	for wm.Next() {
		if err := wm.Scan(&table, &updated, &at); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&sb, "watermark %s %s %s\n", table, updated, at)
	}
	wm.Close()
	ids := map[string]string{}
	text := hexIDRE.ReplaceAllStringFunc(sb.String(), func(id string) string {
		if n, ok := ids[id]; ok {
			return n
		}
		ids[id] = fmt.Sprintf("id%d", len(ids))
		return ids[id]
	})
	if dir := os.Getenv("DAYTWO_DIGEST_DUMP"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, hex.EncodeToString([]byte(path))[len(path):]+fmt.Sprint(time.Now().UnixNano())), []byte(text), 0o600)
	}
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:]), rows
}

// fixedDate stamps every answer with the simulator's fixed clock (net/http
// would send the wall clock), so the mirror's frozen upper bound, and with
// it the watermark, is the same on every run.
// When failOn is set, the first request whose query contains it fails
// (an instance gone away mid-run), until the test clears it.
type fixedDate struct {
	now    time.Time
	failOn *atomic.Value // string
}

func (f fixedDate) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.failOn != nil {
		if s, _ := f.failOn.Load().(string); s != "" && strings.Contains(r.URL.Query().Get("sysparm_query"), s) {
			return nil, errors.New("interrupted by the test")
		}
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		resp.Header.Set("Date", f.now.Format(http.TimeFormat))
	}
	return resp, err
}

// TestMirrorResultsUnchanged mirrors a simulator with a fixed clock and
// deterministic changes (2,500 generated, ten per second, plus the seed's)
// in pages of 7, so every page ends inside a second and the boundary
// query runs, then a second, incremental cycle; the stored result must
// hash to mirrorGoldenDigest.
func TestMirrorResultsUnchanged(t *testing.T) {
	for _, interrupt := range []bool{false, true} {
		t.Run(fmt.Sprintf("interrupted=%v", interrupt), func(t *testing.T) { testMirrorDigest(t, interrupt) })
	}
}

func testMirrorDigest(t *testing.T, interrupt bool) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	srv, err := snowsim.Listen(ctx, "127.0.0.1:0", snowsim.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Sim().GenerateChanges(2500, snowsim.GenerateOptions{}); err != nil {
		t.Fatal(err)
	}
	failOn := new(atomic.Value)
	if interrupt {
		failOn.Store("sys_updated_on>2026-01-01 00:01:00^")
	}
	client, err := itsm.New(itsm.Config{
		Instance: srv.URL(), Auth: itsm.AuthConfig{Username: "daytwo", Password: "daytwo"},
		Timeout: 30 * time.Second, PageSize: 7,
	}, itsm.WithClock(clock), itsm.WithTransport(fixedDate{now, failOn}))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "mirror.db")
	db, err := store.Open(ctx, path, store.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	envs := benchEnvironments()
	if err := db.SyncEnvironments(ctx, envs, "digest"); err != nil {
		t.Fatal(err)
	}
	svc, err := ops.New(ops.Config{
		Environments: envs, CorrelationPrefix: "daytwo", MirrorCIChanges: true, Actor: "digest",
		Username: "daytwo",
	}, db, itsm.NewBridge(client), ops.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := svc.SyncOnce(ctx)
	if interrupt {
		if err == nil {
			t.Fatal("the interrupted cycle succeeded")
		}
		got, n := mirrorDigest(t, path)
		if n != 610 || got != mirrorInterruptedDigest {
			t.Errorf("interrupted mirror of %d changes (want 610) hashes to %s, want %s", n, got, mirrorInterruptedDigest)
		}
		failOn.Store("")
		rep, err = svc.SyncOnce(ctx) // resumes
	}
	if err != nil {
		t.Fatal(err)
	}
	if rep.Upserted == 0 {
		t.Fatalf("cycle stored nothing (%+v)", rep)
	}
	first, n := mirrorDigest(t, path)
	if _, err := svc.SyncOnce(ctx); err != nil {
		t.Fatal(err)
	}
	second, _ := mirrorDigest(t, path)
	if first != second {
		t.Errorf("an idle second cycle changed the mirror: %s → %s", first, second)
	}
	if n != 2500 || first != mirrorGoldenDigest {
		t.Errorf("mirror of %d changes (want 2500) hashes to %s, want %s (the stored rows, fields or watermark changed)", n, first, mirrorGoldenDigest)
	}
}
