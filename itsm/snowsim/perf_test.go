package snowsim

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
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
