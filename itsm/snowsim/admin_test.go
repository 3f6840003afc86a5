package snowsim

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAdmin(t *testing.T) {
	e := newEnv(t, Options{})
	chg := e.createChange(nil)
	id, number := chg["sys_id"].(string), chg["number"].(string)
	e.patchChange(id, map[string]any{"state": "-4"}).must(t, 200)

	st := e.call("", "GET", "/__admin/state?table=change_request", nil).must(t, 200).json(t)
	if recs := st["records"].([]any); len(recs) != 1 {
		t.Fatalf("state dump = %v", st)
	}
	e.call("", "GET", "/__admin/state", nil).must(t, 200)
	if strings.Contains(string(e.call("", "GET", "/__admin/state", nil).body), `"user_password"`) {
		t.Fatal("state dump leaks passwords")
	}
	e.call("", "POST", "/__admin/approve", map[string]string{"number": number, "user": "cab.manager"}).must(t, 400)
	e.call("", "POST", "/__admin/approve", map[string]string{"number": "CHG404", "user": "ops.lead"}).must(t, 404)
	res := e.call("", "POST", "/__admin/approve", map[string]string{"number": number, "user": "ops.lead", "comment": "ok"}).must(t, 200).json(t)
	if res["change"].(map[string]any)["state"] != "-3" {
		t.Fatalf("approve = %v", res)
	}
	res = e.call("", "POST", "/__admin/reject", map[string]string{"number": number, "user": "cab.manager", "comment": "no"}).must(t, 200).json(t)
	if c := res["change"].(map[string]any); c["state"] != "-5" || c["approval"] != "rejected" {
		t.Fatalf("reject = %v", res)
	}

	for _, body := range []any{"429=1/2,latency=1ms", map[string]string{"spec": "503=10%"}, map[string]any{"rate_limit": map[string]int{"every": 3}}} {
		e.call("", "PUT", "/__admin/faults", body).must(t, 200)
	}
	if f := e.sim.Faults(); f.RateLimit.Every != 3 {
		t.Fatalf("faults JSON = %+v", f)
	}
	e.call("", "POST", "/__admin/faults", "teapot=1%").must(t, 400)
	e.call("", "POST", "/__admin/faults", "off").must(t, 200)

	log := e.call("", "GET", "/__admin/requests?limit=5", nil).must(t, 200).json(t)["requests"].([]any)
	if len(log) != 5 {
		t.Fatalf("request log = %v", log)
	}
	var sawUser bool
	for _, r := range e.sim.Requests() {
		sawUser = sawUser || r.User == "daytwo" && r.Method == "PATCH" && r.Status == 200
	}
	if !sawUser {
		t.Fatal("request log lacks the PATCH by daytwo")
	}

	e.call("", "POST", "/__admin/reset", nil).must(t, 200)
	if n := e.call("daytwo", "GET", "/api/now/table/change_request", nil).must(t, 200).header.Get("X-Total-Count"); n != "0" {
		t.Fatalf("after reset %s changes", n)
	}
	if users := e.call("", "GET", "/__admin/users", nil).must(t, 200).json(t)["users"].([]any); len(users) != 5 {
		t.Fatalf("users = %v", users)
	}

	// Not from loopback: refused.
	req := httptest.NewRequest("GET", "/__admin/state", nil)
	req.RemoteAddr = "192.0.2.7:5555"
	rec := httptest.NewRecorder()
	e.sim.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("non-loopback admin = %d", rec.Code)
	}
}

func TestSeedUsers(t *testing.T) {
	sim, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	byName := map[string]SeedUser{}
	for _, u := range sim.SeedUsers() {
		byName[u.UserName] = u
	}
	tests := map[string]struct {
		roles, groups string
		name          string
	}{
		"daytwo":      {"itil,change_manager", "Platform Ops", "daytwo Integration"},
		"cab.manager": {"itil,change_manager,approver_user", "CAB Approval", "CAB Manager"},
		"ops.lead":    {"itil,approver_user", "CAB Approval,Platform Ops", "Ops Lead"},
		"auditor":     {"sn_change_read", "", "Read-only Auditor"},
	}
	for name, tc := range tests {
		u := byName[name]
		if u.Password != name || strings.Join(u.Roles, ",") != tc.roles || strings.Join(u.Groups, ",") != tc.groups || u.Name != tc.name {
			t.Errorf("%s = %+v", name, u)
		}
	}
}
