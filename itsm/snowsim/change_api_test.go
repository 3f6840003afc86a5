package snowsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestChangeAPI(t *testing.T) {
	e := newEnv(t, Options{})
	// POST /change/normal: 200 and a one-element array of {value, display_value}.
	res := e.call("daytwo", "POST", "/api/sn_chg_rest/change/normal", map[string]any{
		"short_description": "Roll out", "assignment_group": idPlatformOps, "cmdb_ci": idCheckout,
		"start_date": "2026-05-02 22:00:00", "end_date": "2026-05-02 23:00:00", "nonsense": "x", "number": "CHG9",
	}).must(t, http.StatusOK)
	if _, ok := res.json(t)["result"].([]any); !ok {
		t.Fatalf("normal create result is not an array: %s", res.body)
	}
	chg := res.result(t)
	field := func(rec map[string]any, k string) map[string]any { return rec[k].(map[string]any) }
	id := field(chg, "sys_id")["value"].(string)
	if st := field(chg, "state"); st["value"] != "-5" || st["display_value"] != "New" {
		t.Errorf("state = %v", st)
	}
	if sd := field(chg, "start_date"); sd["display_value_internal"] != "2026-05-02 22:00:00" {
		t.Errorf("start_date = %v", sd)
	}
	if ag := field(chg, "assignment_group"); ag["display_value"] != "Platform Ops" {
		t.Errorf("assignment_group = %v", ag)
	}
	meta := chg["__meta"].(map[string]any)["ignoredFields"].([]any)
	if len(meta) != 1 || meta[0] != "nonsense" {
		t.Errorf("ignoredFields = %v", meta)
	}

	// GET one: object.
	got := e.call("daytwo", "GET", "/api/sn_chg_rest/change/"+id, nil).must(t, 200)
	if _, ok := got.json(t)["result"].(map[string]any); !ok {
		t.Fatalf("GET result is not an object: %s", got.body)
	}
	e.call("daytwo", "GET", "/api/sn_chg_rest/v1/change/normal/"+id, nil).must(t, 200)
	e.call("daytwo", "GET", "/api/sn_chg_rest/change/emergency/"+id, nil).must(t, 404)

	// PATCH: object; illegal move uses the Change API variant.
	bad := e.call("daytwo", "PATCH", "/api/sn_chg_rest/change/"+id, map[string]any{"state": "-1"}).must(t, http.StatusForbidden)
	msg, detail := bad.errorOf(t)
	if !strings.HasPrefix(msg, "Change Request record could not be updated. Operation against file 'change_request' was aborted by Business Rule") || detail != "" {
		t.Errorf("change API abort = %q / %#v", msg, detail)
	}
	ok := e.call("daytwo", "PATCH", "/api/sn_chg_rest/change/"+id, map[string]any{"state": "-4"}).must(t, 200)
	if _, isObj := ok.json(t)["result"].(map[string]any); !isObj {
		t.Fatalf("PATCH result is not an object")
	}

	// nextstates from Assess.
	ns := e.call("daytwo", "GET", "/api/sn_chg_rest/change/"+id+"/nextstates", nil).must(t, 200).result(t)
	avail := ns["available_states"].([]any)
	if len(avail) != 3 || avail[0] != "-4" { // Assess, New, Canceled
		t.Errorf("available_states = %v", avail)
	}
	if ns["state_label"].(map[string]any)["-3"] != "Authorize" {
		t.Errorf("state_label = %v", ns["state_label"])
	}

	// List: typed filters and default limit.
	list := e.call("daytwo", "GET", "/api/sn_chg_rest/change?sysparm_query=number="+field(chg, "number")["value"].(string), nil).must(t, 200).list(t)
	if len(list) != 1 {
		t.Errorf("list = %d", len(list))
	}

	// POST /change with chg_model: object.
	obj := e.call("daytwo", "POST", "/api/sn_chg_rest/change", map[string]any{"chg_model": "Emergency", "short_description": "x"}).must(t, 200)
	if rec, isObj := obj.json(t)["result"].(map[string]any); !isObj || rec["type"].(map[string]any)["value"] != "emergency" {
		t.Fatalf("POST /change = %s", obj.body)
	}
	e.call("daytwo", "POST", "/api/sn_chg_rest/change", map[string]any{"short_description": "x"}).must(t, 400)
	e.call("auditor", "POST", "/api/sn_chg_rest/change/normal", map[string]any{"short_description": "x"}).must(t, 403)
	e.call("auditor", "GET", "/api/sn_chg_rest/change/"+id, nil).must(t, 200)
}

