package snowsim

import (
	"fmt"
	"testing"
	"time"
)

// TestOrderIndexMatchesFullScan checks that the indexed path answers every
// keyset-style query exactly as the full scan does, before and after writes
// that move rows and change membership.
func TestOrderIndexMatchesFullScan(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.GenerateChanges(3000, GenerateOptions{PerSecond: 7}); err != nil {
		t.Fatal(err)
	}
	tb := s.d.tables["change_request"]
	at := func(sec int) string {
		return fmtTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(sec) * time.Second))
	}
	queries := []string{
		"ORDERBYsys_updated_on^ORDERBYsys_id",
		"sys_updated_on>" + at(100) + "^ORDERBYsys_updated_on^ORDERBYsys_id",
		"sys_updated_on>=" + at(100) + "^sys_updated_on<" + at(300) + "^ORDERBYsys_updated_on^ORDERBYsys_id",
		"sys_updated_on=" + at(42) + "^sys_id>5^ORDERBYsys_id",
		"sys_updated_on=" + at(42) + "^ORDERBYsys_updated_on^ORDERBYsys_id",
		"correlation_idSTARTSWITHgen-1^ORstate=3^sys_updated_on>" + at(10) + "^ORDERBYsys_updated_on^ORDERBYsys_id",
		"sys_updated_on<=" + at(5) + "^ORDERBYsys_updated_on",
		"ORDERBYnumber",
	}
	check := func(stage string) {
		for _, qs := range queries {
			for _, w := range [][2]int{{0, 1000}, {0, 10}, {50, 25}, {2990, 100}} {
				q := s.d.compile(tb, parseQuery(qs), time.Now())
				wantRows, wantTotal := q.selectRows(tb.rows, w[0], w[1])
				gotRows, gotTotal := q.selectFromTable(tb, w[0], w[1], true)
				if gotTotal != wantTotal || len(gotRows) != len(wantRows) {
					t.Fatalf("%s: %q %v: total %d rows %d, want %d rows %d", stage, qs, w, gotTotal, len(gotRows), wantTotal, len(wantRows))
				}
				for i := range gotRows {
					if gotRows[i] != wantRows[i] {
						t.Fatalf("%s: %q %v: row %d differs", stage, qs, w, i)
					}
				}
			}
		}
	}
	check("fresh")
	// Writes that move rows in the order (a new sys_updated_on) ...
	for i, r := range tb.rows[:200] {
		tb.set(r, "sys_updated_on", at(10000+i%3))
	}
	check("after updates")
	// ... and membership changes.
	tb.remove(tb.rows[17])
	extra := tb.newRecord()
	for k, v := range map[string]string{"sys_id": fmt.Sprintf("%032x", 7), "sys_updated_on": at(42), "number": "CHG9999999"} {
		tb.set(extra, k, v)
	}
	tb.add(extra)
	check("after add and remove")
}
