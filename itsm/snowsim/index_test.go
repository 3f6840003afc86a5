package snowsim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// indexWorld is a generated change_request table with the mirror's extra
// query, for comparing the indexed path with the plain scan.
type indexWorld struct {
	t     *testing.T
	s     *Sim
	tb    *table
	extra string // the mirror's <extra>: correlation_idSTARTSWITH…^ORcmdb_ciIN<some CIs>
}

func newIndexWorld(t *testing.T, n, perSecond int) *indexWorld {
	t.Helper()
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.GenerateChanges(n, GenerateOptions{PerSecond: perSecond}); err != nil {
		t.Fatal(err)
	}
	ct := s.d.tables["cmdb_ci"]
	// Two of the CIs only, so that the OR clause really filters.
	ids := []string{ct.get(ct.rows[0], "sys_id"), ct.get(ct.rows[2], "sys_id")}
	return &indexWorld{
		t: t, s: s, tb: s.d.tables["change_request"],
		extra: "correlation_idSTARTSWITHgen-1^ORcmdb_ciIN" + strings.Join(ids, ","),
	}
}

func at(sec int) string {
	return fmtTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(sec) * time.Second))
}

// same checks one query and window against the plain scan: the same rows
// in the same order, and the same total (or, without the total, a lower
// bound no smaller than the window).
func (w *indexWorld) same(stage, qs string, offset, limit int, needTotal bool) []*record {
	w.t.Helper()
	q := w.s.d.compile(w.tb, parseQuery(qs), w.s.now())
	wantRows, wantTotal := q.selectRows(w.tb.rows, offset, limit)
	gotRows, gotTotal := q.selectFromTable(w.tb, offset, limit, needTotal)
	if needTotal && gotTotal != wantTotal || !needTotal && (gotTotal > wantTotal || gotTotal < len(gotRows)) ||
		len(gotRows) != len(wantRows) {
		w.t.Fatalf("%s: %q [%d,+%d] no_count=%v: total %d rows %d, want total %d rows %d",
			stage, qs, offset, limit, !needTotal, gotTotal, len(gotRows), wantTotal, len(wantRows))
	}
	for i := range gotRows {
		if gotRows[i] != wantRows[i] {
			w.t.Fatalf("%s: %q [%d,+%d]: row %d is %s, want %s", stage, qs, offset, limit, i,
				w.tb.get(gotRows[i], "number"), w.tb.get(wantRows[i], "number"))
		}
	}
	return gotRows
}

// consistent checks every index holds exactly the table's rows, in order.
func (w *indexWorld) consistent(stage string) {
	w.t.Helper()
	for name, ix := range w.tb.index.byKeys {
		ix.prepare()
		if ix.n != len(w.tb.rows) {
			w.t.Fatalf("%s: index %s holds %d rows, table %d", stage, name, ix.n, len(w.tb.rows))
		}
		seen := map[*record]bool{}
		var prev *record
		ix.each(0, ix.n, func(r *record) bool {
			if prev != nil && ix.cmp(prev, r) >= 0 {
				w.t.Fatalf("%s: index %s out of order at %s", stage, name, w.tb.get(r, "number"))
			}
			seen[r], prev = true, r
			return true
		})
		for _, r := range w.tb.rows {
			if !seen[r] {
				w.t.Fatalf("%s: index %s misses %s", stage, name, w.tb.get(r, "number"))
			}
		}
	}
}

