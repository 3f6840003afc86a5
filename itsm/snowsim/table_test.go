package snowsim

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

var (
	sysIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)
	stampRe = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`)
)

func TestTableCreateReadUpdateDelete(t *testing.T) {
	e := newEnv(t, Options{})
	res := e.call("daytwo", "POST", "/api/now/table/change_request", map[string]any{
		"short_description": "Roll out v1.4.2", "assignment_group": idPlatformOps, "impact": 1, "urgency": "2",
		"work_notes": "created by test", "bogus_field": "x", "sys_created_by": "mallory",
	}).must(t, http.StatusCreated)
	rec := res.result(t)
	id := rec["sys_id"].(string)
	if loc := res.header.Get("Location"); !strings.HasSuffix(loc, "/api/now/table/change_request/"+id) {
		t.Errorf("Location = %q", loc)
	}
	checks := map[string]any{
		"number": "CHG0000001", "state": "-5", "type": "normal", "approval": "not requested", "impact": "1",
		"urgency": "2", "priority": "4", "active": "true", "sys_mod_count": "0", "sys_created_by": "daytwo",
		"work_notes": "", "parent": "", "cmdb_ci": "", "comments": "",
	}
	for k, want := range checks {
		if got := rec[k]; got != want {
			t.Errorf("%s = %#v, want %#v", k, got, want)
		}
	}
	if _, ok := rec["bogus_field"]; ok {
		t.Error("unknown field echoed")
	}
	if !sysIDRe.MatchString(id) || !stampRe.MatchString(rec["sys_created_on"].(string)) {
		t.Errorf("sys_id %q / sys_created_on %q", id, rec["sys_created_on"])
	}
	for k, v := range rec {
		switch v.(type) {
		case string:
		case map[string]any:
			if k != "assignment_group" && k != "opened_by" && k != "requested_by" {
				t.Errorf("%s is an object", k)
			}
		default:
			t.Errorf("%s is %T, want string", k, v)
		}
	}
	ag := rec["assignment_group"].(map[string]any)
	if ag["value"] != idPlatformOps || !strings.HasSuffix(ag["link"].(string), "/api/now/table/sys_user_group/"+idPlatformOps) {
		t.Errorf("assignment_group = %v", ag)
	}

	// Change priority is kept as written, not derived from impact × urgency
	// (a real instance keeps priority 2 written with impact 1).
	upd := e.call("daytwo", "PATCH", "/api/now/table/change_request/"+id, map[string]any{"urgency": "1", "priority": "2", "comments": "hi"}).
		must(t, http.StatusOK).result(t)
	if upd["priority"] != "2" || upd["sys_mod_count"] != "1" || upd["comments"] != "" {
		t.Errorf("after PATCH priority=%v mod=%v comments=%q", upd["priority"], upd["sys_mod_count"], upd["comments"])
	}
	put := e.call("daytwo", "PUT", "/api/now/table/change_request/"+id, map[string]any{"description": "d"}).must(t, 200).result(t)
	if put["short_description"] != "Roll out v1.4.2" || put["description"] != "d" {
		t.Errorf("PUT cleared omitted fields: %v", put)
	}
	journal := e.call("daytwo", "GET", "/api/now/table/sys_journal_field?sysparm_query=element_id="+id+"^ORDERBYsys_created_on", nil).must(t, 200).list(t)
	if len(journal) != 2 || journal[0]["element"] != "work_notes" || journal[0]["value"] != "created by test" ||
		journal[1]["element"] != "comments" || journal[0]["name"] != "change_request" {
		t.Errorf("journal = %v", journal)
	}
	disp := e.call("daytwo", "GET", "/api/now/table/change_request/"+id+"?sysparm_display_value=true", nil).must(t, 200).result(t)
	if wn := disp["work_notes"].(string); !strings.Contains(wn, "(Work notes)\ncreated by test") {
		t.Errorf("display work_notes = %q", wn)
	}

	e.call("daytwo", "DELETE", "/api/now/table/change_request/"+id, nil).must(t, http.StatusNoContent)
	e.call("daytwo", "GET", "/api/now/table/change_request/"+id, nil).must(t, http.StatusNotFound)
	audit := e.call("daytwo", "GET", "/api/now/table/sys_audit_delete?sysparm_query=tablename=change_request^documentkey="+id, nil).must(t, 200).list(t)
	if len(audit) != 1 || !stampRe.MatchString(audit[0]["sys_created_on"].(string)) {
		t.Errorf("sys_audit_delete = %v", audit)
	}
}

func TestTableErrors(t *testing.T) {
	e := newEnv(t, Options{})
	chg := e.createChange(nil)
	id := chg["sys_id"].(string)
	tests := map[string]struct {
		user, method, path string
		body               any
		hdr                []string
		status             int
		message            string
		detail             any
	}{
		"unknown table":    {"daytwo", "GET", "/api/now/table/u_nope", nil, nil, 400, "Invalid table u_nope", "Table u_nope does not exist"},
		"limit zero":       {"daytwo", "GET", "/api/now/table/change_request?sysparm_limit=0", nil, nil, 400, "Invalid value given for sysparm_limit", "sysparm_limit value must be a positive integer"},
		"negative offset":  {"daytwo", "GET", "/api/now/table/change_request?sysparm_offset=-1", nil, nil, 400, "Invalid value given for sysparm_offset", "sysparm_offset value must be a non-negative integer"},
		"missing record":   {"daytwo", "GET", "/api/now/table/change_request/" + strings.Repeat("0", 32), nil, nil, 404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"},
		"v1 empty list":    {"daytwo", "GET", "/api/now/v1/table/change_request?sysparm_query=number=NOPE", nil, nil, 404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"},
		"read-only write":  {"auditor", "PATCH", "/api/now/table/change_request/" + id, map[string]any{"description": "x"}, nil, 403, "Operation Failed", "ACL Exception Update Failed due to security constraints"},
		"read-only insert": {"auditor", "POST", "/api/now/table/change_request", map[string]any{"description": "x"}, nil, 403, "Operation Failed", "ACL Exception Insert Failed due to security constraints"},
		"read-only delete": {"auditor", "DELETE", "/api/now/table/change_request/" + id, nil, nil, 403, "Operation Failed", "ACL Exception Delete Failed due to security constraints"},
		"missing accept":   {"daytwo", "GET", "/api/now/table/change_request", nil, []string{"Accept", ""}, 400, "Missing Accept header", "The Accept header is required; use application/json"},
		"missing content":  {"daytwo", "POST", "/api/now/table/change_request", "{}", []string{"Content-Type", ""}, 400, "Missing Content-Type header", "The Content-Type header is required on requests with a body; use application/json"},
		"bad json":         {"daytwo", "POST", "/api/now/table/change_request", "{nope", nil, 400, "Exception while reading request", "The payload is not valid JSON."},
		"unknown api":      {"daytwo", "GET", "/api/now/nothing", nil, nil, 400, "Requested URI does not represent any resource", nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := e.call(tc.user, tc.method, tc.path, tc.body, tc.hdr...).must(t, tc.status)
			msg, detail := r.errorOf(t)
			if msg != tc.message || detail != tc.detail {
				t.Fatalf("error = %q / %#v", msg, detail)
			}
		})
	}
	// v2 and unversioned return [] for no match.
	for _, p := range []string{"/api/now/table/change_request?number=NOPE", "/api/now/v2/table/change_request?number=NOPE"} {
		if got := e.call("daytwo", "GET", p, nil).must(t, 200).list(t); len(got) != 0 {
			t.Errorf("%s = %v", p, got)
		}
	}
	// The read-only user may read.
	e.call("auditor", "GET", "/api/now/table/change_request/"+id, nil).must(t, 200)
}

func TestDisplayValueShapes(t *testing.T) {
	e := newEnv(t, Options{})
	id := e.createChange(map[string]any{"start_date": "2026-05-02T22:00:00Z"})["sys_id"].(string)
	base := "/api/now/table/change_request/" + id
	r := e.call("daytwo", "GET", base+"?sysparm_display_value=true", nil).must(t, 200).result(t)
	if r["state"] != "New" || r["start_date"] != "2026-05-02 22:00:00" || r["cmdb_ci"].(map[string]any)["display_value"] != "checkout-service" {
		t.Errorf("display true: state=%v start=%v ci=%v", r["state"], r["start_date"], r["cmdb_ci"])
	}
	r = e.call("daytwo", "GET", base+"?sysparm_display_value=true&sysparm_exclude_reference_link=true", nil).must(t, 200).result(t)
	if r["assignment_group"] != "Platform Ops" {
		t.Errorf("display true without links: %v", r["assignment_group"])
	}
	r = e.call("daytwo", "GET", base+"?sysparm_display_value=all", nil).must(t, 200).result(t)
	st := r["state"].(map[string]any)
	ag := r["assignment_group"].(map[string]any)
	if st["value"] != "-5" || st["display_value"] != "New" || ag["value"] != idPlatformOps || ag["display_value"] != "Platform Ops" || ag["link"] == nil {
		t.Errorf("display all: state=%v group=%v", st, ag)
	}
	r = e.call("daytwo", "GET", base+"?sysparm_fields=number,assignment_group.name,cmdb_ci,nope&sysparm_exclude_reference_link=true", nil).must(t, 200).result(t)
	if len(r) != 3 || r["assignment_group.name"] != "Platform Ops" || r["cmdb_ci"] != idCheckout {
		t.Errorf("fields = %v", r)
	}
}

func TestPaginationHeaders(t *testing.T) {
	e := newEnv(t, Options{})
	for range 5 {
		e.createChange(nil)
	}
	r := e.call("daytwo", "GET", "/api/now/table/change_request?sysparm_limit=2&sysparm_offset=2&sysparm_query=ORDERBYnumber", nil).must(t, 200)
	if r.header.Get("X-Total-Count") != "5" || len(r.list(t)) != 2 || r.list(t)[0]["number"] != "CHG0000003" {
		t.Fatalf("page = %s %s", r.header.Get("X-Total-Count"), r.body)
	}
	links := parseLinks(r.header.Get("Link"))
	for rel, off := range map[string]string{"first": "0", "prev": "0", "next": "4", "last": "4"} {
		if !strings.Contains(links[rel], "sysparm_offset="+off) || !strings.Contains(links[rel], "ORDERBYnumber") {
			t.Errorf("Link rel=%s = %q, want offset %s", rel, links[rel], off)
		}
	}
	first := e.call("daytwo", "GET", "/api/now/table/change_request?sysparm_limit=2", nil).must(t, 200).header.Get("Link")
	if strings.Contains(first, `rel="prev"`) || !strings.Contains(first, `rel="next"`) {
		t.Errorf("first page Link = %q", first)
	}
	if l := e.call("daytwo", "GET", "/api/now/table/change_request", nil).must(t, 200).header.Get("Link"); l != "" {
		t.Errorf("single page Link = %q", l)
	}
	if l := e.call("daytwo", "GET", "/api/now/table/change_request?sysparm_limit=1&sysparm_suppress_pagination_header=true", nil).must(t, 200).header.Get("Link"); l != "" {
		t.Errorf("suppressed Link = %q", l)
	}
	// name=value filters may use display values.
	if got := e.call("daytwo", "GET", "/api/now/table/change_request?state=new&assignment_group=Platform%20Ops", nil).must(t, 200).header.Get("X-Total-Count"); got != "5" {
		t.Errorf("name=value filter count = %s", got)
	}
}

// parseLinks maps rel to URL.
func parseLinks(h string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(h, ",") {
		u, rel, ok := strings.Cut(part, ">;rel=")
		if ok {
			out[strings.Trim(rel, `"`)] = strings.TrimPrefix(u, "<")
		}
	}
	return out
}

