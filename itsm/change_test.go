package itsm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// changeSim is a one-change state machine behind the Table API, strict
// (403 business-rule abort on an illegal move) or lenient (200, unchanged).
type changeSim struct {
	mu      sync.Mutex
	t       *testing.T
	rec     map[string]string
	lenient bool
	patches []map[string]string
	// onPatch may move the record behind the client's back.
	onPatch func(body map[string]string)
}

var legal = map[string][]string{ // base normal model (§4.3), as codes
	"-5": {"-4", "4"}, "-4": {"-3", "-2", "-5", "4"}, "-3": {"-2", "-5", "4"},
	"-2": {"-1", "4"}, "-1": {"0", "4"}, "0": {"3"},
}

func (s *changeSim) install(f *fake) {
	f.handle("GET "+changePath, func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		writeJSON(w, 200, resultJSON(s.rec))
	})
	f.handle("PATCH "+changePath, func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			s.t.Errorf("PATCH body: %v", err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.patches = append(s.patches, body)
		if s.onPatch != nil {
			s.onPatch(body)
		}
		if _, ok := body["state"]; ok && s.lenient {
			// ANS-278: 200 with the record unchanged.
			writeJSON(w, 200, resultJSON(s.rec))
			return
		}
		if to, ok := body["state"]; ok {
			allowed := false
			for _, n := range legal[s.rec["state"]] {
				allowed = allowed || n == to
			}
			if !allowed {
				writeJSON(w, 403, fixture(s.t, "err_403_business_rule.json"))
				return
			}
			s.rec["state"] = to
		}
		for k, v := range body {
			if k != "state" && k != "work_notes" {
				s.rec[k] = v
			}
		}
		writeJSON(w, 200, resultJSON(s.rec))
	})
}

func (s *changeSim) states() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, p := range s.patches {
		out = append(out, p["state"])
	}
	return out
}

// Trap 13 and pain points 1, 2, 12: moves go step by step, never jump, and
// "already there" is success without a write.
func TestMoveState(t *testing.T) {
	tests := map[string]struct {
		from    ChangeState
		typ     string
		to      ChangeState
		lenient bool
		patches string
		err     error
	}{
		"scheduled to closed via implement and review": {from: StateScheduled, to: StateClosed, patches: "[-1 0 3]"},
		"implement to review":                          {from: StateImplement, to: StateReview, patches: "[0]"},
		"already in target":                            {from: StateReview, to: StateReview, patches: "[]"},
		"standard new to implement":                    {from: StateNew, typ: "standard", to: StateImplement, patches: "[-2 -1]"},
		"backwards refused":                            {from: StateImplement, to: StateScheduled, patches: "[]", err: ErrIllegalTransition},
		"awaiting approval":                            {from: StateAssess, to: StateImplement, patches: "[]", err: ErrIllegalTransition},
		"review cannot be canceled":                    {from: StateReview, to: StateCanceled, patches: "[]", err: ErrIllegalTransition},
		"closed is final":                              {from: StateClosed, to: StateImplement, patches: "[]", err: ErrIllegalTransition},
		"lenient instance ignores the move":            {from: StateScheduled, to: StateImplement, lenient: true, patches: "[-1]", err: ErrStateNotApplied},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			env := newEnv(t)
			typ := tc.typ
			if typ == "" {
				typ = "normal"
			}
			sim := &changeSim{t: t, rec: tableChange(changeID, "CHG0030042", tc.from, typ, nil), lenient: tc.lenient}
			if typ == "standard" {
				legal["-5"] = append(legal["-5"], "-2")
				defer func() { legal["-5"] = legal["-5"][:len(legal["-5"])-1] }()
			}
			sim.install(env.f)
			ch, err := env.c.MoveState(context.Background(), changeID, tc.to)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if got := fmt.Sprint(sim.states()); got != tc.patches {
				t.Errorf("PATCHed states %s, want %s", got, tc.patches)
			}
			if err == nil && ch.State != tc.to {
				t.Errorf("final state %v", ch.State)
			}
		})
	}
}

// Octopus#9545: a workflow moved the change to Review before we did; the
// refused PATCH is re-read and counts as success.
func TestMoveStateRaceWithWorkflow(t *testing.T) {
	env := newEnv(t)
	sim := &changeSim{t: t, rec: tableChange(changeID, "CHG0030042", StateImplement, "normal", nil)}
	sim.onPatch = func(map[string]string) {
		sim.rec["state"] = StateReview.Code()
		sim.onPatch = nil
	}
	sim.install(env.f)
	// The workflow already moved it when our PATCH arrives: -1→0 is now
	// "0→0", refused as illegal by the strict model.
	ch, err := env.c.MoveState(context.Background(), changeID, StateReview)
	if err != nil || ch.State != StateReview {
		t.Fatalf("err = %v, state %v", err, ch)
	}
}

