package itsm

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// tableSim evaluates the encoded queries the client sends (AND of simple
// conditions plus ORDERBY) over an in-memory table, like the Table API.
type tableSim struct {
	mu      sync.Mutex
	rows    []map[string]string
	noCount bool
	// zeroCount answers X-Total-Count: 0, as an instance may under
	// sysparm_no_count (SERVICENOW.md §1.2, unverified).
	zeroCount bool
	// hidden rows are dropped after the limit is applied (ACLs, trap 7).
	hidden  map[string]bool
	queries []string
	// afterPage runs after each answered page.
	afterPage func(n int)
	pages     int
}

var condRE = regexp.MustCompile(`^([a-z_.]+?)(>=|<=|!=|>|<|=|STARTSWITH|IN)(.*)$`)

func (s *tableSim) match(row map[string]string, cond string) bool {
	m := condRE.FindStringSubmatch(cond)
	if m == nil {
		return true // ServiceNow drops what it cannot parse
	}
	v, op, want := row[m[1]], m[2], m[3]
	switch op {
	case "=":
		return v == want
	case "!=":
		return v != want
	case ">":
		return v > want
	case ">=":
		return v >= want
	case "<":
		return v < want
	case "<=":
		return v <= want
	case "STARTSWITH":
		return strings.HasPrefix(v, want)
	case "IN":
		for _, w := range strings.Split(want, ",") {
			if v == w {
				return true
			}
		}
		return false
	}
	return false
}

func (s *tableSim) handler(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		s.mu.Lock()
		query := q.Get("sysparm_query")
		s.queries = append(s.queries, query)
		var conds, order []string
		for _, part := range strings.Split(query, "^") {
			if strings.HasPrefix(part, "ORDERBY") {
				order = append(order, strings.TrimPrefix(part, "ORDERBY"))
			} else if part != "" {
				conds = append(conds, part)
			}
		}
		var hits []map[string]string
		for _, row := range s.rows {
			ok := true
			for _, c := range conds {
				ok = ok && s.match(row, c)
			}
			if ok {
				hits = append(hits, row)
			}
		}
		sort.SliceStable(hits, func(i, j int) bool {
			for _, f := range order {
				if hits[i][f] != hits[j][f] {
					return hits[i][f] < hits[j][f]
				}
			}
			return false
		})
		limit, _ := strconv.Atoi(q.Get("sysparm_limit"))
		if limit <= 0 {
			t.Errorf("sysparm_limit %q", q.Get("sysparm_limit"))
			limit = 10000
		}
		total := len(hits)
		if len(hits) > limit {
			hits = hits[:limit]
		}
		var page []map[string]string
		for _, row := range hits {
			if !s.hidden[row["sys_id"]] {
				cp := map[string]string{}
				for k, v := range row {
					cp[k] = v
				}
				page = append(page, cp)
			}
		}
		if s.zeroCount {
			w.Header().Set("X-Total-Count", "0")
		} else if !s.noCount {
			w.Header().Set("X-Total-Count", strconv.Itoa(total))
		}
		s.pages++
		n := s.pages
		after := s.afterPage
		s.mu.Unlock()
		if page == nil {
			page = []map[string]string{}
		}
		writeJSON(w, 200, resultJSON(page))
		if after != nil {
			after(n)
		}
	}
}

func (s *tableSim) set(id, field, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rows {
		if r["sys_id"] == id {
			r[field] = value
		}
	}
}

const (
	s0 = "2026-05-01 09:59:59"
	s1 = "2026-05-01 10:00:00" // the crowded second
	s2 = "2026-05-01 10:00:01"
	sT = "2026-05-01 10:00:05" // frozen upper bound
	s3 = "2026-05-01 10:00:07" // at/after T: next run
)

func crowdedTable() *tableSim {
	s := &tableSim{hidden: map[string]bool{}}
	add := func(n int, ts string) {
		for range n {
			id := sid((len(s.rows)*7919)%9973 + 1) // unique, not in insertion order
			s.rows = append(s.rows, map[string]string{
				"sys_id": id, "sys_updated_on": ts, "sys_mod_count": "0",
				"correlation_id": "daytwo:" + id[24:], "state": "-5", "number": "CHG" + id[25:],
			})
		}
	}
	add(5, s0)
	add(35, s1)
	add(7, s2)
	add(3, s3)
	return s
}