// SERVICENOW.md §4.1 and trap 12: a real instance keeps a change's priority
// as written (the servicenow.itsm collection asserts priority 2 written with
// impact 1), while an incident's priority is derived from impact × urgency.
func TestChangePriorityKeptIncidentPriorityDerived(t *testing.T) {
	e := newEnv(t, Options{})
	chg := e.call("daytwo", "POST", "/api/now/table/change_request", map[string]any{
		"short_description": "p", "impact": "1", "urgency": "1", "priority": "2",
	}).must(t, http.StatusCreated).result(t)
	if chg["priority"] != "2" {
		t.Errorf("change created with priority 2, impact 1, urgency 1: priority %v", chg["priority"])
	}
	chg = e.call("daytwo", "PATCH", "/api/now/table/change_request/"+chg["sys_id"].(string), map[string]any{"impact": "3", "urgency": "3"}).
		must(t, http.StatusOK).result(t)
	if chg["priority"] != "2" {
		t.Errorf("change after impact/urgency 3: priority %v, want 2 as written", chg["priority"])
	}
	api := e.call("daytwo", "POST", "/api/sn_chg_rest/change/normal", map[string]any{"short_description": "q", "impact": "1", "urgency": "1"}).
		must(t, http.StatusOK)
	if got := string(api.body); !strings.Contains(got, `"priority":{"value":"4","display_value":"4 - Low"}`) {
		t.Errorf("Change API create with impact 1, urgency 1: want the default priority 4 kept: %s", got)
	}
	inc := e.call("daytwo", "POST", "/api/now/table/incident", map[string]any{"short_description": "i", "impact": "1", "urgency": "1", "priority": "4"}).
		must(t, http.StatusCreated).result(t)
	if inc["priority"] != "1" {
		t.Errorf("incident impact 1 × urgency 1: priority %v, want 1", inc["priority"])
	}
	inc = e.call("daytwo", "PATCH", "/api/now/table/incident/"+inc["sys_id"].(string), map[string]any{"urgency": "3"}).
		must(t, http.StatusOK).result(t)
	if inc["priority"] != "3" {
		t.Errorf("incident impact 1 × urgency 3: priority %v, want 3", inc["priority"])
	}
}