func TestCloseChange(t *testing.T) {
	env := newEnv(t)
	sim := &changeSim{t: t, rec: tableChange(changeID, "CHG0030042", StateImplement, "normal", nil)}
	sim.install(env.f)
	ch, err := env.c.CloseChange(context.Background(), changeID, CloseSuccessfulIssues, "rolled out with one retry")
	if err != nil {
		t.Fatal(err)
	}
	if ch.State != StateClosed || ch.CloseCode != CloseSuccessfulIssues || ch.CloseNotes != "rolled out with one retry" {
		t.Errorf("closed change %+v", ch)
	}
	last := sim.patches[len(sim.patches)-1]
	if last["state"] != "3" || last["close_code"] != CloseSuccessfulIssues || last["close_notes"] == "" {
		t.Errorf("closing PATCH %v", last)
	}
	if fmt.Sprint(sim.states()) != "[0 3]" {
		t.Errorf("states %v", sim.states())
	}
	// Closing again writes nothing.
	n := len(sim.patches)
	if _, err := env.c.CloseChange(context.Background(), changeID, CloseSuccessful, "again"); err != nil {
		t.Fatal(err)
	}
	if len(sim.patches) != n {
		t.Error("closed change patched again")
	}
	if _, err := env.c.CloseChange(context.Background(), changeID, "great", "x"); err == nil {
		t.Error("bad close code accepted")
	}
}

func TestRequestApproval(t *testing.T) {
	for typ, want := range map[string]string{"normal": "-4", "emergency": "-3", "standard": "-2"} {
		t.Run(typ, func(t *testing.T) {
			env := newEnv(t)
			sim := &changeSim{t: t, rec: tableChange(changeID, "CHG0030042", StateNew, typ, nil)}
			sim.install(env.f)
			saved := legal["-5"]
			legal["-5"] = []string{"-4", "-3", "-2", "4"}
			defer func() { legal["-5"] = saved }()
			if _, err := env.c.RequestApproval(context.Background(), changeID); err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(sim.states()); got != "["+want+"]" {
				t.Errorf("states %s, want [%s]", got, want)
			}
			// Past New: no write.
			if _, err := env.c.RequestApproval(context.Background(), changeID); err != nil || len(sim.patches) != 1 {
				t.Errorf("second request: %v, %d patches", err, len(sim.patches))
			}
		})
	}
}

// Change API present: POST /change/normal, 200 with a one-element array of
// typed values. Absent: one probe, then the Table API from then on.
func TestCreateChangeFallback(t *testing.T) {
	ctx := context.Background()
	in := ChangeInput{
		Type: "normal", ShortDescription: "Roll out v1.4.2", AssignmentGroup: "287ebd7da9fe198100f92cc8d1d2154e",
		Risk: "moderate", Impact: "low", CorrelationID: "daytwo:upd-1",
	}

	env := newEnv(t)
	env.f.handle("POST /api/sn_chg_rest/change/normal", respond(200, fixture(t, "chgapi_create_normal.json")))
	ch, err := env.c.CreateChange(ctx, in)
	if err != nil || ch.Number != "CHG0030042" || ch.State != StateNew {
		t.Fatalf("change api create: %+v %v", ch, err)
	}
	var body map[string]string
	_ = json.Unmarshal([]byte(env.f.Calls()[0].Body), &body)
	if body["risk"] != "3" || body["impact"] != "3" || body["correlation_id"] != "daytwo:upd-1" || body["type"] != "" {
		t.Errorf("body %v", body)
	}

	for name, absent := range map[string]http.HandlerFunc{
		"404": respond(404, `{"error":{"message":"Not found","detail":null},"status":"failure"}`),
		"400": respond(400, fixture(t, "err_400_uri.json")),
	} {
		t.Run("plugin absent "+name, func(t *testing.T) {
			env := newEnv(t)
			env.f.handle("POST /api/sn_chg_rest/change/emergency", absent)
			env.f.handle("POST /api/now/table/change_request", func(w http.ResponseWriter, r *http.Request) {
				var b map[string]string
				_ = json.NewDecoder(r.Body).Decode(&b)
				if b["type"] != "emergency" {
					t.Errorf("table body %v", b)
				}
				writeJSON(w, 201, resultJSON(tableChange(changeID, "CHG0030043", StateNew, "emergency", b)))
			})
			in := in
			in.Type = "emergency"
			for range 2 {
				ch, err := env.c.CreateChange(ctx, in)
				if err != nil || ch.Number != "CHG0030043" || ch.Type != "emergency" {
					t.Fatalf("fallback create: %+v %v", ch, err)
				}
			}
			if env.f.count("POST", "/api/sn_chg_rest/change/emergency") != 1 {
				t.Error("Change API probed more than once")
			}
			if env.f.count("POST", "/api/now/table/change_request") != 2 {
				t.Error("Table API not used")
			}
		})
	}

	// A real validation error from an installed Change API is not a fallback.
	env = newEnv(t)
	env.f.handle("POST /api/sn_chg_rest/change/normal", respond(400, `{"error":{"message":"Invalid value for risk","detail":null},"status":"failure"}`))
	if _, err := env.c.CreateChange(ctx, in); !errors.Is(err, ErrBadRequest) {
		t.Errorf("validation error: %v", err)
	}
}

