// Package storetest is the contract every daytwo store implements: the
// behaviours the domain (ops) relies on, run against the SQLite store in
// every `make test` and against a real PostgreSQL server by store/pg.
//
// A store package calls Run from a test with a function that opens a new,
// empty store (or, given Options.Same, the same database again).
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store"
)

// Store is what the contract exercises: ops.Store and the extras the
// command line and the optional ops capabilities use.
type Store interface {
	ops.Store
	SyncEnvironments(ctx context.Context, envs []ops.Environment, actor string) error
	AppendEvent(ctx context.Context, ev ops.Event) (ops.Event, error)
	GetOutbox(ctx context.Context, id int64) (ops.OutboxItem, error)
	SaveOutboxProgress(ctx context.Context, id int64, progress any) error
	VerifyAuditAnchors(ctx context.Context, anchors []ops.AuditAnchor) (ops.AuditVerification, error)
	Heartbeat(ctx context.Context, d store.Daemon) error
	DaemonStopped(ctx context.Context, id string) error
	Daemons(ctx context.Context) ([]store.Daemon, error)
	Status(ctx context.Context) (store.Status, error)
}

// Options tell the opener how to open a store.
type Options struct {
	// Clock stamps every write.
	Clock func() time.Time
	// AuditKey keys the audit chain (nil: unkeyed).
	AuditKey []byte
	// Same, when set, opens the database Same was opened on, instead of a
	// new one.
	Same Store
}

// Opener opens a store for one test; the opener closes it at the test's end.
type Opener func(t *testing.T, o Options) Store

// Clock is a settable clock.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts a clock at a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)} }

// Now reads the clock.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Run runs the contract against the stores open opens.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"ChangesUpsertUnchangedAndFilters", testChanges},
		{"ChangesUpsertManyAndRepeated", testChangesMany},
		{"ApprovalsAndIncidents", testApprovals},
		{"Watermarks", testWatermarks},
		{"UpdatesOptimisticState", testUpdates},
		{"ReleasesSupersede", testReleases},
		{"OutboxOrderRetryDelivered", testOutbox},
		{"OutboxClaims", testOutboxClaims},
		{"OutboxProgress", testOutboxProgress},
		{"LeasesAndFencing", testLeases},
		{"LeaseAcquiredOnceUnderContention", testLeaseContention},
		{"RunJournalAndStaleFence", testJournal},
		{"TakeOverRunDecideRollbackRecordFact", testTakeOver},
		{"AuditChainAppendVerify", testAudit},
		{"AuditConcurrentAppends", testAuditConcurrent},
		{"AuditKeyed", testAuditKeyed},
		{"AuditAnchors", testAuditAnchors},
		{"Drift", testDrift},
		{"PolicyAlerts", testAlerts},
		{"DaemonHeartbeats", testDaemons},
		{"ConflictCheckRecord", testConflictChecks},
		{"ChangeConflictStatus", testChangeConflictStatus},
		{"OutboxDiscardAndSupersede", testOutboxDiscardSupersede},
		{"OneOpenUpdatePerEnvironment", testOneOpenUpdate},
		{"WaitingChangesSearchAndCICache", testWaitingChangesSearchCICache},
		{"LatestRunsPerEnvironment", testLatestRuns},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

var ctx = context.Background()

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func atomic(t *testing.T, s Store, fn func(tx ops.Tx) error) {
	t.Helper()
	must(t, s.Atomic(ctx, fn))
}

// world opens a store with one environment "prod" and one update "u1".
func world(t *testing.T, open Opener) (Store, *Clock) {
	t.Helper()
	c := NewClock()
	s := open(t, Options{Clock: c.Now})
	must(t, s.SyncEnvironments(ctx, []ops.Environment{{Name: "prod", RequiresChange: true}, {Name: "dev"}}, "tester"))
	atomic(t, s, func(tx ops.Tx) error {
		return tx.InsertUpdate(ctx, ops.Update{
			ID: "u1", Environment: "prod", Version: "1.2.0", Plan: []byte(`{}`),
			PlanDigest: "d1", State: ops.UpdateProposed, ChangeNumber: "CHG0000001",
		})
	})
	return s, c
}

func change(n int, mod int, updated time.Time) ops.Change {
	return ops.Change{
		SysID: fmt.Sprintf("sys%03d", n), Number: fmt.Sprintf("CHG%07d", n), Type: "normal", State: ops.ChangeState(-5),
		ShortDescription: fmt.Sprintf("Deploy %d", n), CmdbCI: "payments", Active: true, SysModCount: mod, SysUpdatedOn: updated,
		CorrelationID: fmt.Sprintf("daytwo:u%d", n), Raw: json.RawMessage(fmt.Sprintf(`{"n":%d,"mod":%d}`, n, mod)),
	}
}

func upsertChanges(t *testing.T, s Store, cs ...ops.Change) ops.UpsertStats {
	t.Helper()
	var st ops.UpsertStats
	atomic(t, s, func(tx ops.Tx) error {
		var err error
		st, err = tx.UpsertChanges(ctx, cs)
		return err
	})
	return st
}

func testChanges(t *testing.T, open Opener) {
	s, c := world(t, open)
	t0 := c.Now().Add(-time.Hour)
	if st := upsertChanges(t, s, change(1, 1, t0), change(2, 1, t0)); st.Written != 2 || st.Unchanged != 0 {
		t.Fatalf("first upsert = %+v", st)
	}
	if st := upsertChanges(t, s, change(1, 1, t0), change(2, 1, t0)); st.Written != 0 || st.Unchanged != 2 {
		t.Fatalf("replay = %+v, want all unchanged", st)
	}
	if st := upsertChanges(t, s, change(1, 2, t0.Add(time.Second)), change(2, 0, t0.Add(-time.Second))); st.Written != 1 || st.Unchanged != 1 {
		t.Fatalf("newer and older = %+v", st)
	}
	same := change(2, 1, t0)
	same.Raw = json.RawMessage(`{"n":2,"richer":true}`)
	if st := upsertChanges(t, s, same); st.Written != 1 {
		t.Fatalf("same version, other shape = %+v, want written", st)
	}
	got, err := s.GetChange(ctx, "CHG0000001")
	if err != nil || got.SysModCount != 2 || got.SysID != "sys001" || !got.Active || got.State != -5 || !got.SysUpdatedOn.Equal(t0.Add(time.Second)) {
		t.Fatalf("GetChange = %+v, %v", got, err)
	}
	if got, err := s.GetChange(ctx, "sys002"); err != nil || string(got.Raw) != `{"n":2,"richer":true}` {
		t.Fatalf("GetChange by sys_id = %+v, %v", got, err)
	}
	if _, err := s.GetChange(ctx, "CHG9999999"); !errors.Is(err, ops.ErrNotFound) {
		t.Fatalf("missing change: %v, want ErrNotFound", err)
	}
	inactive := change(3, 1, t0.Add(time.Minute))
	inactive.Active = false
	inactive.CorrelationID = "other:3"
	inactive.ShortDescription = "100%_done"
	upsertChanges(t, s, inactive)

	list := func(f ops.ChangeFilter) []string {
		t.Helper()
		cs, err := s.ListChanges(ctx, f)
		must(t, err)
		n, err := s.CountChanges(ctx, ops.ChangeFilter{ActiveOnly: f.ActiveOnly, CorrelationPrefix: f.CorrelationPrefix, Search: f.Search})
		must(t, err)
		if f.Limit == 0 && f.Offset == 0 && n != len(cs) {
			t.Fatalf("CountChanges(%+v) = %d, ListChanges has %d", f, n, len(cs))
		}
		var out []string
		for _, c := range cs {
			out = append(out, c.Number)
		}
		return out
	}
	eq := func(what string, got []string, want ...string) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s = %v, want %v", what, got, want)
		}
	}
	eq("all, newest first", list(ops.ChangeFilter{}), "CHG0000003", "CHG0000001", "CHG0000002")
	eq("active", list(ops.ChangeFilter{ActiveOnly: true}), "CHG0000001", "CHG0000002")
	eq("prefix", list(ops.ChangeFilter{CorrelationPrefix: "daytwo:"}), "CHG0000001", "CHG0000002")
	eq("search is case-insensitive", list(ops.ChangeFilter{Search: "deploy 2"}), "CHG0000002")
	eq("search % and _ are literal", list(ops.ChangeFilter{Search: "0%_d"}), "CHG0000003")
	eq("search % matches no wildcard", list(ops.ChangeFilter{Search: "1%"}))
	eq("limit", list(ops.ChangeFilter{Limit: 1, Offset: 1}), "CHG0000001")
	eq("offset without limit", list(ops.ChangeFilter{Offset: 2}), "CHG0000002")
	ids, err := s.OpenChangeSysIDs(ctx, "daytwo:")
	must(t, err)
	eq("open daytwo changes", ids, "sys001", "sys002")

	atomic(t, s, func(tx ops.Tx) error {
		_, err := tx.UpsertApprovals(ctx, []ops.Approval{{SysID: "ap1", ChangeSysID: "sys001", State: "requested", SysUpdatedOn: t0, SysModCount: 1}})
		return err
	})
	atomic(t, s, func(tx ops.Tx) error {
		n, err := tx.DeleteChanges(ctx, []string{"sys001", "sys404"})
		if n != 1 {
			return fmt.Errorf("deleted %d, want 1", n)
		}
		return err
	})
	if aps, err := s.Approvals(ctx, "sys001"); err != nil || len(aps) != 0 {
		t.Fatalf("approvals of a deleted change = %+v, %v", aps, err)
	}
	eq("after delete", list(ops.ChangeFilter{}), "CHG0000003", "CHG0000002")
}

