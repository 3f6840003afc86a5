package snowsim

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// keysetPage fetches one 1000-row keyset page as the daytwo mirror does.
func keysetPage(tb testing.TB, base, query string) (int, time.Duration) {
	q := url.Values{
		"sysparm_query": {query}, "sysparm_limit": {"1000"}, "sysparm_exclude_reference_link": {"true"},
		"sysparm_display_value": {"false"}, "sysparm_suppress_pagination_header": {"true"},
	}
	req, _ := http.NewRequest("GET", base+"/api/now/table/change_request?"+q.Encode(), nil)
	req.SetBasicAuth("daytwo", "daytwo")
	req.Header.Set("Accept", "application/json")
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		tb.Fatalf("status %d", res.StatusCode)
	}
	return int(n), time.Since(start)
}

func TestLargeKeysetPage(t *testing.T) {
	if testing.Short() {
		t.Skip("100k rows")
	}
	e := newEnv(t, Options{})
	if err := e.sim.GenerateChanges(100_000, GenerateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Rows 0..9 share the first second; start inside that boundary second.
	first := e.call("daytwo", "GET", "/api/now/table/change_request?sysparm_limit=3&sysparm_fields=sys_id,sys_updated_on&sysparm_query=ORDERBYsys_updated_on^ORDERBYsys_id", nil).must(t, 200).list(t)
	u, id := first[2]["sys_updated_on"].(string), first[2]["sys_id"].(string)
	rest := e.call("daytwo", "GET", "/api/now/table/change_request?sysparm_fields=sys_id&sysparm_query="+urlEscape("sys_updated_on="+u+"^sys_id>"+id+"^ORDERBYsys_id"), nil).must(t, 200).list(t)
	if len(rest) != 7 {
		t.Fatalf("boundary second rest = %d rows, want 7", len(rest))
	}
	_, took := keysetPage(t, e.url, "sys_updated_on>"+u+"^ORDERBYsys_updated_on^ORDERBYsys_id")
	limit := time.Second
	if raceEnabled {
		limit = 5 * time.Second
	}
	if took > limit {
		t.Fatalf("1000-row keyset page over 100k rows took %v", took)
	}
	t.Logf("1000-row keyset page over 100k rows: %v", took)
}

// BenchmarkKeysetPage1000of100k measures one 1000-row page over 100k rows.
func BenchmarkKeysetPage1000of100k(b *testing.B) {
	sim, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	if err := sim.GenerateChanges(100_000, GenerateOptions{}); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i%9000) * time.Second).Format(timeLayout)
		keysetPage(b, srv.URL, fmt.Sprintf("sys_updated_on>%s^ORDERBYsys_updated_on^ORDERBYsys_id", ts))
	}
}