func TestCreateStandardChange(t *testing.T) {
	ctx := context.Background()
	in := ChangeInput{Type: "standard", Template: "Restart app server", ShortDescription: "x", CorrelationID: "daytwo:upd-2"}
	const tplID = "e55d0bfec343101035ae3f52c1d3ae49"

	env := newEnv(t)
	env.f.handle("GET /api/sn_chg_rest/change/standard/template", func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query().Get("sysparm_query"); q != "active=true^name=Restart app server" {
			t.Errorf("template query %q", q)
		}
		writeJSON(w, 200, `{"result":[{"sys_id":{"value":"`+tplID+`","display_value":"`+tplID+`"},"name":{"value":"Restart app server","display_value":"Restart app server"}}]}`)
	})
	env.f.handle("POST /api/sn_chg_rest/change/standard/"+tplID, respond(200,
		strings.Replace(fixture(t, "chgapi_create_normal.json"), `"value": "normal"`, `"value": "standard"`, 1)))
	storedChange(t, env.f, tableChange(changeID, "CHG0030042", StateNew, "standard", nil))
	ch, err := env.c.CreateChange(ctx, in)
	if err != nil || ch.Type != "standard" || ch.CorrelationID != "daytwo:upd-2" || ch.ShortDescription != "x [daytwo:upd-2]" {
		t.Fatalf("standard create: %+v %v", ch, err)
	}
	// The template lookup is cached.
	if _, err := env.c.CreateChange(ctx, in); err != nil {
		t.Fatal(err)
	}
	if env.f.count("GET", "/api/sn_chg_rest/change/standard/template") != 1 {
		t.Error("template looked up twice")
	}

	env = newEnv(t)
	env.f.handle("GET /api/sn_chg_rest/change/standard/template", respond(400, fixture(t, "err_400_uri.json")))
	env.f.handle("GET /api/now/table/std_change_producer_version", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query().Get("sysparm_query")
		if strings.HasPrefix(q, "name=") {
			writeJSON(w, 200, `{"result":[]}`) // versions are named "<template> - 2"
			return
		}
		writeJSON(w, 200, `{"result":[{"sys_id":"`+sid(9)+`","name":"Restart app server - 2","std_change_producer.name":"Restart app server"}]}`)
	})
	env.f.handle("POST /api/now/table/change_request", func(w http.ResponseWriter, r *http.Request) {
		var b map[string]string
		_ = json.NewDecoder(r.Body).Decode(&b)
		if b["type"] != "standard" || b["std_change_producer_version"] != sid(9) {
			t.Errorf("table body %v", b)
		}
		writeJSON(w, 201, resultJSON(tableChange(changeID, "CHG0030044", StateNew, "standard", nil)))
	})
	storedChange(t, env.f, tableChange(changeID, "CHG0030044", StateNew, "standard", nil))
	if ch, err := env.c.CreateChange(ctx, in); err != nil || ch.Number != "CHG0030044" || ch.CorrelationID != "daytwo:upd-2" {
		t.Fatalf("standard via table: %+v %v", ch, err)
	}
}

// storedChange serves one change record by sys_id that PATCHes update, so
// that a follow-up write can be read back.
func storedChange(t *testing.T, f *fake, rec map[string]string) {
	t.Helper()
	var mu sync.Mutex
	path := "/api/now/table/change_request/" + rec["sys_id"]
	f.handle("PATCH "+path, func(w http.ResponseWriter, r *http.Request) {
		var b map[string]string
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			t.Errorf("PATCH body: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		maps.Copy(rec, b)
		writeJSON(w, 200, resultJSON(rec))
	})
	f.handle("GET "+path, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		writeJSON(w, 200, resultJSON(rec))
	})
}

