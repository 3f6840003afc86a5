package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daytwo/daytwo/itsm/snowsim"
	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store"
)

// createWorld is a simulator and a config of n gated environments (one
// open update each, so proposals never wait for one another) plus a
// standard-change environment, with a short ServiceNow timeout.
type createWorld struct {
	sim *snowsim.Server
	dir string
	env []string
}

const checkoutCI = "d2300000000000000000000000000001" // the seed's checkout-service

func newCreateWorld(t *testing.T, n int, timeout time.Duration) *createWorld {
	t.Helper()
	w := &createWorld{dir: t.TempDir()}
	w.sim = startSim(t, snowsim.Options{})
	var b strings.Builder
	fmt.Fprintf(&b, `
store: {path: d.db}
servicenow:
  instance: %s
  auth: {username: daytwo}
  timeout: %s
  assignment_group: Platform Ops
environments:
  - name: std
    requires_change: true
    change: {type: standard, template: Routine app rollout, cmdb_ci: checkout-service, check_conflicts: false}
    targets: [{name: std-1}]
    deploy: {command: ["true"]}
`, w.sim.URL(), timeout)
	for i := range n {
		fmt.Fprintf(&b, `  - name: env-%03d
    requires_change: true
    change: {type: normal, cmdb_ci: checkout-service, risk: moderate, check_conflicts: false}
    targets: [{name: t-%03d}]
    deploy: {command: ["true"]}
`, i, i)
	}
	cfg := filepath.Join(w.dir, "daytwo.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	w.env = []string{"DAYTWO_CONFIG=" + cfg, "DAYTWO_SN_PASSWORD=daytwo"}
	return w
}

func (w *createWorld) propose(t *testing.T, env string, extra ...string) proposeResult {
	t.Helper()
	r := daytwo(t, w.env, append([]string{"propose", env, "1.1.0", "-o", "json"}, extra...)...)
	var p proposeResult
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || r.code != 0 {
		t.Errorf("propose %s: %+v (%v)", env, r, err)
	}
	return p
}

func (w *createWorld) db(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(w.dir, "d.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// deliverAll runs `daytwo outbox retry` (every pending write due now) until
// the outbox is empty.
func (w *createWorld) deliverAll(t *testing.T, db *store.DB, within time.Duration) int {
	t.Helper()
	rounds := 0
	waitFor(t, "an empty outbox", within, func() bool {
		left, err := db.ListOutbox(context.Background(), ops.OutboxFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			return true
		}
		rounds++
		if r := daytwo(t, w.env, "outbox", "retry"); r.code != 0 {
			t.Fatalf("outbox retry: %+v", r)
		}
		return false
	})
	return rounds
}

func (w *createWorld) changes(t *testing.T, query string) []map[string]any {
	t.Helper()
	ew := &engineWorld{sim: w.sim}
	return ew.simRecords(t, "change_request", query+"&sysparm_limit=100000")
}

// TestSlowCreatesLeaveNoDuplicates proposes through the binary while the
// instance commits every create 0.5–3× the client's timeout late (the
// record appears only after the client gave up): an update's create is
// looked up but not sent again before it can have committed, duplicates
// are canceled, and each update ends with exactly one open change — the
// one it records.
func TestSlowCreatesLeaveNoDuplicates(t *testing.T) {
	n := trials(20, 200)
	const timeout = time.Second
	w := newCreateWorld(t, n, timeout)
	w.sim.Sim().SetFaults(snowsim.Faults{CreateDelayMin: timeout / 2, CreateDelayMax: 3 * timeout})
	db := w.db(t)
	start := time.Now()
	ids := make([]string, n)
	unanswered := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range work {
				p := w.propose(t, fmt.Sprintf("env-%03d", i))
				mu.Lock()
				ids[i] = p.ID
				if p.Change == "" {
					unanswered++
				}
				mu.Unlock()
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if unanswered == 0 {
		t.Fatal("every create answered within the timeout: the delays never exceeded it, the test proves nothing")
	}
	rounds := w.deliverAll(t, db, time.Duration(n)*2*time.Second+2*time.Minute)

	open, canceled := 0, 0
	byCorrelation := map[string][]string{}
	for _, c := range w.changes(t, "correlation_idSTARTSWITHdaytwo:") {
		switch c["state"] {
		case "4":
			canceled++
		case "3":
		default:
			open++
			byCorrelation[fmt.Sprint(c["correlation_id"])] = append(byCorrelation[fmt.Sprint(c["correlation_id"])], fmt.Sprint(c["number"]))
		}
	}
	for _, id := range ids {
		u, err := db.GetUpdate(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		got := byCorrelation["daytwo:"+id]
		if len(got) != 1 || got[0] != u.ChangeNumber || u.State != ops.UpdateAwaitingApproval {
			t.Errorf("update %s (%s, change %q): open changes %v, want exactly its own", id, u.State, u.ChangeNumber, got)
		}
	}
	t.Logf("%d proposals, %d creates unanswered within the %s timeout, %d delivery rounds, %s: %d open changes, %d duplicates canceled",
		n, unanswered, timeout, rounds, time.Since(start).Round(time.Second), open, canceled)
}

// TestEmptyCreateAnswerDoesNotStickInProposed: an instance that answers a
// create with an empty result has created the change; the update must
// find it by look-up and move on to awaiting approval, with the change's
// number — not be "delivered" with none and stay proposed.
func TestEmptyCreateAnswerDoesNotStickInProposed(t *testing.T) {
	w := newCreateWorld(t, 2, 5*time.Second)
	w.sim.Sim().SetFaults(snowsim.Faults{CreateEmpty: snowsim.Rule{Every: 1}})
	db := w.db(t)
	var ids []string
	for _, env := range []string{"env-000", "env-001"} { // {"result":{}}, then {"result":null}
		ids = append(ids, w.propose(t, env).ID)
	}
	w.deliverAll(t, db, time.Minute)
	for _, id := range ids {
		u, err := db.GetUpdate(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		chs := w.changes(t, "correlation_id=daytwo:"+id)
		if u.State != ops.UpdateAwaitingApproval || u.ChangeNumber == "" || len(chs) != 1 || chs[0]["number"] != u.ChangeNumber {
			t.Fatalf("update %s: state %s change %q; changes in ServiceNow %v", id, u.State, u.ChangeNumber, chs)
		}
	}
}

// TestStandardChangeKeepsWindowCorrelationAndCI raises a standard change
// through the binary: the template drops correlation id, window and CI on
// create (as a real instance does), and the stored record must carry them
// all the same, with daytwo's description.
func TestStandardChangeKeepsWindowCorrelationAndCI(t *testing.T) {
	w := newCreateWorld(t, 0, 5*time.Second)
	db := w.db(t)
	start := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	end := start.Add(2 * time.Hour)
	p := w.propose(t, "std", "--start", start.Format(time.RFC3339), "--end", end.Format(time.RFC3339))
	w.deliverAll(t, db, time.Minute)
	u, err := db.GetUpdate(context.Background(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	chs := w.changes(t, "number="+u.ChangeNumber)
	if u.ChangeNumber == "" || len(chs) != 1 {
		t.Fatalf("update %s: change %q, records %v", p.ID, u.ChangeNumber, chs)
	}
	c := chs[0]
	const layout = "2006-01-02 15:04:05"
	if c["type"] != "standard" || c["correlation_id"] != "daytwo:"+p.ID || c["start_date"] != start.Format(layout) ||
		c["end_date"] != end.Format(layout) || c["cmdb_ci"] != checkoutCI || !strings.Contains(fmt.Sprint(c["description"]), "Raised by daytwo") {
		t.Fatalf("stored standard change: type %v correlation %v window %v–%v ci %v description %.60q",
			c["type"], c["correlation_id"], c["start_date"], c["end_date"], c["cmdb_ci"], c["description"])
	}
	// The gate sees the window: the mirrored change carries it.
	ch, err := db.GetChange(context.Background(), u.ChangeSysID)
	if err != nil || !ch.StartDate.Equal(start) || !ch.EndDate.Equal(end) {
		t.Fatalf("mirrored change window %v–%v (%v), want %v–%v", ch.StartDate, ch.EndDate, err, start, end)
	}
}

// simCreate inserts a change as the simulator's daytwo user (an earlier
// attempt's create committing late looks exactly like this).
func (w *createWorld) simCreate(t *testing.T, fields map[string]string) {
	t.Helper()
	b, _ := json.Marshal(fields)
	req, _ := http.NewRequest(http.MethodPost, w.sim.URL()+"/api/now/table/change_request", bytes.NewReader(b))
	req.SetBasicAuth("daytwo", "daytwo")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create in the simulator: %s", resp.Status)
	}
}

// TestDuplicateChangesOfOneUpdateAreCanceled: when the instance holds two
// changes with an update's correlation id before its create is delivered
// (earlier creates that committed late), delivery keeps the oldest, records
// it, and cancels the other with a work note "duplicate of CHG…".
func TestDuplicateChangesOfOneUpdateAreCanceled(t *testing.T) {
	w := newCreateWorld(t, 1, 5*time.Second)
	db := w.db(t)
	p := w.propose(t, "env-000", "--wait", "0")
	for range 2 {
		w.simCreate(t, map[string]string{"short_description": "late commit", "correlation_id": "daytwo:" + p.ID})
	}
	w.deliverAll(t, db, time.Minute)
	u, err := db.GetUpdate(context.Background(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	chs := w.changes(t, "correlation_id=daytwo:"+p.ID+"^ORDERBYnumber")
	if len(chs) != 2 || chs[0]["number"] != u.ChangeNumber || chs[0]["state"] == "4" || chs[1]["state"] != "4" {
		t.Fatalf("update %s records %q; changes %v, want the oldest kept and the other canceled", p.ID, u.ChangeNumber, chs)
	}
	ew := &engineWorld{sim: w.sim}
	notes := ew.simRecords(t, "sys_journal_field", fmt.Sprintf("element_id=%s^element=work_notes", chs[1]["sys_id"]))
	if len(notes) != 1 || !strings.Contains(fmt.Sprint(notes[0]["value"]), "duplicate of "+u.ChangeNumber) {
		t.Fatalf("work notes on the canceled duplicate: %v", notes)
	}
	r := daytwo(t, w.env, "audit", "list", "-o", "json")
	if !strings.Contains(r.stdout, "duplicates_canceled") {
		t.Fatalf("the audit does not record the canceled duplicate: %s", r.stdout)
	}
}