// testChangesMany: a page larger than any batch a store writes at once,
// then a page that names one change twice (a change updated while the
// mirror paged): the counts are per row and the later copy wins.
func testChangesMany(t *testing.T, open Opener) {
	s, c := world(t, open)
	t0 := c.Now().Add(-time.Hour)
	var page []ops.Change
	for i := range 1201 {
		page = append(page, change(i, 1, t0))
	}
	if st := upsertChanges(t, s, page...); st.Written != 1201 || st.Unchanged != 0 {
		t.Fatalf("1201 new = %+v", st)
	}
	page[600] = change(600, 2, t0.Add(time.Second))
	if st := upsertChanges(t, s, page...); st.Written != 1 || st.Unchanged != 1200 {
		t.Fatalf("one newer among 1201 = %+v", st)
	}
	if n, err := s.CountChanges(ctx, ops.ChangeFilter{}); err != nil || n != 1201 {
		t.Fatalf("count = %d, %v", n, err)
	}
	if st := upsertChanges(t, s, change(7, 2, t0.Add(time.Second)), change(8, 1, t0), change(7, 3, t0.Add(2*time.Second))); st.Written != 2 || st.Unchanged != 1 {
		t.Fatalf("a page naming one change twice = %+v, want both copies of 7 written and 8 unchanged", st)
	}
	if got, err := s.GetChange(ctx, "sys007"); err != nil || got.SysModCount != 3 {
		t.Fatalf("sys007 = %+v, %v; want the later copy", got, err)
	}
}

func testApprovals(t *testing.T, open Opener) {
	s, c := world(t, open)
	t0 := c.Now()
	up := func(as ...ops.Approval) ops.UpsertStats {
		var st ops.UpsertStats
		atomic(t, s, func(tx ops.Tx) error {
			var err error
			st, err = tx.UpsertApprovals(ctx, as)
			return err
		})
		return st
	}
	a1 := ops.Approval{SysID: "ap1", ChangeSysID: "c1", Approver: "u1", ApproverName: "Ann", State: "requested", SysUpdatedOn: t0, SysModCount: 1}
	a2 := ops.Approval{SysID: "ap2", ChangeSysID: "c1", Approver: "u2", State: "requested", SysUpdatedOn: t0.Add(time.Second), SysModCount: 1}
	if st := up(a1, a2); st.Written != 2 {
		t.Fatalf("insert = %+v", st)
	}
	if st := up(a1, a2); st.Unchanged != 2 || st.Written != 0 {
		t.Fatalf("replay = %+v", st)
	}
	a1.State, a1.SysModCount, a1.ApproverName, a1.Comments = "approved", 2, "", "ok"
	if st := up(a1); st.Written != 1 {
		t.Fatalf("newer = %+v", st)
	}
	aps, err := s.Approvals(ctx, "c1")
	must(t, err)
	if len(aps) != 2 || aps[0].SysID != "ap1" || aps[0].State != "approved" || aps[0].ApproverName != "Ann" || aps[0].Comments != "ok" {
		t.Fatalf("approvals = %+v (an empty approver name keeps the stored one)", aps)
	}
	byID, err := s.ApprovalsByID(ctx, []string{"ap2", "nope", "ap1"})
	if g1, g2 := byID["ap1"], byID["ap2"]; err != nil || len(byID) != 2 || g2.ChangeSysID != "c1" || g2.State != "requested" ||
		!g2.SysUpdatedOn.Equal(a2.SysUpdatedOn) || g1.State != "approved" || g1.SysModCount != 2 || !g1.SysUpdatedOn.Equal(t0) {
		t.Fatalf("ApprovalsByID = %+v, %v", byID, err)
	}
	many := make([]string, 1200) // more than one chunk of bound parameters
	for i := range many {
		many[i] = fmt.Sprintf("x%d", i)
	}
	many[1100] = "ap1"
	if byID, err := s.ApprovalsByID(ctx, many); err != nil || len(byID) != 1 {
		t.Fatalf("ApprovalsByID(1200 ids) = %d, %v", len(byID), err)
	}

	atomic(t, s, func(tx ops.Tx) error {
		return tx.UpsertIncident(ctx, ops.Incident{SysID: "in1", Number: "INC1", UpdateID: "u1", ChangeSysID: "c1", State: "1", SysUpdatedOn: t0})
	})
	atomic(t, s, func(tx ops.Tx) error {
		return tx.UpsertIncident(ctx, ops.Incident{SysID: "in1", Number: "INC1", State: "6", SysUpdatedOn: t0.Add(time.Minute)})
	})
	ins, err := s.Incidents(ctx, "u1")
	if err != nil || len(ins) != 1 || ins[0].State != "6" || ins[0].ChangeSysID != "c1" {
		t.Fatalf("incidents = %+v, %v (links are kept when a later copy lacks them)", ins, err)
	}
}