// indexQueries are the shapes checked: the mirror's two keyset shapes
// (with and without its OR clause), approvals-style sys_id paging, ties,
// descending and numeric orders, equality on empty values, on references
// by name, on numbers, SAMEAS, dot-walks and unordered lookups.
func (w *indexWorld) indexQueries() []string {
	e := w.extra
	return []string{
		"ORDERBYsys_updated_on^ORDERBYsys_id",
		"sys_updated_on>" + at(100) + "^ORDERBYsys_updated_on^ORDERBYsys_id",
		"sys_updated_on>=" + at(100) + "^sys_updated_on<" + at(300) + "^ORDERBYsys_updated_on^ORDERBYsys_id",
		e + "^sys_updated_on>=" + at(100) + "^sys_updated_on<" + at(300) + "^ORDERBYsys_updated_on^ORDERBYsys_id",
		e + "^sys_updated_on>" + at(250) + "^sys_updated_on<" + at(9000) + "^ORDERBYsys_updated_on^ORDERBYsys_id",
		e + "^sys_updated_on=" + at(42) + "^sys_id>5^ORDERBYsys_id",
		e + "^sys_updated_on=" + at(42) + "^sys_id>a^ORDERBYsys_id",
		"sys_updated_on=" + at(42) + "^sys_id>5^ORDERBYsys_id",
		"sys_updated_on=" + at(42) + "^ORDERBYsys_updated_on^ORDERBYsys_id",
		"sys_updated_on=" + at(42) + "^sys_id>=0^sys_id<=8^ORDERBYsys_id",
		"sys_updated_on=^ORDERBYsys_id",
		"sys_updated_on=^ORDERBYsys_updated_on",
		"sys_updated_on<" + at(20) + "^ORDERBYsys_updated_on^ORDERBYsys_id",
		"sys_updated_on<=" + at(5) + "^ORDERBYsys_updated_on",
		"sys_updated_on>^ORDERBYsys_updated_on",
		"sys_updated_on>=^ORDERBYsys_updated_on",
		"correlation_idSTARTSWITHgen-1^ORstate=3^sys_updated_on>" + at(10) + "^ORDERBYsys_updated_on^ORDERBYsys_id",
		"correlation_id=^ORDERBYsys_id",
		"correlation_id=gen-77",
		"correlation_id=gen-77^ORnumber=CHG0000005",
		"number=CHG0000042^ORDERBYsys_created_on",
		"active=true^sys_id>7^ORDERBYsys_id",
		"active=false^ORDERBYDESCsys_updated_on",
		"state=3^ORDERBYsys_id",
		"state=3^ORDERBYstate",
		"state>0^ORDERBYstate^ORDERBYsys_id",
		"ORDERBYstate",
		"ORDERBYDESCstate^ORDERBYnumber",
		"ORDERBYDESCsys_updated_on",
		"ORDERBYsys_mod_count^ORDERBYDESCnumber",
		"assignment_group=Platform Ops^ORDERBYsys_id",
		"assignment_group.name=Platform Ops^ORDERBYsys_id",
		"ORDERBYassignment_group.name^ORDERBYnumber",
		"sys_created_onSAMEASsys_updated_on^ORDERBYsys_id",
		"state=3^NQstate=4^ORDERBYsys_id",
		"state=3^NQstate=4",
		"correlation_idSTARTSWITHgen-1",
		"",
		"ORDERBYnumber",
	}
}

func (w *indexWorld) checkAll(stage string) {
	w.t.Helper()
	for _, qs := range w.indexQueries() {
		for _, win := range [][2]int{{0, 1000}, {0, 10}, {50, 25}, {2990, 100}, {0, -1}} {
			for _, needTotal := range []bool{true, false} {
				w.same(stage, qs, win[0], win[1], needTotal)
			}
		}
	}
	w.consistent(stage)
}

// TestOrderIndexMatchesFullScan checks that the indexed path answers every
// query exactly as the full scan does, before and after writes that move
// rows, empty key values, and membership changes.
func TestOrderIndexMatchesFullScan(t *testing.T) {
	w := newIndexWorld(t, 3000, 7)
	// The mirror's shapes and an unordered lookup are answered from indexes.
	for _, c := range []struct{ query, keys string }{
		{w.extra + "^sys_updated_on>" + at(7) + "^sys_updated_on<" + at(900) + "^ORDERBYsys_updated_on^ORDERBYsys_id", "sys_updated_on,sys_id"},
		{w.extra + "^sys_updated_on=" + at(42) + "^sys_id>5^ORDERBYsys_id", "sys_updated_on,sys_id"},
		{"correlation_id=gen-77", "correlation_id"},
		{"state=3^ORDERBYsys_id", "state,sys_id"},
	} {
		var keys []string
		for _, f := range strings.Split(c.keys, ",") {
			keys = append(keys, fmt.Sprint(w.tb.sch.idx[f]))
		}
		w.same("fresh", c.query, 0, 1000, false)
		w.same("fresh", c.query, 0, 1000, false)
		if w.tb.index.byKeys[strings.Join(keys, ",")] == nil {
			t.Fatalf("no index on (%s) after two queries %q", c.keys, c.query)
		}
	}
	w.checkAll("fresh")
	// Writes that move rows in the order (a new sys_updated_on, state) ...
	tb := w.tb
	for i, r := range tb.rows[:200] {
		tb.set(r, "sys_updated_on", at(10000+i%3))
		tb.set(r, "state", []string{"3", "-5", "4"}[i%3])
	}
	// ... empty key values ...
	for _, r := range tb.rows[300:320] {
		tb.set(r, "sys_updated_on", "")
		tb.set(r, "correlation_id", "")
	}
	w.checkAll("after updates")
	// ... and membership changes.
	tb.remove(tb.rows[17])
	tb.remove(tb.rows[len(tb.rows)-1])
	extra := tb.newRecord()
	for k, v := range map[string]string{"sys_id": fmt.Sprintf("%032x", 7), "sys_updated_on": at(42), "number": "CHG9999999"} {
		tb.set(extra, k, v)
	}
	tb.add(extra)
	w.checkAll("after add and remove")
}