func untilT() time.Time { t, _ := ParseTime(sT); return t }

func runSync(t *testing.T, c *Client, req SyncRequest) (map[string]int, []Watermark, SyncStats) {
	t.Helper()
	seen := map[string]int{}
	var cursors []Watermark
	var last Watermark
	st, err := c.SyncChanges(context.Background(), req, func(page []Change, cur Watermark) error {
		for _, ch := range page {
			seen[ch.SysID]++
			w := Watermark{ch.SysUpdatedOn, ch.SysID}
			if w.UpdatedOn.Before(last.UpdatedOn) || w.UpdatedOn.Equal(last.UpdatedOn) && w.SysID <= last.SysID {
				t.Errorf("out of order: %v after %v", w, last)
			}
			last = w
		}
		cursors = append(cursors, cur)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return seen, cursors, st
}

// Traps 7, 8 and pain point 16: 35 rows share one second, the page size is
// 10; every row before T arrives exactly once, in keyset order, with or
// without X-Total-Count (or with a count of 0: the client asks for no
// count and never reads one), and the next idle run costs one request.
func TestSyncKeysetBoundarySecond(t *testing.T) {
	for _, count := range []string{"sent", "absent", "zero"} {
		t.Run("count="+count, func(t *testing.T) {
			env := newEnv(t)
			sim := crowdedTable()
			sim.noCount = count == "absent"
			sim.zeroCount = count == "zero"
			env.f.handle("GET /api/now/table/change_request", sim.handler(t))
			seen, cursors, st := runSync(t, env.c, SyncRequest{Until: untilT(), PageSize: 10})
			if len(seen) != 47 {
				t.Errorf("delivered %d distinct rows, want 47", len(seen))
			}
			for id, n := range seen {
				if n != 1 {
					t.Errorf("row %s delivered %d times", id, n)
				}
			}
			if st.Cursor != (Watermark{UpdatedOn: untilT()}) {
				t.Errorf("final cursor %+v", st.Cursor)
			}
			if len(cursors) == 0 || cursors[len(cursors)-1].SysID == "" {
				t.Errorf("page cursors %v", cursors)
			}
			for _, q := range sim.queries {
				if strings.Contains(q, "sys_updated_on=") && !strings.HasSuffix(q, "^ORDERBYsys_id") {
					t.Errorf("boundary query %q", q)
				}
				if strings.Contains(q, "sys_updated_on<") && !strings.HasSuffix(q, "ORDERBYsys_updated_on^ORDERBYsys_id") {
					t.Errorf("range query %q", q)
				}
			}
			call := env.f.Calls()[0]
			if call.q("sysparm_fields") == "" || call.q("sysparm_exclude_reference_link") != "true" ||
				call.q("sysparm_suppress_pagination_header") != "true" || call.q("sysparm_limit") != "10" ||
				call.q("sysparm_no_count") != "true" {
				t.Errorf("params %v", call.Query)
			}

			// Idle: one request, >= the previous upper bound.
			before := env.c.Stats().Requests
			seen, _, st = runSync(t, env.c, SyncRequest{Since: st.Cursor, Until: untilT().Add(time.Second)})
			if len(seen) != 0 || env.c.Stats().Requests-before != 1 || st.Requests != 1 {
				t.Errorf("idle run: %d rows, %d requests", len(seen), env.c.Stats().Requests-before)
			}
			if q := sim.queries[len(sim.queries)-1]; !strings.Contains(q, "sys_updated_on>="+sT) {
				t.Errorf("idle query %q", q)
			}
		})
	}
}

// A run interrupted in the crowded second resumes from (u, id) without
// duplicates or gaps.
func TestSyncResumeMidSecond(t *testing.T) {
	env := newEnv(t)
	sim := crowdedTable()
	env.f.handle("GET /api/now/table/change_request", sim.handler(t))
	var firstPages []Watermark
	stop := fmt.Errorf("killed")
	got := map[string]int{}
	_, err := env.c.SyncChanges(context.Background(), SyncRequest{Until: untilT(), PageSize: 10},
		func(page []Change, cur Watermark) error {
			if len(firstPages) == 2 {
				return stop // crash before persisting page 3
			}
			for _, ch := range page {
				got[ch.SysID]++
			}
			firstPages = append(firstPages, cur)
			return nil
		})
	if err != stop {
		t.Fatalf("err = %v", err)
	}
	resume := firstPages[len(firstPages)-1]
	if FormatTime(resume.UpdatedOn) != s1 {
		t.Fatalf("resume point %v not in the crowded second", resume)
	}
	seen, _, _ := runSync(t, env.c, SyncRequest{Since: resume, Until: untilT(), PageSize: 10})
	for id, n := range seen {
		got[id] += n
	}
	if len(got) != 47 {
		t.Errorf("%d rows after resume, want 47", len(got))
	}
	for id, n := range got {
		if n != 1 {
			t.Errorf("row %s seen %d times", id, n)
		}
	}
}

// Rows updated during a run leave the window (their sys_updated_on jumps past
// T) without shifting unchanged rows out of view; they come in the next run.
func TestSyncConcurrentUpdates(t *testing.T) {
	env := newEnv(t)
	sim := crowdedTable()
	var s1IDs []string
	for _, r := range sim.rows {
		if r["sys_updated_on"] == s1 {
			s1IDs = append(s1IDs, r["sys_id"])
		}
	}
	sort.Strings(s1IDs)
	delivered, later := s1IDs[0], s1IDs[30]
	sim.afterPage = func(n int) {
		if n == 2 {
			sim.set(delivered, "sys_updated_on", s3)
			sim.set(later, "sys_updated_on", s3)
		}
	}
	env.f.handle("GET /api/now/table/change_request", sim.handler(t))
	seen, _, st := runSync(t, env.c, SyncRequest{Until: untilT(), PageSize: 10})
	if len(seen) != 46 || seen[later] != 0 || seen[delivered] != 1 {
		t.Errorf("first run: %d rows, later=%d delivered=%d", len(seen), seen[later], seen[delivered])
	}
	sim.afterPage = nil
	seen2, _, _ := runSync(t, env.c, SyncRequest{Since: st.Cursor, Until: untilT().Add(10 * time.Second), PageSize: 10})
	if seen2[later] != 1 || seen2[delivered] != 1 || len(seen2) != 5 {
		t.Errorf("second run: %v", seen2)
	}
}

// Trap 7: a page cut short by ACLs does not end the run while the count
// says more rows match.
func TestSyncShortPagesAreNotTheEnd(t *testing.T) {
	env := newEnv(t)
	sim := crowdedTable()
	for i, r := range sim.rows {
		if i%3 == 0 {
			sim.hidden[r["sys_id"]] = true
		}
	}
	env.f.handle("GET /api/now/table/change_request", sim.handler(t))
	seen, _, _ := runSync(t, env.c, SyncRequest{Until: untilT(), PageSize: 10})
	want := 0
	for i, r := range sim.rows {
		if i%3 != 0 && r["sys_updated_on"] < sT {
			want++
		}
	}
	if len(seen) != want {
		t.Errorf("got %d readable rows, want %d", len(seen), want)
	}
}

// A small delta costs three requests without a count (the page, the rest of
// its last second, the empty page that ends the run); the extra query is
// ANDed; ^NQ is refused.
func TestSyncSmallDeltaAndQuery(t *testing.T) {
	env := newEnv(t)
	sim := crowdedTable()
	sim.rows[0]["correlation_id"] = "other:1"
	env.f.handle("GET /api/now/table/change_request", sim.handler(t))
	seen, _, st := runSync(t, env.c, SyncRequest{
		Since: Watermark{UpdatedOn: mustTime(s2)}, Until: untilT(),
		Query: "correlation_idSTARTSWITHdaytwo:", PageSize: 100,
	})
	if len(seen) != 7 || st.Requests != 3 {
		t.Errorf("%d rows in %d requests, want 7 in 3", len(seen), st.Requests)
	}
	if q := sim.queries[0]; !strings.HasPrefix(q, "correlation_idSTARTSWITHdaytwo:^sys_updated_on>="+s2+"^sys_updated_on<"+sT) {
		t.Errorf("query %q", q)
	}
	if _, err := env.c.SyncChanges(context.Background(), SyncRequest{Query: "active=true^NQactive=false"},
		func([]Change, Watermark) error { return nil }); err == nil {
		t.Error("^NQ accepted")
	}
}

// Until defaults to the instance clock (Date header) minus the skew.
func TestSyncUntilFromServerClock(t *testing.T) {
	env := newEnv(t)
	server := time.Date(2026, 5, 1, 10, 0, 30, 0, time.UTC)
	env.f.handle("GET /api/now/table/change_request", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Date", server.Format(http.TimeFormat))
		writeJSON(w, 200, `{"result":[]}`)
	})
	_, _ = env.c.SyncChanges(context.Background(), SyncRequest{}, func([]Change, Watermark) error { return nil })
	st, err := env.c.SyncChanges(context.Background(), SyncRequest{}, func([]Change, Watermark) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if d := st.Until.Sub(server.Add(-defaultSyncSkew)); d < -2*time.Second || d > 2*time.Second {
		t.Errorf("Until %v, server clock %v", st.Until, server)
	}
}

func mustTime(s string) time.Time { t, _ := ParseTime(s); return t }

// Approvals for every open daytwo change: one request whatever the number
// of changes.
func TestListOpenApprovalsOneRequest(t *testing.T) {
	env := newEnv(t)
	sim := &tableSim{}
	for i := range 300 {
		sim.rows = append(sim.rows, map[string]string{
			"sys_id": sid(5000 + i), "sysapproval": sid(i / 2),
			"sysapproval.correlation_id": "daytwo:" + strconv.Itoa(i/2), "sysapproval.active": "true",
			"approver": sid(77), "approver.name": "Ann Approver", "state": "requested",
			"sys_updated_on": s1,
		})
	}
	sim.rows[0]["sysapproval.correlation_id"] = "other:1" // dropped client-side too
	env.f.handle("GET /api/now/table/sysapproval_approver", sim.handler(t))
	got, err := env.c.ListOpenApprovals(context.Background(), "daytwo:")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 299 || env.c.Stats().Requests != 1 {
		t.Errorf("%d approvals in %d requests", len(got), env.c.Stats().Requests)
	}
	if got[0].ApproverName != "Ann Approver" || got[0].State != ApprovalRequested || got[0].ChangeSysID == "" {
		t.Errorf("approval %+v", got[0])
	}
	if q := sim.queries[0]; !strings.HasPrefix(q, "sysapproval.active=true^sysapproval.correlation_idSTARTSWITHdaytwo:") {
		t.Errorf("query %q", q)
	}

	// By ids: chunks of 40 keep URLs short.
	var ids []string
	for i := range 100 {
		ids = append(ids, sid(i))
	}
	before := env.c.Stats().Requests
	byID, err := env.c.ListApprovals(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(byID) != 200 || env.c.Stats().Requests-before != 3 {
		t.Errorf("%d approvals in %d requests", len(byID), env.c.Stats().Requests-before)
	}
}

func TestListDeletes(t *testing.T) {
	env := newEnv(t)
	sim := &tableSim{rows: []map[string]string{
		{"sys_id": sid(1), "tablename": "change_request", "documentkey": sid(100), "sys_created_on": s0},
		{"sys_id": sid(2), "tablename": "change_request", "documentkey": sid(101), "sys_created_on": s2},
		{"sys_id": sid(3), "tablename": "incident", "documentkey": sid(102), "sys_created_on": s2},
	}}
	env.f.handle("GET /api/now/table/sys_audit_delete", sim.handler(t))
	got, err := env.c.ListDeletes(context.Background(), "change_request", mustTime(s1))
	if err != nil {
		t.Fatal(err)
	}
	// One deletion: its page, the rest of its second, the empty page.
	if len(got) != 1 || got[0].DocumentKey != sid(101) || env.c.Stats().Requests != 3 {
		t.Errorf("deletes %+v in %d requests", got, env.c.Stats().Requests)
	}
	if q := sim.queries[0]; !strings.HasPrefix(q, "tablename=change_request^sys_created_on>="+s1) {
		t.Errorf("query %q", q)
	}
}

// SyncTable works on any table with the same pager (incidents, approvals).
func TestSyncTableGeneric(t *testing.T) {
	env := newEnv(t)
	sim := crowdedTable()
	env.f.handle("GET /api/now/table/incident", sim.handler(t))
	n := 0
	_, err := env.c.SyncTable(context.Background(), "incident", SyncRequest{
		Until: untilT(), PageSize: 7,
		Fields: IncidentFields(),
	}, func(page []Record, _ Watermark) error {
		n += len(page)
		return nil
	})
	if err != nil || n != 47 {
		t.Errorf("%d rows, %v", n, err)
	}
}