func testWatermarks(t *testing.T, open Opener) {
	s, c := world(t, open)
	w, err := s.GetWatermark(ctx, "change_request")
	if err != nil || !w.UpdatedOn.IsZero() || w.SysID != "" {
		t.Fatalf("no watermark = %+v, %v", w, err)
	}
	set := ops.Watermark{UpdatedOn: c.Now().Add(-time.Minute), SysID: "sys9"}
	atomic(t, s, func(tx ops.Tx) error { return tx.SetWatermark(ctx, "change_request", set) })
	// A failed transaction moves nothing.
	boom := errors.New("boom")
	if err := s.Atomic(ctx, func(tx ops.Tx) error {
		if err := tx.SetWatermark(ctx, "change_request", ops.Watermark{UpdatedOn: c.Now(), SysID: "sysX"}); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("Atomic = %v, want the callback's error", err)
	}
	w, err = s.GetWatermark(ctx, "change_request")
	if err != nil || !w.UpdatedOn.Equal(set.UpdatedOn) || w.SysID != "sys9" {
		t.Fatalf("watermark = %+v, %v; want %+v", w, err, set)
	}
}

func testUpdates(t *testing.T, open Opener) {
	s, c := world(t, open)
	u, err := s.GetUpdate(ctx, "CHG0000001")
	if err != nil || u.ID != "u1" || string(u.Plan) != `{}` {
		t.Fatalf("GetUpdate by change = %+v, %v", u, err)
	}
	u.State = ops.UpdateApproved
	atomic(t, s, func(tx ops.Tx) error { return tx.SaveUpdate(ctx, u, ops.UpdateProposed) })
	err = s.Atomic(ctx, func(tx ops.Tx) error { return tx.SaveUpdate(ctx, u, ops.UpdateProposed) })
	if !errors.Is(err, ops.ErrConflict) {
		t.Fatalf("stale SaveUpdate = %v, want ErrConflict", err)
	}
	atomic(t, s, func(tx ops.Tx) error {
		got, err := tx.GetUpdate(ctx, "u1")
		if err == nil && got.State != ops.UpdateApproved {
			err = fmt.Errorf("tx.GetUpdate state = %s", got.State)
		}
		if err != nil {
			return err
		}
		return tx.InsertUpdate(ctx, ops.Update{
			ID: "u2", Environment: "dev", Version: "2", Plan: []byte(`[]`), State: ops.UpdateProposed, Rollback: true,
			Config: map[string]string{"k": "v"},
		})
	})
	err = s.Atomic(ctx, func(tx ops.Tx) error {
		return tx.InsertUpdate(ctx, ops.Update{ID: "u2", Environment: "dev", Version: "3", Plan: []byte(`[]`), State: ops.UpdateProposed})
	})
	if !errors.Is(err, ops.ErrConflict) {
		t.Fatalf("duplicate update id = %v, want ErrConflict", err)
	}
	us, err := s.ListUpdates(ctx, ops.UpdateFilter{Environment: "dev", States: []ops.UpdateState{ops.UpdateProposed}})
	if err != nil || len(us) != 1 || !us[0].Rollback || us[0].Config["k"] != "v" {
		t.Fatalf("ListUpdates = %+v, %v", us, err)
	}
	if _, err := s.GetUpdate(ctx, "nope"); !errors.Is(err, ops.ErrNotFound) {
		t.Fatalf("missing update: %v", err)
	}
	// A bundle's members share a change: they are listed by bundle, and
	// the change number names the first member.
	atomic(t, s, func(tx ops.Tx) error {
		for i, id := range []string{"b2", "b1"} {
			u := ops.Update{
				ID: id, Environment: []string{"prod", "dev"}[i], Version: "1", Plan: []byte(`{}`), State: ops.UpdateSucceeded,
				ChangeNumber: "CHG0000009", BundleID: "bundle-1", BundleSeq: 2 - i,
			}
			if err := tx.InsertUpdate(ctx, u); err != nil {
				return err
			}
		}
		return nil
	})
	bs, err := s.ListUpdates(ctx, ops.UpdateFilter{Bundle: "bundle-1"})
	if err != nil || len(bs) != 2 {
		t.Fatalf("ListUpdates(bundle) = %+v, %v", bs, err)
	}
	for _, b := range bs {
		if b.BundleID != "bundle-1" || b.BundleSeq != map[string]int{"b1": 1, "b2": 2}[b.ID] {
			t.Fatalf("bundle member %s = %q #%d", b.ID, b.BundleID, b.BundleSeq)
		}
	}
	c.Advance(time.Minute)
	atomic(t, s, func(tx ops.Tx) error { // a rollback of the bundle, made later
		return tx.InsertUpdate(ctx, ops.Update{
			ID: "b3", Environment: "dev", Version: "0", Plan: []byte(`{}`), State: ops.UpdateSucceeded, Rollback: true,
			ChangeNumber: "CHG0000009", BundleID: "bundle-1", BundleSeq: 1,
		})
	})
	if got, err := s.GetUpdate(ctx, "CHG0000009"); err != nil || got.ID != "b1" {
		t.Fatalf("GetUpdate(bundle change) = %s, %v; want the first member b1", got.ID, err)
	}
	if plain, _ := s.GetUpdate(ctx, "u1"); plain.BundleID != "" || plain.BundleSeq != 0 {
		t.Fatalf("an update of its own has bundle %q #%d", plain.BundleID, plain.BundleSeq)
	}
}

func testReleases(t *testing.T, open Opener) {
	s, _ := world(t, open)
	for _, v := range []string{"1.0", "1.1", "1.2"} {
		atomic(t, s, func(tx ops.Tx) error {
			r, err := tx.RecordRelease(ctx, ops.Release{Environment: "prod", Version: v, UpdateID: "u1", Config: map[string]string{"v": v}})
			if err == nil && (r.ID == 0 || r.Digest == "" || r.Status != ops.ReleaseActive) {
				err = fmt.Errorf("recorded %+v", r)
			}
			return err
		})
	}
	cur, err := s.CurrentReleases(ctx)
	if err != nil || len(cur) != 1 || cur["prod"].Version != "1.2" || cur["prod"].Config["v"] != "1.2" {
		t.Fatalf("current = %+v, %v", cur, err)
	}
	all, err := s.Releases(ctx, "prod", 0)
	if err != nil || len(all) != 3 || all[0].Version != "1.2" || all[1].Status != ops.ReleaseSuperseded {
		t.Fatalf("releases = %+v, %v", all, err)
	}
	if one, err := s.Releases(ctx, "prod", 1); err != nil || len(one) != 1 || one[0].Version != "1.2" {
		t.Fatalf("releases limit 1 = %+v, %v", one, err)
	}
}

func enqueue(t *testing.T, s Store, key string, kind ops.OutboxKind) int64 {
	t.Helper()
	var id int64
	atomic(t, s, func(tx ops.Tx) error {
		it, err := ops.NewOutboxItem(key, kind, map[string]string{"key": key})
		if err != nil {
			return err
		}
		id, err = tx.Enqueue(ctx, it)
		return err
	})
	return id
}

func ids(items []ops.OutboxItem) []int64 {
	var out []int64
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out
}

func testOutbox(t *testing.T, open Opener) {
	s, c := world(t, open)
	now := c.Now()
	a1 := enqueue(t, s, "u-a", ops.OutboxCreateChange)
	a2 := enqueue(t, s, "u-a", ops.OutboxRequestApproval)
	b1 := enqueue(t, s, "u-b", ops.OutboxCreateChange)
	if !(a1 < a2 && a2 < b1) {
		t.Fatalf("ids %d %d %d do not grow", a1, a2, b1)
	}
	due, err := s.DueOutbox(ctx, now, 10)
	if err != nil || fmt.Sprint(ids(due)) != fmt.Sprint([]int64{a1, b1}) {
		t.Fatalf("due = %v, %v; want the head of each key", ids(due), err)
	}
	if due[0].Kind != ops.OutboxCreateChange || string(due[0].Payload) != `{"key":"u-a"}` || !due[0].CreatedAt.Equal(now) {
		t.Fatalf("item = %+v", due[0])
	}
	must(t, s.MarkAttemptFailed(ctx, a1, "503", now.Add(time.Minute), false))
	if due, _ = s.DueOutbox(ctx, now, 10); fmt.Sprint(ids(due)) != fmt.Sprint([]int64{b1}) {
		t.Fatalf("after a1 backs off, due = %v", ids(due))
	}
	if next, err := s.NextOutboxAttempt(ctx); err != nil || !next.Equal(now) {
		t.Fatalf("next attempt = %s, %v", next, err)
	}
	due, _ = s.DueOutbox(ctx, now.Add(time.Minute), 10)
	if len(due) != 2 || due[0].ID != a1 || due[0].Attempts != 1 || due[0].LastError != "503" {
		t.Fatalf("after backoff, due = %+v", due)
	}
	atomic(t, s, func(tx ops.Tx) error { return tx.MarkDelivered(ctx, a1, map[string]string{"number": "CHG1"}) })
	if err := s.Atomic(ctx, func(tx ops.Tx) error { return tx.MarkDelivered(ctx, a1, nil) }); !errors.Is(err, ops.ErrConflict) {
		t.Fatalf("second MarkDelivered = %v, want ErrConflict", err)
	}
	got, err := s.GetOutbox(ctx, a1)
	if err != nil || got.State != ops.OutboxDelivered || string(got.Result) != `{"number":"CHG1"}` || got.DeliveredAt.IsZero() || got.Attempts != 2 {
		t.Fatalf("delivered item = %+v, %v", got, err)
	}
	// A permanent failure holds back its key.
	must(t, s.MarkAttemptFailed(ctx, a2, "400 bad", now, true))
	enqueue(t, s, "u-a", ops.OutboxWorkNote)
	due, _ = s.DueOutbox(ctx, now.Add(time.Hour), 10)
	if fmt.Sprint(ids(due)) != fmt.Sprint([]int64{b1}) {
		t.Fatalf("a failed item must hold back its key: due = %v", ids(due))
	}
	list, err := s.ListOutbox(ctx, ops.OutboxFilter{})
	if err != nil || len(list) != 3 {
		t.Fatalf("ListOutbox (pending and failed) = %d, %v", len(list), err)
	}
	if l, _ := s.ListOutbox(ctx, ops.OutboxFilter{States: []ops.OutboxState{ops.OutboxFailed}, Key: "u-a", Limit: 5}); len(l) != 1 || l[0].ID != a2 {
		t.Fatalf("ListOutbox failed = %+v", l)
	}
	c.Advance(time.Minute)
	n, err := s.RetryOutbox(ctx, a2)
	if err != nil || n != 1 {
		t.Fatalf("retry = %d, %v", n, err)
	}
	due, _ = s.DueOutbox(ctx, c.Now(), 10)
	if fmt.Sprint(ids(due)) != fmt.Sprint([]int64{a2, b1}) {
		t.Fatalf("after retry due = %v", ids(due))
	}
	if n, err := s.RetryOutbox(ctx, 0); err != nil || n != 3 {
		t.Fatalf("retry all = %d, %v (pending ones are pulled forward)", n, err)
	}
	if _, err := s.GetOutbox(ctx, 99999); !errors.Is(err, ops.ErrNotFound) {
		t.Fatalf("missing item: %v", err)
	}
}

func testOutboxClaims(t *testing.T, open Opener) {
	s, c := world(t, open)
	id := enqueue(t, s, "u-a", ops.OutboxCreateChange)
	claim := func(who string) bool {
		t.Helper()
		ok, err := s.ClaimOutbox(ctx, id, who, time.Minute)
		must(t, err)
		return ok
	}
	if !claim("p1") || claim("p2") || !claim("p1") {
		t.Fatal("a claim must be exclusive and renewable by its holder")
	}
	must(t, s.ReleaseOutbox(ctx, id, "p2")) // not p2's: no effect
	if claim("p2") {
		t.Fatal("release by a non-holder dropped the claim")
	}
	if it, err := s.GetOutbox(ctx, id); err != nil || it.Attempts != 0 {
		t.Fatalf("after a non-holder's release: %+v, %v; want no attempt recorded", it, err)
	}
	must(t, s.ReleaseOutbox(ctx, id, "p1"))
	// The released claim counts as an attempt that may have landed, so the
	// next pass looks the write up before sending it again.
	if it, err := s.GetOutbox(ctx, id); err != nil || it.Attempts != 1 || it.LastError == "" || it.ClaimedBy != "" {
		t.Fatalf("after the holder's release: %+v, %v; want one attempt of unknown outcome, unclaimed", it, err)
	}
	if !claim("p2") {
		t.Fatal("a released item must be claimable")
	}
	c.Advance(2 * time.Minute)
	if !claim("p3") {
		t.Fatal("an expired claim must be claimable")
	}
	atomic(t, s, func(tx ops.Tx) error { return tx.MarkDelivered(ctx, id, nil) })
	if claim("p3") {
		t.Fatal("a delivered item was claimed")
	}
	// Many passes at once: exactly one wins each item.
	var items []int64
	for i := range 5 {
		items = append(items, enqueue(t, s, fmt.Sprintf("k%d", i), ops.OutboxWorkNote))
	}
	var (
		mu   sync.Mutex
		wins = map[int64][]string{}
		wg   sync.WaitGroup
	)
	for p := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			who := fmt.Sprintf("pass%d", p)
			for _, it := range items {
				ok, err := s.ClaimOutbox(ctx, it, who, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					mu.Lock()
					wins[it] = append(wins[it], who)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for _, it := range items {
		if len(wins[it]) != 1 {
			t.Fatalf("item %d claimed by %v, want exactly one pass", it, wins[it])
		}
	}
}

func testOutboxProgress(t *testing.T, open Opener) {
	s, _ := world(t, open)
	id := enqueue(t, s, "u-a", ops.OutboxCreateChange)
	must(t, s.SaveOutboxProgress(ctx, id, map[string]string{"sys_id": "abc"}))
	it, err := s.GetOutbox(ctx, id)
	if err != nil || string(it.Result) != `{"sys_id":"abc"}` || it.State != ops.OutboxPending {
		t.Fatalf("progress = %+v, %v", it, err)
	}
	atomic(t, s, func(tx ops.Tx) error { return tx.MarkDelivered(ctx, id, map[string]string{"number": "CHG7"}) })
	must(t, s.SaveOutboxProgress(ctx, id, map[string]string{"sys_id": "late"}))
	if it, _ := s.GetOutbox(ctx, id); string(it.Result) != `{"number":"CHG7"}` {
		t.Fatalf("progress after delivery overwrote the result: %s", it.Result)
	}
}

func acquire(s Store, req ops.LeaseRequest) (ops.Lease, error) {
	var l ops.Lease
	err := s.Atomic(ctx, func(tx ops.Tx) error {
		var err error
		l, err = tx.AcquireLease(ctx, req)
		return err
	})
	return l, err
}

func fence(l ops.Lease) ops.Fence {
	return ops.Fence{Environment: l.Environment, Holder: l.Holder, Epoch: l.Epoch}
}

func testLeases(t *testing.T, open Opener) {
	s, c := world(t, open)
	l1, err := acquire(s, ops.LeaseRequest{Environment: "prod", Holder: "h1", RunID: "r1", TTL: time.Minute})
	if err != nil || l1.Epoch != 1 || !l1.ExpiresAt.Equal(c.Now().Add(time.Minute)) {
		t.Fatalf("first lease = %+v, %v", l1, err)
	}
	if _, err := acquire(s, ops.LeaseRequest{Environment: "prod", Holder: "h2", TTL: time.Minute}); !errors.Is(err, ops.ErrConflict) {
		t.Fatalf("held lease taken: %v", err)
	}
	atomic(t, s, func(tx ops.Tx) error { return tx.CheckFence(ctx, fence(l1)) })
	ls, err := s.Leases(ctx)
	if err != nil || len(ls) != 1 || ls[0].Holder != "h1" || ls[0].RunID != "r1" || ls[0].Epoch != 1 {
		t.Fatalf("leases = %+v, %v", ls, err)
	}
	c.Advance(30 * time.Second)
	must(t, s.RenewLease(ctx, fence(l1), time.Minute))
	c.Advance(45 * time.Second) // still held thanks to the renewal
	if _, err := acquire(s, ops.LeaseRequest{Environment: "prod", Holder: "h2", TTL: time.Minute}); !errors.Is(err, ops.ErrConflict) {
		t.Fatalf("renewed lease taken: %v", err)
	}
	c.Advance(time.Minute)
	if ls, _ := s.Leases(ctx); len(ls) != 0 {
		t.Fatalf("expired lease listed: %+v", ls)
	}
	l2, err := acquire(s, ops.LeaseRequest{Environment: "prod", Holder: "h2", TTL: time.Minute})
	if err != nil || l2.Epoch != 2 {
		t.Fatalf("expired lease = %+v, %v; want epoch 2", l2, err)
	}
	if err := s.Atomic(ctx, func(tx ops.Tx) error { return tx.CheckFence(ctx, fence(l1)) }); !errors.Is(err, ops.ErrLeaseLost) {
		t.Fatalf("stale fence = %v, want ErrLeaseLost", err)
	}
	if err := s.RenewLease(ctx, fence(l1), time.Hour); !errors.Is(err, ops.ErrLeaseLost) {
		t.Fatalf("stale renew = %v, want ErrLeaseLost", err)
	}
	must(t, s.ReleaseLease(ctx, fence(l1))) // stale: no effect
	if ls, _ := s.Leases(ctx); len(ls) != 1 || ls[0].Holder != "h2" {
		t.Fatalf("a stale release dropped the lease: %+v", ls)
	}
	l3, err := acquire(s, ops.LeaseRequest{Environment: "prod", Holder: "h3", TTL: time.Minute, DeadHolder: "h2"})
	if err != nil || l3.Epoch != 3 {
		t.Fatalf("dead holder's lease = %+v, %v", l3, err)
	}
	must(t, s.ReleaseLease(ctx, fence(l3)))
	if err := s.RenewLease(ctx, fence(l3), time.Minute); !errors.Is(err, ops.ErrLeaseLost) {
		t.Fatalf("renew after release = %v, want ErrLeaseLost", err)
	}
	l4, err := acquire(s, ops.LeaseRequest{Environment: "prod", Holder: "h1", TTL: time.Minute})
	if err != nil || l4.Epoch != 4 {
		t.Fatalf("after release = %+v, %v; the epoch must keep growing", l4, err)
	}
	// A lease acquired in a transaction that fails is not taken.
	if err := s.Atomic(ctx, func(tx ops.Tx) error {
		if _, err := tx.AcquireLease(ctx, ops.LeaseRequest{Environment: "dev", Holder: "h9", TTL: time.Minute}); err != nil {
			return err
		}
		return errors.New("boom")
	}); err == nil {
		t.Fatal("want the callback's error")
	}
	if ls, _ := s.Leases(ctx); len(ls) != 1 {
		t.Fatalf("rolled-back lease kept: %+v", ls)
	}
}

func testLeaseContention(t *testing.T, open Opener) {
	s, _ := world(t, open)
	// Warm the connection pool so that the contenders really race.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = s.Leases(ctx) }()
	}
	wg.Wait()
	for round := range 20 {
		env := fmt.Sprintf("env%d", round) // never leased: no row yet
		var (
			mu    sync.Mutex
			won   []ops.Lease
			other []error
			start = make(chan struct{})
		)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				l, err := acquire(s, ops.LeaseRequest{Environment: env, Holder: fmt.Sprintf("h%d", i), TTL: time.Minute})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won = append(won, l)
				case !errors.Is(err, ops.ErrConflict):
					other = append(other, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(other) > 0 || len(won) != 1 || won[0].Epoch != 1 {
			t.Fatalf("%s: winners %+v, errors %v: want exactly one lease at epoch 1", env, won, other)
		}
	}
}

func testJournal(t *testing.T, open Opener) {
	s, c := world(t, open)
	l, err := acquire(s, ops.LeaseRequest{Environment: "prod", Holder: "h1", RunID: "r1", TTL: time.Minute})
	must(t, err)
	f := fence(l)
	atomic(t, s, func(tx ops.Tx) error {
		return tx.InsertRun(ctx, ops.Run{ID: "r1", UpdateID: "u1", Environment: "prod", Kind: "rollout", State: ops.RunRunning, Holder: "h1", Epoch: l.Epoch})
	})
	if err := s.Atomic(ctx, func(tx ops.Tx) error {
		return tx.InsertRun(ctx, ops.Run{ID: "r1", UpdateID: "u1", Environment: "prod", Kind: "rollout", State: ops.RunRunning})
	}); !errors.Is(err, ops.ErrConflict) {
		t.Fatalf("duplicate run = %v, want ErrConflict", err)
	}
	step := ops.StepRecord{RunID: "r1", Batch: 1, Target: "web1", Step: "deploy", Version: "1.2.0"}
	id1, err := s.StepStarted(ctx, f, step)
	must(t, err)
	must(t, s.StepProcess(ctx, f, id1, 4242))
	must(t, s.StepFinished(ctx, f, id1, ops.StepFailed, "exit 1"))
	if err := s.StepFinished(ctx, f, id1, ops.StepSucceeded, ""); !errors.Is(err, ops.ErrLeaseLost) {
		t.Fatalf("finishing a finished step = %v, want refused", err)
	}
	id2, err := s.StepStarted(ctx, f, step)
	must(t, err)
	if id2 <= id1 {
		t.Fatalf("step ids %d then %d", id1, id2)
	}
	must(t, s.StepFinished(ctx, f, id2, ops.StepSucceeded, ""))
	web2 := step
	web2.Target = "web2"
	id3, err := s.StepStarted(ctx, f, web2) // left started: unknown
	must(t, err)
	c.Advance(time.Second)
	must(t, s.AppendLog(ctx, f, []ops.LogLine{{RunID: "r1", Target: "web1", Stream: "stdout", Line: "one"}, {RunID: "r1", Stream: "stderr", Line: "two"}, {RunID: "r1", Line: "three"}}))
	must(t, s.AppendLog(ctx, f, nil))

	// Someone else takes the lease: every write under the old fence is refused and writes nothing.
	c.Advance(2 * time.Minute)
	l2, err := acquire(s, ops.LeaseRequest{Environment: "prod", Holder: "h2", TTL: time.Minute})
	must(t, err)
	if _, err := s.StepStarted(ctx, f, web2); !errors.Is(err, ops.ErrLeaseLost) {
		t.Fatalf("stale StepStarted = %v", err)
	}
	if err := s.StepProcess(ctx, f, id3, 1); !errors.Is(err, ops.ErrLeaseLost) {
		t.Fatalf("stale StepProcess = %v", err)
	}
	if err := s.StepFinished(ctx, f, id3, ops.StepSucceeded, ""); !errors.Is(err, ops.ErrLeaseLost) {
		t.Fatalf("stale StepFinished = %v", err)
	}
	if err := s.AppendLog(ctx, f, []ops.LogLine{{RunID: "r1", Line: "late"}}); !errors.Is(err, ops.ErrLeaseLost) {
		t.Fatalf("stale AppendLog = %v", err)
	}
	steps, err := s.Steps(ctx, "r1")
	must(t, err)
	if len(steps) != 3 || steps[0].Attempt != 1 || steps[1].Attempt != 2 || steps[0].PGID != 4242 || steps[0].State != ops.StepFailed ||
		steps[0].Detail != "exit 1" || steps[0].Holder != "h1" || steps[0].Epoch != l.Epoch || steps[2].State != ops.StepStarted || steps[2].PGID != 0 ||
		steps[0].FinishedAt.IsZero() || !steps[2].FinishedAt.IsZero() {
		t.Fatalf("steps = %+v", steps)
	}
	lines, err := s.LogLines(ctx, "r1", 0, 0)
	must(t, err)
	if len(lines) != 3 || lines[0].Line != "one" || lines[0].Target != "web1" || lines[1].Stream != "stderr" || lines[2].Time.IsZero() {
		t.Fatalf("log = %+v", lines)
	}
	if more, _ := s.LogLines(ctx, "r1", lines[0].ID, 1); len(more) != 1 || more[0].Line != "two" {
		t.Fatalf("log after %d limit 1 = %+v", lines[0].ID, more)
	}
	// With no run: every run's log, in id order (the log feed).
	if all, _ := s.LogLines(ctx, "", lines[0].ID, 0); len(all) != 2 || all[0].RunID != "r1" || all[1].Line != "three" {
		t.Fatalf("every run's log after %d = %+v", lines[0].ID, all)
	}
	if last, err := s.LastLogLine(ctx); err != nil || last != lines[2].ID {
		t.Fatalf("last log line = %d, %v; want %d", last, err, lines[2].ID)
	}
	vs, unknown, err := s.TargetVersions(ctx, "prod")
	if err != nil || vs["web1"] != "1.2.0" || fmt.Sprint(unknown) != "[web2]" {
		t.Fatalf("target versions = %v %v %v", vs, unknown, err)
	}
	// The new holder continues.
	f2 := fence(l2)
	atomic(t, s, func(tx ops.Tx) error { return tx.TakeOverRun(ctx, "r1", f2) })
	atomic(t, s, func(tx ops.Tx) error { return tx.FinishRun(ctx, "r1", ops.RunSucceeded, "") })
	if err := s.Atomic(ctx, func(tx ops.Tx) error { return tx.FinishRun(ctx, "r1", ops.RunFailed, "x") }); !errors.Is(err, ops.ErrConflict) {
		t.Fatalf("finishing a finished run = %v, want ErrConflict", err)
	}
	r, err := s.GetRun(ctx, "r1")
	if err != nil || r.State != ops.RunSucceeded || r.FinishedAt.IsZero() || r.Holder != "h2" || r.Epoch != l2.Epoch || r.Kind != "rollout" {
		t.Fatalf("run = %+v, %v", r, err)
	}
	if _, err := s.GetRun(ctx, "nope"); !errors.Is(err, ops.ErrNotFound) {
		t.Fatalf("missing run: %v", err)
	}
}

func testTakeOver(t *testing.T, open Opener) {
	s, c := world(t, open)
	l1, err := acquire(s, ops.LeaseRequest{Environment: "prod", Holder: "h1", RunID: "r1", TTL: time.Minute})
	must(t, err)
	atomic(t, s, func(tx ops.Tx) error {
		if err := tx.InsertRun(ctx, ops.Run{ID: "r0", UpdateID: "u1", Environment: "prod", Kind: "rollout", State: ops.RunFailed}); err != nil {
			return err
		}
		return tx.InsertRun(ctx, ops.Run{ID: "r1", UpdateID: "u1", Environment: "prod", Kind: "rollout", State: ops.RunRunning, Holder: "h1", Epoch: l1.Epoch})
	})
	old, err := s.StepStarted(ctx, fence(l1), ops.StepRecord{RunID: "r1", Batch: 1, Target: "web1", Step: "deploy", Version: "2"})
	must(t, err)
	done, err := s.StepStarted(ctx, fence(l1), ops.StepRecord{RunID: "r1", Batch: 1, Target: "web0", Step: "deploy", Version: "2"})
	must(t, err)
	must(t, s.StepFinished(ctx, fence(l1), done, ops.StepSucceeded, ""))
	c.Advance(2 * time.Minute)
	l2, err := acquire(s, ops.LeaseRequest{Environment: "prod", Holder: "h2", TTL: time.Minute})
	must(t, err)
	// A takeover under a fence that is not current is refused.
	if err := s.Atomic(ctx, func(tx ops.Tx) error { return tx.TakeOverRun(ctx, "r1", fence(l1)) }); !errors.Is(err, ops.ErrLeaseLost) {
		t.Fatalf("stale takeover = %v", err)
	}
	var fresh int64
	atomic(t, s, func(tx ops.Tx) error { return tx.TakeOverRun(ctx, "r1", fence(l2)) })
	fresh, err = s.StepStarted(ctx, fence(l2), ops.StepRecord{RunID: "r1", Batch: 1, Target: "web1", Step: "deploy", Version: "2"})
	must(t, err)
	if err := s.Atomic(ctx, func(tx ops.Tx) error { return tx.TakeOverRun(ctx, "r0", fence(l2)) }); !errors.Is(err, ops.ErrConflict) {
		t.Fatalf("taking over a finished run = %v, want ErrConflict", err)
	}
	steps, err := s.Steps(ctx, "r1")
	must(t, err)
	byID := map[int64]ops.StepRecord{}
	for _, st := range steps {
		byID[st.ID] = st
	}
	if st := byID[old]; st.State != ops.StepAbandoned || st.FinishedAt.IsZero() || st.Detail == "" {
		t.Fatalf("the old holder's unfinished step = %+v, want abandoned", st)
	}
	if byID[done].State != ops.StepSucceeded || byID[fresh].State != ops.StepStarted || byID[fresh].Attempt != 2 {
		t.Fatalf("steps = %+v", steps)
	}
	if err := s.StepFinished(ctx, fence(l1), old, ops.StepSucceeded, ""); !errors.Is(err, ops.ErrLeaseLost) {
		t.Fatalf("old holder finishing its abandoned step = %v", err)
	}
	// Decide once, record facts once.
	var r ops.Run
	atomic(t, s, func(tx ops.Tx) error {
		var err error
		if r, err = tx.DecideRollback(ctx, "r1", "health failed"); err != nil {
			return err
		}
		r, err = tx.DecideRollback(ctx, "r1", "second reason")
		return err
	})
	if r.Decision != ops.DecisionRollback || r.DecisionReason != "health failed" {
		t.Fatalf("decision = %+v", r)
	}
	if err := s.Atomic(ctx, func(tx ops.Tx) error { _, err := tx.DecideRollback(ctx, "nope", "x"); return err }); !errors.Is(err, ops.ErrNotFound) {
		t.Fatalf("decide on a missing run = %v", err)
	}
	var first, second bool
	atomic(t, s, func(tx ops.Tx) error {
		var err error
		first, err = tx.RecordFact(ctx, "r1", "batch-1-note")
		return err
	})
	atomic(t, s, func(tx ops.Tx) error {
		var err error
		second, err = tx.RecordFact(ctx, "r1", "batch-1-note")
		return err
	})
	if !first || second {
		t.Fatalf("RecordFact = %v then %v, want true then false", first, second)
	}
	runs, err := s.Runs(ctx, "u1")
	if err != nil || len(runs) != 2 || runs[0].ID != "r1" {
		t.Fatalf("runs newest first = %+v, %v (ties in insertion order)", runs, err)
	}
	if running, _ := s.Runs(ctx, "", ops.RunRunning); len(running) != 1 || running[0].ID != "r1" {
		t.Fatalf("running runs = %+v", running)
	}
}

func appendEvents(t *testing.T, s Store, n int, action string) {
	t.Helper()
	for i := range n {
		atomic(t, s, func(tx ops.Tx) error {
			_, err := tx.AppendEvent(ctx, ops.Event{
				Actor: "tester", Action: action, Subject: fmt.Sprint(i), Environment: "prod", UpdateID: "u1",
				Result: "ok", Detail: map[string]any{"i": i, "s": "x"},
			})
			return err
		})
	}
}

func testAudit(t *testing.T, open Opener) {
	s, _ := world(t, open) // SyncEnvironments appended two events
	appendEvents(t, s, 3, "test.event")
	if err := s.Atomic(ctx, func(tx ops.Tx) error {
		if _, err := tx.AppendEvent(ctx, ops.Event{Actor: "x", Action: "rolled.back"}); err != nil {
			return err
		}
		return errors.New("boom")
	}); err == nil {
		t.Fatal("want the callback's error")
	}
	ev, err := s.AppendEvent(ctx, ops.Event{Actor: "tester", Action: "own.tx", Environment: "dev"})
	if err != nil || ev.Seq != 6 || len(ev.Hash) != 64 || len(ev.PrevHash) != 64 {
		t.Fatalf("AppendEvent = %+v, %v", ev, err)
	}
	v, err := s.VerifyAudit(ctx)
	if err != nil || !v.OK || v.Events != 6 || v.HeadSeq != 6 || v.HeadHash != ev.Hash {
		t.Fatalf("verify = %+v, %v", v, err)
	}
	all, err := s.ListEvents(ctx, ops.EventFilter{})
	must(t, err)
	if len(all) != 6 || all[0].Action != "environment.configured" || all[5].PrevHash != all[4].Hash {
		t.Fatalf("events = %+v", all)
	}
	if all[2].Detail["s"] != "x" || all[2].UpdateID != "u1" || all[2].Time.IsZero() {
		t.Fatalf("event detail = %+v", all[2])
	}
	for _, e := range all {
		if e.Action == "rolled.back" {
			t.Fatal("an event of a rolled-back transaction was kept")
		}
	}
	if l, _ := s.ListEvents(ctx, ops.EventFilter{Limit: 2}); len(l) != 2 || l[0].Seq != 5 || l[1].Seq != 6 {
		t.Fatalf("newest 2 in chain order = %+v", l)
	}
	if l, _ := s.ListEvents(ctx, ops.EventFilter{Environment: "dev", AfterSeq: 2}); len(l) != 1 || l[0].Seq != 6 {
		t.Fatalf("dev events after 2 = %+v", l)
	}
	if l, _ := s.ListEvents(ctx, ops.EventFilter{UpdateID: "u1", Limit: 1}); len(l) != 1 || l[0].Seq != 5 {
		t.Fatalf("u1's newest event = %+v", l)
	}
}

func testAuditConcurrent(t *testing.T, open Opener) {
	s, _ := world(t, open)
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 8 {
				if err := s.Atomic(ctx, func(tx ops.Tx) error {
					_, err := tx.AppendEvent(ctx, ops.Event{Actor: fmt.Sprintf("w%d", w), Action: "concurrent", Subject: fmt.Sprint(i)})
					return err
				}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	v, err := s.VerifyAudit(ctx)
	if err != nil || !v.OK || v.Events != 2+6*8 {
		t.Fatalf("verify after concurrent appends = %+v, %v", v, err)
	}
}

func testAuditKeyed(t *testing.T, open Opener) {
	c := NewClock()
	s := open(t, Options{Clock: c.Now})
	must(t, s.SyncEnvironments(ctx, []ops.Environment{{Name: "prod"}}, "tester"))
	key := []byte("0123456789abcdef0123456789abcdef")
	k := open(t, Options{Clock: c.Now, AuditKey: key, Same: s})
	if _, err := k.AppendEvent(ctx, ops.Event{Actor: "a", Action: "keyed.one"}); err != nil {
		t.Fatal(err)
	}
	evs, err := k.ListEvents(ctx, ops.EventFilter{})
	must(t, err)
	if len(evs) != 3 || evs[1].Action != "audit.keyed" || evs[1].MAC == "" || evs[2].MAC == "" || evs[0].MAC != "" {
		t.Fatalf("keyed chain = %+v", evs)
	}
	v, err := k.VerifyAudit(ctx)
	if err != nil || !v.OK || !v.MACsChecked || v.KeyedFrom != 2 || v.KeyID == "" || v.ChainKeyID != v.KeyID {
		t.Fatalf("keyed verify = %+v, %v", v, err)
	}
	if _, err := s.AppendEvent(ctx, ops.Event{Actor: "a", Action: "unkeyed"}); err == nil {
		t.Fatal("a keyless process appended to a keyed chain")
	}
	other := open(t, Options{Clock: c.Now, AuditKey: []byte("another key, another key, another"), Same: s})
	if _, err := other.AppendEvent(ctx, ops.Event{Actor: "a", Action: "other"}); err == nil {
		t.Fatal("a process with another key appended to a keyed chain")
	}
	if v, err := other.VerifyAudit(ctx); err != nil || v.OK {
		t.Fatalf("verify with another key = %+v, %v; want not OK", v, err)
	}
	if v, err := s.VerifyAudit(ctx); err != nil || !v.OK || v.MACsChecked || len(v.Notes) == 0 {
		t.Fatalf("verify without the key = %+v, %v; want OK with a note", v, err)
	}
}

func testAuditAnchors(t *testing.T, open Opener) {
	s, _ := world(t, open)
	appendEvents(t, s, 2, "before.anchor")
	var a ops.AuditAnchor
	atomic(t, s, func(tx ops.Tx) error {
		an, ok := tx.(ops.AuditAnchorer)
		if !ok {
			return errors.New("the store's transaction is not an ops.AuditAnchorer")
		}
		var err error
		a, err = an.AuditAnchor(ctx, ops.AuditAnchor{Change: "CHG1"})
		return err
	})
	if a.Seq != 4 || len(a.Hash) != 64 {
		t.Fatalf("anchor = %+v", a)
	}
	appendEvents(t, s, 1, "after.anchor")
	v, err := s.VerifyAuditAnchors(ctx, []ops.AuditAnchor{a})
	if err != nil || !v.OK || v.AnchorsChecked != 1 || v.LastAnchorSeq != 4 {
		t.Fatalf("verify with anchor = %+v, %v", v, err)
	}
	bad := a
	bad.Hash = fmt.Sprintf("%064d", 1)
	if v, _ := s.VerifyAuditAnchors(ctx, []ops.AuditAnchor{bad}); v.OK || len(v.AnchorProblems) != 1 {
		t.Fatalf("rewritten chain not detected: %+v", v)
	}
	beyond := ops.AuditAnchor{Seq: 99, Hash: a.Hash, Source: "test"}
	if v, _ := s.VerifyAuditAnchors(ctx, []ops.AuditAnchor{beyond}); v.OK || v.BadSeq != 6 {
		t.Fatalf("cut chain not detected: %+v", v)
	}
}

func testDrift(t *testing.T, open Opener) {
	s, c := world(t, open)
	t0 := c.Now()
	first, err := s.DriftSeen(ctx, "prod", "web1", "1.0", "0.9")
	if err != nil || !first.Equal(t0) {
		t.Fatalf("first sighting = %s, %v", first, err)
	}
	c.Advance(time.Minute)
	if first, _ := s.DriftSeen(ctx, "prod", "web1", "1.0", "0.9"); !first.Equal(t0) {
		t.Fatalf("same divergence first seen = %s, want %s", first, t0)
	}
	if first, _ := s.DriftSeen(ctx, "prod", "web1", "1.0", "0.8"); !first.Equal(c.Now()) {
		t.Fatalf("another divergence first seen = %s, want now", first)
	}
	_, err = s.DriftSeen(ctx, "prod", "web2", "1.0", "1.1")
	must(t, err)
	_, err = s.DriftSeen(ctx, "dev", "d1", "1.0", "1.1")
	must(t, err)
	must(t, s.DriftCleared(ctx, "prod", "web2"))
	got, err := s.DriftedTargets(ctx)
	if err != nil || len(got) != 2 || got["prod"] != 1 || got["dev"] != 1 {
		t.Fatalf("drifted = %v, %v", got, err)
	}
}

func testAlerts(t *testing.T, open Opener) {
	s, c := world(t, open)
	t0 := c.Now()
	b := func(v bool, err error) bool { t.Helper(); must(t, err); return v }
	if !b(s.OpenPolicyAlert(ctx, "prod", "p1", "block", "m1")) {
		t.Fatal("a new finding must open")
	}
	c.Advance(time.Minute)
	if b(s.OpenPolicyAlert(ctx, "prod", "p1", "block", "m2")) {
		t.Fatal("an open finding opened again")
	}
	as, err := s.OpenPolicyAlerts(ctx)
	if err != nil || len(as) != 1 || as[0].Message != "m2" || !as[0].FirstSeen.Equal(t0) {
		t.Fatalf("alerts = %+v, %v", as, err)
	}
	if !b(s.ResolvePolicyAlert(ctx, "prod", "p1")) || b(s.ResolvePolicyAlert(ctx, "prod", "p1")) {
		t.Fatal("resolve must report once")
	}
	if as, _ := s.OpenPolicyAlerts(ctx); len(as) != 0 {
		t.Fatalf("resolved alert listed: %+v", as)
	}
	c.Advance(time.Minute)
	if !b(s.OpenPolicyAlert(ctx, "prod", "p1", "warn", "m3")) {
		t.Fatal("a resolved finding seen again must reopen")
	}
	if as, _ := s.OpenPolicyAlerts(ctx); len(as) != 1 || !as[0].FirstSeen.Equal(c.Now()) || as[0].Action != "warn" {
		t.Fatalf("reopened = %+v", as)
	}
}

func testDaemons(t *testing.T, open Opener) {
	s, c := world(t, open)
	t0 := c.Now()
	must(t, s.Heartbeat(ctx, store.Daemon{ID: "h1:10", Host: "h1", PID: 10, Version: "v1"}))
	must(t, s.Heartbeat(ctx, store.Daemon{ID: "h2:20", Host: "h2", PID: 20, Version: "v1"}))
	c.Advance(time.Minute)
	must(t, s.Heartbeat(ctx, store.Daemon{ID: "h1:10", Host: "h1", PID: 10, Version: "v2"}))
	_, err := acquire(s, ops.LeaseRequest{Environment: "prod", Holder: "h1:10", TTL: time.Hour})
	must(t, err)
	_, err = acquire(s, ops.LeaseRequest{Environment: "dev", Holder: "h1:10", TTL: time.Hour})
	must(t, err)
	st, err := s.Status(ctx)
	must(t, err)
	ds := st.Daemons
	if len(ds) != 2 || ds[0].ID != "h1:10" || ds[0].PID != 10 || ds[0].Version != "v2" || !ds[0].StartedAt.Equal(t0) ||
		!ds[0].HeartbeatAt.Equal(c.Now()) || fmt.Sprint(ds[0].Holds) != "[dev prod]" || len(ds[1].Holds) != 0 || !ds[1].HeartbeatAt.Equal(t0) {
		t.Fatalf("daemons = %+v", ds)
	}
	must(t, s.DaemonStopped(ctx, "h2:20"))
	if ds, err := s.Daemons(ctx); err != nil || len(ds) != 1 {
		t.Fatalf("after a clean stop: %+v, %v", ds, err)
	}
}

func saveConflictCheck(t *testing.T, s Store, chk ops.ConflictCheck) {
	t.Helper()
	atomic(t, s, func(tx ops.Tx) error { return tx.SaveConflictCheck(ctx, chk) })
}

func testConflictChecks(t *testing.T, open Opener) {
	s, c := world(t, open)
	if _, err := s.ConflictCheck(ctx, "u1"); !errors.Is(err, ops.ErrNotFound) {
		t.Fatalf("no check yet: %v, want ErrNotFound", err)
	}
	started := c.Now().Add(-time.Hour)
	saveConflictCheck(t, s, ops.ConflictCheck{UpdateID: "u1", ChangeSysID: "c1", State: ops.ConflictRunning, Worker: "w1", StartedAt: started})
	got, err := s.ConflictCheck(ctx, "u1")
	if err != nil || got.State != ops.ConflictRunning || got.Worker != "w1" || !got.StartedAt.Equal(started) || !got.CheckedAt.Equal(c.Now()) ||
		got.Conflicts == nil || len(got.Conflicts) != 0 {
		t.Fatalf("running check (stamped now, no conflicts) = %+v, %v", got, err)
	}
	found := []ops.Conflict{{Type: "blackout", Label: "Blackout", Schedule: "Year-end freeze", CI: "checkout-service"}}
	saveConflictCheck(t, s, ops.ConflictCheck{
		UpdateID: "u1", ChangeSysID: "c1", State: ops.ConflictFound, Worker: "w1", StartedAt: started,
		LastRun: started.Add(2 * time.Second), Conflicts: found, Message: "one conflict", CheckedAt: started.Add(3 * time.Second),
	})
	got, err = s.ConflictCheck(ctx, "u1")
	if err != nil || got.State != ops.ConflictFound || len(got.Conflicts) != 1 || got.Conflicts[0] != found[0] ||
		!got.LastRun.Equal(started.Add(2*time.Second)) || !got.CheckedAt.Equal(started.Add(3*time.Second)) || got.Message != "one conflict" {
		t.Fatalf("completed check replaces the running one: %+v, %v", got, err)
	}
	saveConflictCheck(t, s, ops.ConflictCheck{UpdateID: "u0", State: ops.ConflictFound, CheckedAt: started.Add(time.Second)})
	saveConflictCheck(t, s, ops.ConflictCheck{UpdateID: "u9", State: ops.ConflictClear, CheckedAt: started})
	due, err := s.ConflictChecks(ctx, ops.ConflictFound, started.Add(time.Minute))
	if err != nil || len(due) != 2 || due[0].UpdateID != "u0" || due[1].UpdateID != "u1" {
		t.Fatalf("checks in state conflict before the bound = %+v, %v; want u0 then u1 (oldest first)", due, err)
	}
	if due, err := s.ConflictChecks(ctx, ops.ConflictFound, started.Add(time.Second)); err != nil || len(due) != 0 {
		t.Fatalf("a check recorded at or after the bound is due: %+v, %v", due, err)
	}
}

func testChangeConflictStatus(t *testing.T, open Opener) {
	s, c := world(t, open)
	ch := change(1, 1, c.Now())
	ch.ConflictStatus = ops.ConflictStatusConflict
	upsertChanges(t, s, ch)
	got, err := s.GetChange(ctx, ch.SysID)
	if err != nil || got.ConflictStatus != ops.ConflictStatusConflict {
		t.Fatalf("conflict_status = %q, %v; want %q", got.ConflictStatus, err, ops.ConflictStatusConflict)
	}
	ch.ConflictStatus, ch.SysModCount = ops.ConflictStatusNone, 2
	upsertChanges(t, s, ch)
	if got, err := s.GetChange(ctx, ch.SysID); err != nil || got.ConflictStatus != ops.ConflictStatusNone {
		t.Fatalf("newer copy: conflict_status = %q, %v; want %q", got.ConflictStatus, err, ops.ConflictStatusNone)
	}
}

func testOutboxDiscardSupersede(t *testing.T, open Opener) {
	s, c := world(t, open)
	now := c.Now()
	d1 := enqueue(t, s, "CHG1", ops.OutboxDecide)
	d2 := enqueue(t, s, "CHG1", ops.OutboxDecide)
	must(t, s.MarkAttemptFailed(ctx, d1, "no pending approval", now, true))
	if due, _ := s.DueOutbox(ctx, now, 10); len(due) != 0 {
		t.Fatalf("a refused head must hold its key back: due = %v", ids(due))
	}
	var closed []int64
	atomic(t, s, func(tx ops.Tx) error {
		var err error
		closed, err = tx.SupersedeFailed(ctx, "CHG1", ops.OutboxDecide, d2)
		return err
	})
	if fmt.Sprint(closed) != fmt.Sprint([]int64{d1}) {
		t.Fatalf("supersede closed %v; want [%d]", closed, d1)
	}
	if due, _ := s.DueOutbox(ctx, now, 10); fmt.Sprint(ids(due)) != fmt.Sprint([]int64{d2}) {
		t.Fatalf("after supersede, due = %v; want [%d]", ids(due), d2)
	}
	if it, err := s.GetOutbox(ctx, d1); err != nil || it.State != ops.OutboxSuperseded || it.LastError != "no pending approval" {
		t.Fatalf("superseded item = %+v, %v", it, err)
	}
	if n, err := s.RetryOutbox(ctx, 0); err != nil || n != 1 {
		t.Fatalf("retry touched %d items (%v); want only the pending one (closed items are never retried)", n, err)
	}
	// Discard: not while a live pass holds it, never once delivered.
	if ok, err := s.ClaimOutbox(ctx, d2, "h:1:p", time.Minute); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	discard := func(id int64) error {
		return s.Atomic(ctx, func(tx ops.Tx) error { _, err := tx.DiscardOutbox(ctx, id); return err })
	}
	if err := discard(d2); !errors.Is(err, ops.ErrConflict) {
		t.Fatalf("discarding a claimed item: %v; want ErrConflict", err)
	}
	must(t, s.ReleaseOutbox(ctx, d2, "h:1:p"))
	must(t, discard(d2))
	if it, err := s.GetOutbox(ctx, d2); err != nil || it.State != ops.OutboxDiscarded {
		t.Fatalf("discarded item = %+v, %v", it, err)
	}
	if ok, err := s.ClaimOutbox(ctx, d2, "h:1:p", time.Minute); ok || err != nil {
		t.Fatalf("claiming a discarded item = %v, %v; want refused", ok, err)
	}
	if err := discard(d2); !errors.Is(err, ops.ErrConflict) {
		t.Fatalf("discarding twice: %v; want ErrConflict", err)
	}
	if err := discard(99999); !errors.Is(err, ops.ErrNotFound) {
		t.Fatalf("discarding a missing item: %v; want ErrNotFound", err)
	}
	d3 := enqueue(t, s, "CHG2", ops.OutboxDecide)
	atomic(t, s, func(tx ops.Tx) error { return tx.MarkDelivered(ctx, d3, nil) })
	if err := discard(d3); !errors.Is(err, ops.ErrConflict) {
		t.Fatalf("discarding a delivered item: %v; want ErrConflict", err)
	}
	if items, err := s.ListOutbox(ctx, ops.OutboxFilter{}); err != nil || len(items) != 0 {
		t.Fatalf("default list (pending, failed) = %v, %v; want closed items left out", ids(items), err)
	}
	closedItems, err := s.ListOutbox(ctx, ops.OutboxFilter{States: []ops.OutboxState{ops.OutboxDiscarded, ops.OutboxSuperseded}})
	if err != nil || fmt.Sprint(ids(closedItems)) != fmt.Sprint([]int64{d1, d2}) {
		t.Fatalf("closed items = %v, %v; want [%d %d]", ids(closedItems), err, d1, d2)
	}
}

func testOneOpenUpdate(t *testing.T, open Opener) {
	s, c := world(t, open)
	openIDs := func(env string) string {
		t.Helper()
		var got []string
		atomic(t, s, func(tx ops.Tx) error {
			us, err := tx.OpenUpdates(ctx, env)
			for _, u := range us {
				got = append(got, u.ID)
			}
			return err
		})
		return fmt.Sprint(got)
	}
	if got := openIDs("prod"); got != "[u1]" {
		t.Fatalf("open updates of prod = %s; want [u1]", got)
	}
	if got := openIDs("dev"); got != "[]" {
		t.Fatalf("open updates of dev = %s; want none", got)
	}
	second := ops.Update{ID: "u2", Environment: "prod", Version: "1.3.0", Plan: []byte(`{}`), PlanDigest: "d2", State: ops.UpdateApproved}
	err := s.Atomic(ctx, func(tx ops.Tx) error { return tx.InsertUpdate(ctx, second) })
	if !errors.Is(err, ops.ErrConflict) {
		t.Fatalf("a second open update of prod: %v; want ErrConflict", err)
	}
	// Another environment, and a finished update, do not count.
	atomic(t, s, func(tx ops.Tx) error {
		return tx.InsertUpdate(ctx, ops.Update{ID: "u3", Environment: "dev", Version: "1", Plan: []byte(`{}`), State: ops.UpdateProposed})
	})
	atomic(t, s, func(tx ops.Tx) error {
		return tx.InsertUpdate(ctx, ops.Update{ID: "u4", Environment: "prod", Version: "0.9", Plan: []byte(`{}`), State: ops.UpdateCanceled})
	})
	u1, err := s.GetUpdate(ctx, "u1")
	must(t, err)
	u1.State = ops.UpdateCanceled
	atomic(t, s, func(tx ops.Tx) error { return tx.SaveUpdate(ctx, u1, ops.UpdateProposed) })
	c.Advance(time.Minute)
	atomic(t, s, func(tx ops.Tx) error { return tx.InsertUpdate(ctx, second) })
	if got := openIDs("prod"); got != "[u2]" {
		t.Fatalf("open updates of prod after canceling u1 = %s; want [u2]", got)
	}
	// A running update holds the environment too.
	second.State = ops.UpdateRunning
	atomic(t, s, func(tx ops.Tx) error { return tx.SaveUpdate(ctx, second, ops.UpdateApproved) })
	err = s.Atomic(ctx, func(tx ops.Tx) error {
		return tx.InsertUpdate(ctx, ops.Update{ID: "u5", Environment: "prod", Version: "1.4.0", Plan: []byte(`{}`), State: ops.UpdateProposed})
	})
	if !errors.Is(err, ops.ErrConflict) {
		t.Fatalf("an update proposed while one runs: %v; want ErrConflict", err)
	}
	if got := openIDs("prod"); got != "[u2]" {
		t.Fatalf("open updates of prod = %s; want [u2]", got)
	}
}

// testWaitingChangesSearchCICache: the reconcile's batch read, the search
// over the joined number/description/CI text (never across two fields),
// and the CI sys_id cache (issue 14).
func testWaitingChangesSearchCICache(t *testing.T, open Opener) {
	s, c := world(t, open)
	t0 := c.Now().Add(-time.Hour)
	a, b := change(1, 1, t0), change(2, 1, t0)
	a.ShortDescription, a.CmdbCI = "Rotate TLS", "Payments-API"
	upsertChanges(t, s, a, b)
	// The reconcile's join: waiting updates with a mirrored change only
	// (u1's change is not mirrored), newest first, with its state columns.
	atomic(t, s, func(tx ops.Tx) error {
		u1, err := tx.GetUpdate(ctx, "u1")
		if err != nil {
			return err
		}
		u1.ChangeSysID = "missing"
		if err := tx.SaveUpdate(ctx, u1, ops.UpdateProposed); err != nil {
			return err
		}
		return tx.InsertUpdate(ctx, ops.Update{
			ID: "u2", Environment: "dev", Version: "2", Plan: []byte(`[]`), State: ops.UpdateAwaitingApproval, ChangeSysID: "sys002",
		})
	})
	waiting, err := s.WaitingChanges(ctx, ops.WaitingFilter{States: []ops.UpdateState{ops.UpdateProposed, ops.UpdateAwaitingApproval}})
	must(t, err)
	if len(waiting) != 1 || waiting[0].UpdateID != "u2" || waiting[0].State != ops.UpdateAwaitingApproval ||
		waiting[0].Change.Number != "CHG0000002" || waiting[0].Change.State != b.State || !waiting[0].Change.Active ||
		waiting[0].Change.Type != b.Type || waiting[0].Change.SysID != "sys002" {
		t.Fatalf("WaitingChanges = %+v", waiting)
	}
	if waiting, err := s.WaitingChanges(ctx, ops.WaitingFilter{States: []ops.UpdateState{ops.UpdateApproved}}); err != nil || len(waiting) != 0 {
		t.Fatalf("WaitingChanges(approved) = %+v, %v", waiting, err)
	}
	// Narrowed to the change shapes that move an update: b is New with no
	// decision, so only a rejection or a state among ChangeStates selects it.
	narrow := ops.WaitingFilter{
		States:       []ops.UpdateState{ops.UpdateProposed, ops.UpdateAwaitingApproval},
		ChangeStates: []ops.ChangeState{ops.ChangeCanceled, ops.ChangeScheduled},
		Approvals:    []ops.ApprovalState{ops.ApprovalRejected},
	}
	if waiting, err := s.WaitingChanges(ctx, narrow); err != nil || len(waiting) != 0 {
		t.Fatalf("WaitingChanges(narrowed) of a change in New = %+v, %v; want none", waiting, err)
	}
	for _, moved := range []func(*ops.Change){
		func(c *ops.Change) { c.State = ops.ChangeScheduled },
		func(c *ops.Change) { c.Approval = ops.ApprovalRejected },
		func(c *ops.Change) { c.State, c.Active = ops.ChangeCanceled, false },
	} {
		b.SysModCount++
		b.SysUpdatedOn = b.SysUpdatedOn.Add(time.Second)
		b.State, b.Approval, b.Active = ops.ChangeNew, "", true
		moved(&b)
		upsertChanges(t, s, b)
		waiting, err := s.WaitingChanges(ctx, narrow)
		must(t, err)
		if len(waiting) != 1 || waiting[0].UpdateID != "u2" || waiting[0].Change.State != b.State || waiting[0].Change.Approval != b.Approval {
			t.Fatalf("WaitingChanges(narrowed) of change state %v, approval %q = %+v; want u2", b.State, b.Approval, waiting)
		}
	}
	for q, want := range map[string]int{"tls": 1, "payments-api": 1, "TLS\x1fpay": 0, "tlspay": 0, "chg000000": 2} {
		n, err := s.CountChanges(ctx, ops.ChangeFilter{Search: q})
		must(t, err)
		if n != want {
			t.Errorf("search %q counts %d, want %d", q, n, want)
		}
	}
	cis, err := s.CachedCIs(ctx)
	must(t, err)
	if len(cis) != 0 {
		t.Fatalf("empty CI cache = %+v", cis)
	}
	at := c.Now().UTC().Truncate(time.Second)
	must(t, s.CacheCIs(ctx, map[string]ops.CachedCI{"checkout-service": {SysID: "ci1", ResolvedAt: at}, "payments-api": {SysID: "ci2", ResolvedAt: at}}))
	must(t, s.CacheCIs(ctx, map[string]ops.CachedCI{"checkout-service": {SysID: "ci1", ResolvedAt: at}}))
	cis, err = s.CachedCIs(ctx)
	must(t, err)
	if len(cis) != 1 || cis["checkout-service"].SysID != "ci1" || !cis["checkout-service"].ResolvedAt.Equal(at) {
		t.Fatalf("CI cache = %+v, want only checkout-service", cis)
	}
}

// testLatestRuns: LatestRuns is every running run and each environment's
// newest run that is not running (ties of start time broken by insertion
// order), newest first, whatever else the history holds.
func testLatestRuns(t *testing.T, open Opener) {
	s, c := world(t, open)
	must(t, s.SyncEnvironments(ctx, []ops.Environment{{Name: "prod", RequiresChange: true}, {Name: "dev"}, {Name: "stg"}}, "tester"))
	insert := func(id, env string, state ops.RunState) {
		atomic(t, s, func(tx ops.Tx) error {
			return tx.InsertRun(ctx, ops.Run{ID: id, UpdateID: "u1", Environment: env, Kind: "rollout", State: state})
		})
	}
	insert("p1", "prod", ops.RunFailed)
	insert("s1", "stg", ops.RunRolledBack)
	c.Advance(time.Second)
	insert("p2", "prod", ops.RunSucceeded)
	insert("s2", "stg", ops.RunSucceeded)
	insert("s3", "stg", ops.RunFailed) // same second as s2: inserted later, so newer
	c.Advance(time.Second)
	insert("p3", "prod", ops.RunRunning)
	insert("d1", "dev", ops.RunRunning)
	runs, err := s.LatestRuns(ctx)
	must(t, err)
	var got []string
	for _, r := range runs {
		got = append(got, r.ID+":"+string(r.State))
	}
	if want := "d1:running p3:running s3:failed p2:succeeded"; fmt.Sprint(got) != "["+want+"]" {
		t.Fatalf("latest runs = %v, want %s", got, want)
	}
	if r, ok, err := s.LatestRun(ctx); err != nil || !ok || r.ID != "d1" {
		t.Fatalf("latest run = %+v %v %v, want d1", r, ok, err)
	}
}