func TestStandardFromTemplate(t *testing.T) {
	e := newEnv(t, Options{})
	tpls := e.call("daytwo", "GET", "/api/sn_chg_rest/change/standard/template?sysparm_query=active=true^name=Routine%20app%20rollout", nil).must(t, 200).list(t)
	if len(tpls) != 1 || tpls[0]["sys_id"].(map[string]any)["value"] != idRoutineTpl {
		t.Fatalf("templates = %v", tpls)
	}
	// Only what the template defines is kept (trap 21): description and the
	// plans never; correlation_id, the window and the CI are not in the
	// template, so they are dropped and listed too.
	res := e.call("daytwo", "POST", "/api/sn_chg_rest/change/standard/"+idRoutineTpl, map[string]any{
		"short_description": "Roll out checkout 2.0", "description": "ignored", "cmdb_ci": idCheckout,
		"correlation_id": "daytwo:u-1", "start_date": "2026-05-02 22:00:00", "end_date": "2026-05-02 23:00:00",
		"risk": "3",
	}).must(t, 200)
	chg := res.result(t)
	v := func(k string) any { return chg[k].(map[string]any)["value"] }
	if v("type") != "standard" || v("short_description") != "Roll out checkout 2.0" || v("approval") != "approved" ||
		v("description") != "Roll out a new application version using the standard pipeline" || v("std_change_producer_version") == "" {
		t.Fatalf("standard change = type %v sd %v approval %v description %v", v("type"), v("short_description"), v("approval"), v("description"))
	}
	if v("risk") != "3" {
		t.Errorf("risk = %v, want the client's 3 (the template defines risk, so the client may set it)", v("risk"))
	}
	ign := chg["__meta"].(map[string]any)["ignoredFields"].([]any)
	if got := fmt.Sprint(ign); got != "[cmdb_ci correlation_id description end_date start_date]" {
		t.Fatalf("ignoredFields = %v", got)
	}
	stored := e.getChange(v("sys_id").(string))
	for _, k := range []string{"cmdb_ci", "correlation_id", "start_date", "end_date"} {
		if stored[k] != "" {
			t.Errorf("stored %s = %q, want it dropped", k, stored[k])
		}
	}
	// A follow-up PATCH sets them.
	e.patchChange(v("sys_id").(string), map[string]any{
		"correlation_id": "daytwo:u-1", "cmdb_ci": idCheckout,
		"start_date": "2026-05-02 22:00:00", "description": "ours",
	}).must(t, 200)
	stored = e.getChange(v("sys_id").(string))
	if stored["correlation_id"] != "daytwo:u-1" || stored["cmdb_ci"] != idCheckout || stored["start_date"] != "2026-05-02 22:00:00" || stored["description"] != "ours" {
		t.Errorf("after PATCH: %v", stored)
	}
	e.call("daytwo", "POST", "/api/sn_chg_rest/change/standard/"+strings.Repeat("a", 32), nil).must(t, 404)
}

// The Table API fallback for standard changes applies the template, and the
// template's values win over what the same insert sent (§6).
func TestStandardThroughTableAPIAppliesTemplate(t *testing.T) {
	e := newEnv(t, Options{})
	const version = "d2410000000000000000000000000001"
	chg := e.createChange(map[string]any{
		"type": "standard", "std_change_producer_version": version,
		"description": "ours", "short_description": "ours too", "correlation_id": "daytwo:u-2",
		"start_date": "2026-05-02 22:00:00",
	})
	stored := e.getChange(chg["sys_id"].(string))
	if stored["description"] != "Roll out a new application version using the standard pipeline" ||
		stored["short_description"] != "Routine app rollout" || stored["implementation_plan"] != "Deploy in batches with health checks" {
		t.Fatalf("template not applied: %v", stored)
	}
	if stored["correlation_id"] != "daytwo:u-2" || stored["start_date"] != "2026-05-02 22:00:00" || stored["std_change_producer_version"] != version {
		t.Fatalf("fields the template does not define were lost: %v", stored)
	}
	e.call("daytwo", "POST", "/api/now/table/change_request", map[string]any{
		"type":                        "standard",
		"std_change_producer_version": strings.Repeat("b", 32),
	}).must(t, http.StatusBadRequest)
}

