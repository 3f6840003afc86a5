package snowsim

import (
	"slices"
	"sort"
	"strings"
	"sync"
)

// Ordered list queries over large tables — the keyset paging a mirror does,
// `sys_updated_on>X^ORDERBYsys_updated_on^ORDERBYsys_id` page after page —
// would otherwise match and order every row of the table for every page.
// A real instance answers them from a database index; so does the
// simulator: it keeps, per table and ORDERBY list, the rows in that order,
// starts at the lower bound of the first order field with a binary search,
// and stops at its upper bound. Results are identical to selectRows (a test
// checks), only faster.

type orderIndexes struct {
	mu     sync.Mutex
	byKeys map[string]*orderIndex
}

type orderIndex struct {
	mut, writes uint64
	rows        []*record
}

// sorted returns t's rows in q's order, rebuilding the cached order when
// rows were added or removed, or when a write changed a row's position.
func (t *table) sorted(q *query) []*record {
	sig := make([]string, len(q.order))
	for i, k := range q.order {
		sig[i] = k.path
		if k.desc {
			sig[i] += " desc"
		}
	}
	key := strings.Join(sig, ",")
	t.index.mu.Lock()
	defer t.index.mu.Unlock()
	if t.index.byKeys == nil {
		t.index.byKeys = map[string]*orderIndex{}
	}
	ix := t.index.byKeys[key]
	switch {
	case ix == nil || ix.mut != t.mut:
		ix = &orderIndex{mut: t.mut, writes: t.writes, rows: slices.Clone(t.rows)}
		slices.SortStableFunc(ix.rows, q.cmp)
		t.index.byKeys[key] = ix
	case ix.writes == t.writes:
		// Nothing was written since: the order holds.
	case !slices.IsSortedFunc(ix.rows, q.cmp):
		// A write moved some row (e.g. a new sys_updated_on): restore the
		// order, ties in insertion order as selectRows keeps them.
		pos := make(map[*record]int, len(t.rows))
		for i, r := range t.rows {
			pos[r] = i
		}
		slices.SortFunc(ix.rows, func(a, b *record) int {
			if c := q.cmp(a, b); c != 0 {
				return c
			}
			return pos[a] - pos[b]
		})
		ix.writes = t.writes
	default:
		ix.writes = t.writes
	}
	return ix.rows
}

// selectFromTable is selectRows over a whole table, using the order index
// when the query has one AND-ed group ordered ascending by a text field.
// Without needTotal (sysparm_no_count) it stops as soon as the window is
// full and the total it returns is only a lower bound.
func (q *query) selectFromTable(t *table, offset, limit int, needTotal bool) ([]*record, int) {
	if len(q.order) == 0 || q.order[0].desc || q.order[0].numeric || len(q.groups) > 1 || len(t.rows) < 1000 {
		return q.selectRows(t.rows, offset, limit)
	}
	rows := t.sorted(q)
	first := q.order[0]
	lo, hi := 0, len(rows)
	bounded := 0 // clauses fully answered by [lo, hi)
	if len(q.groups) == 1 {
		for _, clause := range q.groups[0] {
			if len(clause) != 1 || clause[0].path != first.path || clause[0].numeric {
				continue
			}
			bounded++
			c := clause[0]
			at := func(pred func(v string) bool) int {
				return sort.Search(len(rows), func(i int) bool { return pred(first.get(rows[i])) })
			}
			switch c.op {
			case ">":
				lo = max(lo, at(func(v string) bool { return v > c.val }))
			case ">=":
				lo = max(lo, at(func(v string) bool { return v >= c.val }))
			case "=":
				lo = max(lo, at(func(v string) bool { return v >= c.val }))
				hi = min(hi, at(func(v string) bool { return v > c.val }))
			case "<":
				hi = min(hi, at(func(v string) bool { return v >= c.val }))
			case "<=":
				hi = min(hi, at(func(v string) bool { return v > c.val }))
			default:
				bounded--
			}
		}
	}
	if len(q.groups) == 0 || bounded == len(q.groups[0]) {
		// Only range conditions on the order field: the slice is the answer.
		// (A range excludes empty values; an unbounded side may hold some.)
		for lo < hi && first.get(rows[lo]) == "" && bounded > 0 {
			lo++
		}
		total := max(hi-lo, 0)
		if offset >= total {
			return nil, total
		}
		end := total
		if limit >= 0 && offset+limit < total {
			end = offset + limit
		}
		return slices.Clone(rows[lo+offset : lo+end]), total
	}
	var window []*record
	total := 0
	for i := lo; i < hi; i++ {
		r := rows[i]
		if !q.match(r) {
			continue
		}
		if total >= offset && (limit < 0 || len(window) < limit) {
			window = append(window, r)
		}
		total++
		if !needTotal && limit >= 0 && len(window) == limit {
			break
		}
	}
	return window, total
}
