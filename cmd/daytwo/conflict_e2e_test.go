package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/daytwo/daytwo/itsm/snowsim"
)

// simConflict reads a change's conflict check as ServiceNow answers it
// (GET /api/sn_chg_rest/change/{id}/conflict).
func (w *engineWorld) simConflict(t *testing.T, number string) map[string]any {
	t.Helper()
	rec := w.simRecords(t, "change_request", "number="+number)
	if len(rec) != 1 {
		t.Fatalf("change %s: %v", number, rec)
	}
	req, _ := http.NewRequest(http.MethodGet, w.sim.URL()+"/api/sn_chg_rest/change/"+rec[0]["sys_id"].(string)+"/conflict", nil)
	req.SetBasicAuth("admin", "admin")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Result map[string]any `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Result
}

// Trap 22 through the binary: a conflict check still running on ServiceNow
// (its results read "Conflict" with an empty list and a numeric job_status)
// keeps the gate closed; once a check completes with an empty list — status
// still "Conflict", as documented — the gate opens and the run goes ahead.
func TestConflictCheckRunningBlocksCompletedEmptyConflictDoesNot(t *testing.T) {
	w := newEngineWorldWith(t, "0s", snowsim.Options{ConflictDelay: time.Hour})

	// 1. The check runs for an hour: propose records it as running.
	slow := w.propose(t, "production", "3.0.0")
	w.approve(t, slow.Change)
	if r := daytwo(t, w.env, "sync", "--once"); r.code != 0 {
		t.Fatalf("sync: %+v", r)
	}
	if got := w.simConflict(t, slow.Change); got["status"] != "Conflict" || got["job_status"] != "1" || len(got["conflicts"].([]any)) != 0 {
		t.Fatalf("ServiceNow's view of the running check: %v", got)
	}
	r := daytwo(t, w.env, "run", slow.ID, "-o", "json")
	if r.code != exitBlocked || !strings.Contains(r.stdout, `"code": "conflict"`) || !strings.Contains(r.stdout, "still running") {
		t.Fatalf("run while the conflict check is running: %+v", r)
	}
	if got := w.versions(t, "prd-1", "prd-2", "prd-3"); got != "1.0.0,1.0.0,1.0.0" {
		t.Fatalf("targets moved while the check was running: %s", got)
	}
	if r := daytwo(t, w.env, "update", "cancel", slow.ID, "--reason", "conflict check too slow"); r.code != 0 {
		t.Fatalf("cancel: %+v", r)
	}

	// 2. A check that completes with no conflict (status "Conflict", empty
	// list) does not block. It outlasts the proposal's wait for it, so a
	// sync cycle finds it complete.
	w.sim.Sim().SetConflictDelay(10 * time.Second)
	p := w.propose(t, "production", "3.0.1")
	w.approve(t, p.Change)
	waitFor(t, "a sync to record the completed conflict check", 60*time.Second, func() bool {
		if r := daytwo(t, w.env, "sync", "--once"); r.code != 0 {
			t.Fatalf("sync: %+v", r)
		}
		r := daytwo(t, w.env, "audit", "list", "--update", p.ID, "-o", "json", "--limit", "0")
		return strings.Contains(r.stdout, `"action": "change.conflicts"`) && strings.Contains(r.stdout, `"result": "clear"`)
	})
	if r := daytwo(t, w.env, "audit", "list", "--update", p.ID, "-o", "json", "--limit", "0"); !strings.Contains(r.stdout, `"action": "change.conflicts_started"`) {
		t.Fatalf("the check did not outlast the proposal (no change.conflicts_started): %s", r.stdout)
	}
	got := w.simConflict(t, p.Change)
	if got["status"] != "Conflict" || got["job_status"] != "2" || len(got["conflicts"].([]any)) != 0 {
		t.Fatalf("ServiceNow's view of the completed check: %v", got)
	}
	if r := daytwo(t, w.env, "run", p.ID, "-o", "json"); r.code != 0 {
		t.Fatalf("run after a check with an empty \"Conflict\" list: %+v", r)
	}
	if got := w.versions(t, "prd-1", "prd-2", "prd-3"); got != "3.0.1,3.0.1,3.0.1" {
		t.Fatalf("production after the run: %s", got)
	}
}
