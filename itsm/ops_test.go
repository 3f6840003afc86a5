package itsm

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

func TestApproveReject(t *testing.T) {
	ctx := context.Background()
	approvalsPath := "/api/sn_chg_rest/change/" + changeID + "/approvals"

	env := newEnv(t)
	env.f.handle("PATCH "+approvalsPath, func(w http.ResponseWriter, r *http.Request) {
		var b map[string]string
		_ = json.NewDecoder(r.Body).Decode(&b)
		if b["state"] != "approved" || b["comments"] != "lgtm" {
			t.Errorf("body %v", b)
		}
		writeJSON(w, 200, strings.Replace(fixture(t, "chgapi_create_normal.json"), `"value": -5.0, "display_value": "New"`,
			`"value": -2.0, "display_value": "Scheduled"`, 1))
	})
	ch, err := env.c.Approve(ctx, changeID, "lgtm")
	if err != nil || ch.State != StateScheduled {
		t.Fatalf("approve: %+v %v", ch, err)
	}
	if _, err := env.c.Reject(ctx, changeID, " "); err == nil {
		t.Error("reject without comment accepted")
	}
	// The user may not approve: 400 from an installed API, no fallback.
	env.f.handle("PATCH "+approvalsPath, respond(400, `{"error":{"message":"User is not an approver","detail":null},"status":"failure"}`))
	if _, err := env.c.Reject(ctx, changeID, "no"); !errors.Is(err, ErrBadRequest) {
		t.Errorf("not an approver: %v", err)
	}

	// Plugin absent: the Table API PATCHes the user's requested row.
	env = newEnv(t)
	env.f.handle("PATCH "+approvalsPath, respond(400, fixture(t, "err_400_uri.json")))
	env.f.handle("GET /api/now/table/sys_user", respond(200, resultJSON([]map[string]string{
		{"sys_id": sid(77), "user_name": testUser, "name": "Svc Daytwo"},
	})))
	env.f.handle("GET /api/now/table/sysapproval_approver", func(w http.ResponseWriter, r *http.Request) {
		want := "sysapproval=" + changeID + "^approver=" + sid(77) + "^state=requested"
		if q := r.URL.Query().Get("sysparm_query"); q != want {
			t.Errorf("query %q, want %q", q, want)
		}
		writeJSON(w, 200, resultJSON([]map[string]string{
			{"sys_id": sid(500), "sysapproval": changeID, "approver": sid(77), "state": "requested"},
		}))
	})
	env.f.handle("PATCH /api/now/table/sysapproval_approver/"+sid(500), func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if string(b) != `{"comments":"too risky","state":"rejected"}` {
			t.Errorf("body %s", b)
		}
		writeJSON(w, 200, resultJSON(map[string]string{"sys_id": sid(500), "state": "rejected"}))
	})
	env.f.handle("GET "+changePath, respond(200, fixture(t, "table_change.json")))
	if _, err := env.c.Reject(ctx, changeID, "too risky"); err != nil {
		t.Fatalf("table fallback: %v", err)
	}
	if env.f.count("PATCH", "/api/now/table/sysapproval_approver/"+sid(500)) != 1 {
		t.Error("approval row not patched")
	}
}

func TestCreateIncident(t *testing.T) {
	env := newEnv(t)
	env.f.handle("GET "+changePath, respond(200, fixture(t, "table_change.json")))
	env.f.handle("GET /api/now/table/sys_user", respond(200, resultJSON([]map[string]string{
		{"sys_id": sid(77), "user_name": testUser},
	})))
	env.f.handle("POST /api/now/table/incident", func(w http.ResponseWriter, r *http.Request) {
		var b map[string]string
		_ = json.NewDecoder(r.Body).Decode(&b)
		if b["caused_by"] != changeID || !strings.Contains(b["description"], "CHG0030042") ||
			b["caller_id"] != sid(77) || b["impact"] != "1" || b["urgency"] != "2" || b["cmdb_ci"] != sid(9) {
			t.Errorf("incident body %v", b)
		}
		b["sys_id"], b["number"], b["state"], b["priority"] = sid(600), "INC0010001", "1", "2"
		writeJSON(w, 201, resultJSON(b))
	})
	inc, err := env.c.CreateIncident(context.Background(), IncidentInput{
		ShortDescription: "rollout failed",
		Description:      "health check failed on prd-2", Caller: testUser, CmdbCI: sid(9), Impact: "high", Urgency: "medium",
		CausedBy: changeID,
	})
	if err != nil || inc.Number != "INC0010001" || inc.Priority != 2 || inc.CausedBy != changeID {
		t.Fatalf("incident %+v %v", inc, err)
	}
}