// Trap 15: the v1 Table API answers 404 for an empty list; a lookup treats it
// as "no rows", not as an error about the table.
func TestV1EmptyList404(t *testing.T) {
	env := newEnv(t)
	env.f.handle("GET /api/now/table/change_request", respond(404, fixture(t, "err_404.json")))
	_, err := env.c.FindChangeByCorrelationID(context.Background(), "daytwo:none")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	var e *Error
	if errors.As(err, &e) {
		t.Errorf("empty list surfaced as an HTTP error: %v", err)
	}
	st, err := env.c.SyncChanges(context.Background(), SyncRequest{}, func([]Change, Watermark) error { return nil })
	if err != nil || st.Rows != 0 {
		t.Errorf("sync on 404: %+v %v", st, err)
	}
}

// Trap 6: an instance that drops an unusable query term returns unrelated
// rows; lookups verify the match client-side.
func TestIgnoredQueryTermsAreVerified(t *testing.T) {
	env := newEnv(t)
	unrelated := resultJSON([]map[string]string{
		tableChange(sid(1), "CHG0000001", StateNew, "normal", map[string]string{"correlation_id": "other:1"}),
		{"sys_id": sid(2), "name": "Network", "user_name": "bob", "email": "bob@x"},
	})
	for _, p := range []string{"change_request", "sys_user_group", "cmdb_ci", "sys_user"} {
		env.f.handle("GET /api/now/table/"+p, respond(200, unrelated))
	}
	ctx := context.Background()
	if _, err := env.c.FindChangeByCorrelationID(ctx, "daytwo:upd-9"); !errors.Is(err, ErrNotFound) {
		t.Errorf("correlation lookup: %v", err)
	}
	if _, err := env.c.LookupGroup(ctx, "Platform Ops"); !errors.Is(err, ErrNotFound) {
		t.Errorf("group lookup: %v", err)
	}
	if _, err := env.c.GetChangeByNumber(ctx, "CHG0030042"); !errors.Is(err, ErrNotFound) {
		t.Errorf("number lookup: %v", err)
	}
	if g, err := env.c.LookupGroup(ctx, "network"); err != nil || g.SysID != sid(2) {
		t.Errorf("matching group: %v %v", g, err)
	}
	if u, err := env.c.LookupUser(ctx, "bob"); err != nil || u.SysID != sid(2) {
		t.Errorf("user: %v %v", u, err)
	}
	// A '^' in a value would change the query: refused.
	if _, err := env.c.FindChangeByCorrelationID(ctx, "x^ORactive=true"); err == nil {
		t.Error("caret accepted in a query value")
	}
}

func TestLookupAmbiguousAndRetired(t *testing.T) {
	env := newEnv(t)
	env.f.handle("GET /api/now/table/cmdb_ci", respond(200, resultJSON([]map[string]string{
		{"sys_id": sid(1), "name": "checkout-service", "install_status": "7"},
		{"sys_id": sid(2), "name": "checkout-service", "install_status": "1", "sys_class_name": "cmdb_ci_service"},
	})))
	env.f.handle("GET /api/now/table/sys_user_group", respond(200, resultJSON([]map[string]string{
		{"sys_id": sid(1), "name": "Ops"}, {"sys_id": sid(2), "name": "Ops"},
	})))
	ctx := context.Background()
	ci, err := env.c.LookupCI(ctx, "checkout-service")
	if err != nil || ci.SysID != sid(2) || ci.Class != "cmdb_ci_service" {
		t.Errorf("CI: %+v %v", ci, err)
	}
	if _, err := env.c.LookupCI(ctx, "checkout-service"); err != nil || env.f.count("GET", "/api/now/table/cmdb_ci") != 1 {
		t.Errorf("CI lookup not cached: %v", err)
	}
	if _, err := env.c.LookupGroup(ctx, "Ops"); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("group: %v", err)
	}
}

func TestAddWorkNoteNotRetried(t *testing.T) {
	env := newEnv(t)
	env.f.handle("PATCH "+changePath, respond(503, `{}`))
	err := env.c.AddWorkNote(context.Background(), changeID, "deploying batch 1")
	if !errors.Is(err, ErrOutcomeUnknown) || env.f.count("PATCH", changePath) != 1 {
		t.Errorf("err %v after %d attempts", err, env.f.count("PATCH", changePath))
	}
}