// BenchmarkOffsetPage1000of100k is the Ansible-style offset page.
func BenchmarkOffsetPage1000of100k(b *testing.B) {
	sim, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	if err := sim.GenerateChanges(100_000, GenerateOptions{}); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	for i := 0; b.Loop(); i++ {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/now/table/change_request?sysparm_limit=1000&sysparm_offset=%d&sysparm_exclude_reference_link=true", srv.URL, (i%100)*1000), nil)
		req.SetBasicAuth("daytwo", "daytwo")
		req.Header.Set("Accept", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
}

// mirrorFields are the 29 fields daytwo's mirror asks for (itsm.ChangeFields).
const mirrorFields = "sys_id,number,type,state,approval,risk,impact,priority,short_description,description," +
	"assignment_group,assignment_group.name,cmdb_ci,cmdb_ci.name,requested_by,requested_by.name,start_date,end_date," +
	"work_start,work_end,close_code,close_notes,correlation_id,active,on_hold,conflict_status,sys_created_on,sys_updated_on,sys_mod_count"

// mirrorPager walks change_request as daytwo's mirror and the benchmark
// floor do: pages of 1000 with sysparm_no_count, keyset on
// (sys_updated_on, sys_id) below a frozen bound, finishing each boundary
// second (sys_updated_on=X^sys_id>Y^ORDERBYsys_id) before moving on.
type mirrorPager struct {
	tb            testing.TB
	base, extra   string
	until         string
	curTS, curID  string
	rows, queries int
	buf           bytes.Buffer
}

func newMirrorPager(tb testing.TB, sim *Sim, base string) *mirrorPager {
	sim.mu.RLock()
	ct := sim.d.tables["cmdb_ci"]
	var ids []string
	for _, r := range ct.rows {
		ids = append(ids, ct.get(r, "sys_id"))
	}
	sim.mu.RUnlock()
	return &mirrorPager{
		tb: tb, base: base, extra: "correlation_idSTARTSWITHdaytwo:^ORcmdb_ciIN" + strings.Join(ids, ","),
		until: fmtTime(time.Now().Add(-10 * time.Second)),
	}
}

// pageRow is what the pager needs of a row.
type pageRow struct{ sysID, updatedOn string }

// get fetches one page. It reads only the keyset fields, cut from the body
// (every row starts with sys_id, as sysparm_fields lists it), so that the
// benchmark's time is the simulator's rather than a JSON decoder's.
func (p *mirrorPager) get(query string) []pageRow {
	v := url.Values{
		"sysparm_query": {query}, "sysparm_fields": {mirrorFields}, "sysparm_limit": {"1000"},
		"sysparm_display_value": {"false"}, "sysparm_exclude_reference_link": {"true"},
		"sysparm_suppress_pagination_header": {"true"}, "sysparm_no_count": {"true"},
	}
	req, _ := http.NewRequest("GET", p.base+"/api/now/table/change_request?"+v.Encode(), nil)
	req.SetBasicAuth("daytwo", "daytwo")
	req.Header.Set("Accept", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		p.tb.Fatal(err)
	}
	p.buf.Reset()
	_, err = p.buf.ReadFrom(res.Body)
	res.Body.Close()
	body := p.buf.Bytes()
	if err != nil || res.StatusCode != 200 {
		p.tb.Fatalf("status %d for %s: %v", res.StatusCode, query, err)
	}
	p.queries++
	value := func(b []byte, key string) string {
		i := bytes.Index(b, []byte(`"`+key+`":"`))
		if i < 0 {
			p.tb.Fatalf("no %s in %.200s", key, b)
		}
		b = b[i+len(key)+4:]
		return string(b[:bytes.IndexByte(b, '"')])
	}
	var rows []pageRow
	start := []byte(`{"sys_id":`)
	for {
		i := bytes.Index(body, start)
		if i < 0 {
			return rows
		}
		body = body[i+1:]
		end := bytes.Index(body, start)
		if end < 0 {
			end = len(body)
		}
		rec := body[:end]
		rows = append(rows, pageRow{sysID: value(rec, "sys_id"), updatedOn: value(rec, "sys_updated_on")})
	}
}

// page fetches the next page and finishes its boundary second; it returns
// the rows read, 0 at the end of the pass (and starts over).
func (p *mirrorPager) page() int {
	lower := ""
	if p.curTS != "" {
		lower = "^sys_updated_on>" + p.curTS
	}
	rows := p.get(p.extra + lower + "^sys_updated_on<" + p.until + "^ORDERBYsys_updated_on^ORDERBYsys_id")
	if len(rows) == 0 {
		p.curTS, p.curID = "", ""
		return 0
	}
	n := len(rows)
	for len(rows) > 0 {
		last := rows[len(rows)-1]
		p.curTS, p.curID = last.updatedOn, last.sysID
		rows = p.get(p.extra + "^sys_updated_on=" + p.curTS + "^sys_id>" + p.curID + "^ORDERBYsys_id")
		n += len(rows)
	}
	p.rows += n
	return n
}

// BenchmarkMirrorPass is the mirror's keyset pass over n generated changes
// (issue 14): one op is one 1000-row page plus its boundary query, so
// ns/op is the time per page, which should barely grow from 100k to 1M.
// seed-s is the time GenerateChanges took.
func BenchmarkMirrorPass(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("n=%dk", n/1000), func(b *testing.B) {
			sim, err := New(Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer sim.Close()
			start := time.Now()
			if err := sim.GenerateChanges(n, GenerateOptions{}); err != nil {
				b.Fatal(err)
			}
			seed := time.Since(start)
			srv := httptest.NewServer(sim)
			defer srv.Close()
			p := newMirrorPager(b, sim, srv.URL)
			p.page() // builds the order indexes
			p.rows = 0
			b.ResetTimer()
			pages := 0
			for b.Loop() {
				if p.page() > 0 {
					pages++
				}
			}
			b.ReportMetric(seed.Seconds(), "seed-s")
			b.ReportMetric(float64(pages)/b.Elapsed().Seconds(), "pages/s")
			b.ReportMetric(float64(p.rows)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