func TestAttachFile(t *testing.T) {
	env := newEnv(t)
	env.f.handle("POST /api/now/attachment/file", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("table_name") != "change_request" || q.Get("table_sys_id") != changeID || q.Get("file_name") != "rollout.log" {
			t.Errorf("query %v", q)
		}
		if r.Header.Get("Content-Type") != "text/plain" {
			t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
		}
		b, _ := io.ReadAll(r.Body)
		if string(b) != "line 1\nline 2\n" {
			t.Errorf("body %q", b)
		}
		writeJSON(w, 201, resultJSON(map[string]string{
			"sys_id": sid(700), "file_name": "rollout.log",
			"table_name": "change_request", "table_sys_id": changeID, "size_bytes": "14", "content_type": "text/plain",
		}))
	})
	a, err := env.c.AttachFile(context.Background(), "change_request", changeID, "rollout.log", "", []byte("line 1\nline 2\n"))
	if err != nil || a.SizeBytes != 14 || a.SysID != sid(700) {
		t.Fatalf("attachment %+v %v", a, err)
	}
	env.f.handle("GET /api/now/attachment", respond(200, resultJSON([]map[string]string{
		{"sys_id": sid(700), "file_name": "rollout.log", "table_sys_id": changeID},
	})))
	list, err := env.c.ListAttachments(context.Background(), "change_request", changeID)
	if err != nil || len(list) != 1 {
		t.Errorf("list %v %v", list, err)
	}
}

// Trap 5: journal entries come from sys_journal_field.
func TestListJournal(t *testing.T) {
	env := newEnv(t)
	sim := &tableSim{rows: []map[string]string{
		{"sys_id": sid(3), "element_id": changeID, "element": "work_notes", "value": "second", "sys_created_on": s2},
		{"sys_id": sid(2), "element_id": changeID, "element": "work_notes", "value": "first", "sys_created_on": s1},
		{"sys_id": sid(1), "element_id": sid(99), "element": "work_notes", "value": "other", "sys_created_on": s0},
	}}
	env.f.handle("GET /api/now/table/sys_journal_field", sim.handler(t))
	got, err := env.c.ListJournal(context.Background(), changeID)
	if err != nil || len(got) != 2 || got[0].Value != "first" || got[1].Value != "second" {
		t.Fatalf("journal %+v %v", got, err)
	}
}

// Trap 22: the check runs in the background. The client polls the worker
// the POST named until it is Complete, then reads the results; a GET of
// the results while the worker runs (job_status a code, the previous
// run's last_run) is never taken for the outcome.
func TestCheckConflicts(t *testing.T) {
	env := newEnv(t)
	path := "/api/sn_chg_rest/change/" + changeID + "/conflict"
	worker := sid(800)
	env.f.handle("POST "+path, respond(200, `{"result":"`+worker+`"}`))
	env.f.handle("GET /api/sn_chg_rest/change/worker/"+worker, sequence(
		respond(200, `{"result":{"state":{"value":"1","display_value":"Waiting"}}}`),
		respond(200, `{"result":{"state":{"value":"2","display_value":"In-Progress"}}}`),
		respond(200, `{"result":{"state":{"value":3.0,"display_value":"Complete"}}}`)))
	now := FormatTime(time.Now().UTC().Add(time.Second))
	env.f.handle("GET "+path, respond(200, `{"result":{"status":"Conflict","job_status":"2",
			"record_count":1.0,"last_run":"`+now+`",
			"conflicts":[{"change":{"value":"`+changeID+`","display_value":"CHG0030042"},
			"type":{"value":"blackout","display_value":"Blackout"},
			"ci":{"value":"`+sid(9)+`","display_value":"checkout-service"}}]}}`))
	res, err := env.c.CheckConflicts(context.Background(), changeID)
	if err != nil {
		t.Fatal(err)
	}
	if res.State != ConflictFound || len(res.Conflicts) != 1 || res.Conflicts[0].Type != "blackout" ||
		res.Conflicts[0].CIName != "checkout-service" || res.RecordCount != 1 || res.Check.Worker != worker {
		t.Errorf("result %+v", res)
	}
	if n := env.f.count("GET", path); n != 1 {
		t.Errorf("results read %d times; want once, after the worker completed", n)
	}
	if got := env.sleeps.all(); len(got) != 2 || got[0] != conflictPollMin || got[1] != 2*conflictPollMin {
		t.Errorf("polls slept %v", got)
	}
}