func TestTypedChangeValues(t *testing.T) {
	e := newEnv(t, Options{TypedChangeValues: true})
	chg := e.call("daytwo", "POST", "/api/sn_chg_rest/change/normal", map[string]any{"short_description": "x"}).must(t, 200).result(t)
	if v := chg["state"].(map[string]any)["value"]; v != -5.0 {
		t.Errorf("typed state = %#v", v)
	}
	if v := chg["active"].(map[string]any)["value"]; v != true {
		t.Errorf("typed active = %#v", v)
	}
}

// SERVICENOW.md §6 and trap 22: a conflict check runs in the background.
// POST answers with the worker's sys_id; until the worker is Complete the
// GET describes the running check (job_status a code, no results yet);
// afterwards it holds the results, with status "Conflict" even when the
// list is empty.
func TestConflict(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, Options{Clock: clock.Now, ConflictDelay: 3 * time.Second})
	mk := func(ci, start, end string) string {
		return e.createChange(map[string]any{"cmdb_ci": ci, "start_date": start, "end_date": end})["sys_id"].(string)
	}
	a := mk(idCheckout, "2026-05-05 10:00:00", "2026-05-05 12:00:00")
	mk(idCheckout, "2026-05-05 11:00:00", "2026-05-05 13:00:00")
	free := mk(idCheckout, "2026-06-05 11:00:00", "2026-06-05 13:00:00")
	holiday := mk(idCheckout, "2026-12-24 10:00:00", "2026-12-24 11:00:00")
	saturday := mk(idPayments, "2026-05-09 10:00:00", "2026-05-09 11:00:00") // a Saturday
	tests := []struct {
		name, id, record, kind string
	}{
		{"overlapping change", a, "Conflict", "ci_already_scheduled"},
		{"free window", free, "No Conflict", ""},
		{"year-end blackout", holiday, "Conflict", "blackout"},
		{"weekly blackout", saturday, "Conflict", "blackout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var post map[string]any
			if err := json.Unmarshal(e.call("daytwo", "POST", "/api/sn_chg_rest/change/"+tc.id+"/conflict", nil).must(t, 200).body, &post); err != nil {
				t.Fatal(err)
			}
			worker, _ := post["result"].(string)
			if !sysIDRe.MatchString(worker) {
				t.Fatalf("POST result = %v, want the worker's sys_id", post)
			}
			workerState := func() any {
				return e.call("daytwo", "GET", "/api/sn_chg_rest/change/worker/"+worker, nil).must(t, 200).result(t)["state"].(map[string]any)["value"]
			}
			if got := workerState(); got != "2" {
				t.Fatalf("worker state right after POST = %v, want 2 (In-Progress)", got)
			}
			res := e.call("daytwo", "GET", "/api/sn_chg_rest/change/"+tc.id+"/conflict", nil).must(t, 200).result(t)
			if res["job_status"] != "1" || len(res["conflicts"].([]any)) != 0 || res["last_run"] != "" {
				t.Fatalf("running check = %v", res)
			}
			clock.Add(3 * time.Second)
			if got := workerState(); got != "3" {
				t.Fatalf("worker state after the delay = %v, want 3 (Complete)", got)
			}
			res = e.call("daytwo", "GET", "/api/sn_chg_rest/change/"+tc.id+"/conflict", nil).must(t, 200).result(t)
			if res["status"] != "Conflict" || res["job_status"] != "2" || res["last_run"] != fmtTime(clock.Now()) {
				t.Fatalf("completed check = %v", res)
			}
			list := res["conflicts"].([]any)
			if tc.kind == "" && len(list) != 0 || tc.kind != "" && (len(list) == 0 || list[0].(map[string]any)["type"].(map[string]any)["value"] != tc.kind) {
				t.Fatalf("conflicts = %v, want kind %q", list, tc.kind)
			}
			if got := e.getChange(tc.id)["conflict_status"]; got != tc.record {
				t.Fatalf("conflict_status = %v, want %s", got, tc.record)
			}
		})
	}
}