// TestOrderIndexKeysetWalkWithWrites walks the table as the mirror does —
// pages of 50 with no_count, the boundary second finished before moving on
// — while rows are updated, added and removed between pages, and checks
// every page against the plain scan at that moment.
func TestOrderIndexKeysetWalkWithWrites(t *testing.T) {
	w := newIndexWorld(t, 4000, 9)
	tb := w.tb
	rng := rand.New(rand.NewPCG(1, 2))
	until := at(100000)
	next := 0
	write := func() {
		for range 1 + rng.IntN(6) {
			switch rng.IntN(4) {
			case 0: // moves to the end, as an update on an instance does
				r := tb.rows[rng.IntN(len(tb.rows))]
				tb.set(r, "sys_updated_on", at(450+rng.IntN(50)))
				tb.set(r, "sys_mod_count", fmt.Sprint(rng.IntN(9)))
			case 1: // moves behind the cursor, or to the same second
				r := tb.rows[rng.IntN(len(tb.rows))]
				tb.set(r, "sys_updated_on", at(rng.IntN(450)))
			case 2:
				r := tb.newRecord()
				next++
				for k, v := range map[string]string{
					"sys_id": fmt.Sprintf("%032x", rng.Uint64()), "number": fmt.Sprintf("CHG9%06d", next),
					"sys_updated_on": at(rng.IntN(500)), "correlation_id": "gen-1x", "active": "true",
				} {
					tb.set(r, k, v)
				}
				tb.add(r)
			case 3:
				tb.remove(tb.rows[rng.IntN(len(tb.rows))])
			}
		}
	}
	for _, extra := range []string{"", w.extra + "^"} {
		curTS, curID, boundary, pages := "", "", false, 0
		for pages < 1000 {
			var qs string
			if boundary {
				qs = extra + "sys_updated_on=" + curTS + "^sys_id>" + curID + "^ORDERBYsys_id"
			} else {
				lower := ""
				if curTS != "" {
					lower = "sys_updated_on>" + curTS + "^"
				}
				qs = extra + lower + "sys_updated_on<" + until + "^ORDERBYsys_updated_on^ORDERBYsys_id"
			}
			page := w.same(fmt.Sprintf("page %d", pages), qs, 0, 50, false)
			pages++
			write()
			if len(page) == 0 {
				if !boundary {
					break
				}
				boundary = false
				continue
			}
			last := page[len(page)-1]
			curTS, curID, boundary = tb.get(last, "sys_updated_on"), tb.get(last, "sys_id"), true
		}
		if pages < 50 || pages >= 1000 {
			t.Fatalf("walk %q took %d pages", extra, pages)
		}
		w.consistent("after the walk")
	}
	// The approvals-style shape: sys_id keyset with an equality clause.
	last := ""
	for range 200 {
		qs := "active=true^ORDERBYsys_id"
		if last != "" {
			qs = "active=true^sys_id>" + last + "^ORDERBYsys_id"
		}
		page := w.same("sys_id paging", qs, 0, 40, false)
		write()
		if len(page) == 0 {
			break
		}
		last = tb.get(page[len(page)-1], "sys_id")
	}
	w.consistent("after sys_id paging")
}

// TestOrderIndexSetKeepsUnindexedWritesCheap checks that a write to a
// field no index keys on leaves the indexes alone, and one to a key field
// moves the row.
func TestOrderIndexSetKeepsUnindexedWritesCheap(t *testing.T) {
	w := newIndexWorld(t, 2000, 10)
	qs := "sys_updated_on>" + at(300) + "^ORDERBYsys_updated_on^ORDERBYsys_id" // after every row
	w.same("first", qs, 0, 10, false)
	w.same("second", qs, 0, 10, false) // builds the index
	if len(w.tb.index.byKeys) != 1 {
		t.Fatalf("%d indexes, want 1", len(w.tb.index.byKeys))
	}
	r := w.tb.rows[500]
	if w.tb.index.covers(w.tb.sch.idx["short_description"]) || !w.tb.index.covers(w.tb.sch.idx["sys_updated_on"]) {
		t.Fatal("covers: wrong fields")
	}
	w.tb.set(r, "short_description", "changed")
	w.tb.set(r, "sys_updated_on", at(301))
	got := w.same("after", qs, 0, 1, false)
	if len(got) != 1 || got[0] != r {
		t.Fatalf("the row moved past every other is not the answer: %d rows", len(got))
	}
	w.consistent("after")
}
