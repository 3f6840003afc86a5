package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/daytwo/daytwo/internal/pgtest"
	"github.com/daytwo/daytwo/itsm/snowsim"
	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store/pg"
)

// TestSilentDaemonsOutboxClaimIsTakenOver: a daemon on another host (its
// pid means nothing here) claimed a work note for the next three minutes
// and died. While its heartbeat is fresh its claim is respected; once the
// heartbeat is older than the lease TTL the next pass releases the claim,
// looks the note up (it may have landed) and delivers it, at once rather
// than when the claim expires, and ServiceNow ends with the note once.
func TestSilentDaemonsOutboxClaimIsTakenOver(t *testing.T) {
	srv := pgtest.Start(t)
	sim := startSim(t, snowsim.Options{})
	env, _ := writeGatedConfig(t, sim.URL())
	dbName := srv.CreateDB(t)
	url := srv.URL(dbName)
	const leaseTTL = 3 * time.Second
	env = append(env, "DAYTWO_DB_URL="+url, "DAYTWO_DB_PASSWORD="+srv.Password, "DAYTWO_SYNC_LEASE_TTL="+leaseTTL.String())
	r := daytwo(t, env, "propose", "production", "2.0.0", "-o", "json")
	var p proposeResult
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || r.code != 0 || p.Change == "" {
		t.Fatalf("propose: %+v (%v)", r, err)
	}
	chg := simTableRecords(t, sim.URL(), "change_request", "number="+p.Change)
	if len(chg) != 1 {
		t.Fatalf("change %s: %d records", p.Change, len(chg))
	}
	sysID := fmt.Sprint(chg[0]["sys_id"])
	ctx := context.Background()
	db, err := pg.Open(ctx, url, pg.Options{Password: srv.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const note = "daytwo: batch 1/2 done (claimed by a daemon on another host that died)"
	var id int64
	payload, _ := json.Marshal(map[string]string{"update_id": p.ID, "note": note})
	if err := db.Atomic(ctx, func(tx ops.Tx) error {
		var err error
		id, err = tx.Enqueue(ctx, ops.OutboxItem{Key: p.ID, Kind: ops.OutboxWorkNote, Payload: payload})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z") }
	const dead = "elsewhere.example:4242"
	srv.Exec(t, dbName, `INSERT INTO daemons (id, host, pid, version, started_at, heartbeat_at) VALUES ($1, 'elsewhere.example', 4242, 'test', $2, $2)`,
		dead, ts(time.Now()))
	srv.Exec(t, dbName, `UPDATE outbox SET claimed_by = $1, claimed_until = $2 WHERE id = $3`,
		dead+":pass", ts(time.Now().Add(3*time.Minute)), id)
	pending := func() bool {
		t.Helper()
		it, err := db.GetOutbox(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return it.State == ops.OutboxPending
	}

	// A live daemon (fresh heartbeat) keeps its claim.
	if r := daytwo(t, env, "sync", "--once"); r.code != 0 {
		t.Fatalf("sync: %+v", r)
	}
	if !pending() {
		t.Fatal("a claim of a daemon with a fresh heartbeat was taken")
	}

	// Silent for longer than a lease lasts: released at the next pass.
	srv.Exec(t, dbName, `UPDATE daemons SET heartbeat_at = $1 WHERE id = $2`, ts(time.Now().Add(-2*leaseTTL)), dead)
	start := time.Now()
	if r := daytwo(t, env, "sync", "--once"); r.code != 0 {
		t.Fatalf("sync: %+v", r)
	}
	if pending() {
		t.Fatalf("the silent daemon's claim still holds its write back after %v (lease TTL %v)", time.Since(start).Round(time.Millisecond), leaseTTL)
	}
	t.Logf("the silent daemon's write delivered %v after its claim could be taken (claim would have expired in 3m)", time.Since(start).Round(time.Millisecond))
	n := 0
	for _, j := range simTableRecords(t, sim.URL(), "sys_journal_field", "element_id="+sysID) {
		if j["element"] == "work_notes" && strings.TrimSpace(fmt.Sprint(j["value"])) == note {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the note is on the change %d times, want once", n)
	}
}