// ServiceNow says "Conflict" even for an empty list: the list decides.
func TestConflictStatusWithEmptyListIsClear(t *testing.T) {
	res, err := conflictFromRecord(Record{
		"status": {Value: "Conflict"}, "job_status": {Value: "2"}, "conflicts": {Value: "[]"},
		"last_run": {Value: "2026-05-01 10:00:00"},
	})
	if err != nil || res.State != ConflictNone || res.Status != "Conflict" {
		t.Fatalf("res %+v, err %v", res, err)
	}
}

// A worker still running when the wait is up comes back as running, with
// no error and without reading results; results older than the check's
// start are not the check's own.
func TestPollConflictCheckRunningAndStale(t *testing.T) {
	env := newEnv(t)
	path := "/api/sn_chg_rest/change/" + changeID + "/conflict"
	worker := sid(801)
	started := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	env.f.handle("GET /api/sn_chg_rest/change/worker/"+worker, respond(200, `{"result":{"state":{"value":"2","display_value":"In-Progress"}}}`))
	env.f.handle("GET "+path, respond(200, `{"result":{"status":"Conflict","job_status":"2","last_run":"2026-05-01 09:00:00","conflicts":[]}}`))
	res, err := env.c.PollConflictCheck(context.Background(), changeID, ConflictCheck{Worker: worker, Started: started}, 0)
	if err != nil || res.State != ConflictRunning || env.f.count("GET", path) != 0 {
		t.Fatalf("running: %+v %v", res, err)
	}
	env.f.handle("GET /api/sn_chg_rest/change/worker/"+worker, respond(200, `{"result":{"state":{"value":"3","display_value":"Complete"}}}`))
	res, err = env.c.PollConflictCheck(context.Background(), changeID, ConflictCheck{Worker: worker, Started: started}, 0)
	if err != nil || res.State != ConflictRunning {
		t.Fatalf("stale results (last_run before the start) taken: %+v %v", res, err)
	}
	env.f.handle("GET /api/sn_chg_rest/change/worker/"+worker, respond(404, `{"error":{"message":"No Record found","detail":null},"status":"failure"}`))
	res, err = env.c.PollConflictCheck(context.Background(), changeID, ConflictCheck{Worker: worker, Started: started}, 0)
	if err != nil || res.State != ConflictFailed {
		t.Fatalf("vanished worker: %+v %v", res, err)
	}
}

// Every stats/hook consumer sees each attempt.
func TestRequestHook(t *testing.T) {
	f := newFake(t)
	f.handle("GET "+changePath, respond(200, fixture(t, "table_change.json")))
	var infos []RequestInfo
	c, err := New(Config{Instance: f.srv.URL, Auth: AuthConfig{Username: testUser, Password: testPassword}},
		WithRequestHook(func(i RequestInfo) { infos = append(infos, i) }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetChange(context.Background(), changeID); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Status != 200 || infos[0].Path != changePath || infos[0].Method != "GET" {
		t.Errorf("hook saw %+v", infos)
	}
}

// conflict_status arrives as a string (Table API) or {value, display_value}
// (Change API); the adapter decodes it into ops' typed value, so ops never
// reads raw ServiceNow JSON.
func TestChangeConflictStatusDecoded(t *testing.T) {
	for body, want := range map[string]ops.ConflictStatus{
		`{"result":[{"sys_id":"` + changeID + `","conflict_status":"Conflict"}]}`:                                            ops.ConflictStatusConflict,
		`{"result":[{"sys_id":"` + changeID + `","conflict_status":{"value":"No Conflict","display_value":"No Conflict"}}]}`: ops.ConflictStatusNone,
		`{"result":[{"sys_id":"` + changeID + `"}]}`:                                                                         "",
	} {
		recs, raws, err := DecodeRecords([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		ch := ChangeFromRecord(recs[0], raws[0])
		if got := toOpsChange(&ch).ConflictStatus; got != want {
			t.Errorf("%s: ConflictStatus %q, want %q", body, got, want)
		}
	}
}
