package snowsim

import (
	"cmp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// A real instance answers list queries from database indexes, in time that
// barely grows with the table; so does the simulator, so that a client's
// performance against it has the shape it would have against ServiceNow.
// The queries that matter are the mirror's keyset pages:
//
//	<extra>^sys_updated_on>X^sys_updated_on<U^ORDERBYsys_updated_on^ORDERBYsys_id
//	<extra>^sys_updated_on=X^sys_id>Y^ORDERBYsys_id   (the rest of a second)
//
// A table keeps, per key signature, its rows sorted by (key fields...,
// insertion order) in blocks of a few hundred, kept in order on every write
// (add, remove, and a set of a key field), so no query ever re-sorts or
// re-checks the whole table. A query with one AND group picks an index:
//
//   - an equality clause on a plain field F (F=v) gives the key (F, the
//     ORDERBY fields...): the rows with F=v are one contiguous range, in
//     the query's order;
//   - otherwise the key is the ORDERBY fields.
//
// The range is then narrowed by binary search on the next key field with
// its range clauses (>, >=, =, <, <=), and walked, every row checked
// against the whole query, until the window is full (or to the end of the
// range when the total is needed). Results are identical to selectRows,
// ties in insertion order (index_test.go checks). An index is built at
// the second query that wants it (one query is cheaper to scan than to
// index); ORDERBY on a dot-walked field, and several ^NQ groups with an
// ORDERBY, are scanned and sorted as before.

// blockSize is the target length of an index block; a block splits at
// twice that.
const blockSize = 512

// maxIndexes bounds the indexes one table keeps (least recently used out).
const maxIndexes = 8

// keyField is one column of an index key.
type keyField struct {
	idx     int  // position in the table's schema
	numeric bool // ordered as numbers (an ORDERBY on a numeric field)
	desc    bool
}

func (k keyField) String() string {
	s := strconv.Itoa(k.idx)
	if k.numeric {
		s += "n"
	}
	if k.desc {
		s += "d"
	}
	return s
}

// compareValues orders two stored values as ORDERBY does: numeric fields
// by number (values that are not numbers first, among themselves as text),
// others as text.
func compareValues(va, vb string, numeric bool) int {
	if !numeric {
		return strings.Compare(va, vb)
	}
	na, ea := strconv.ParseFloat(va, 64)
	nb, eb := strconv.ParseFloat(vb, 64)
	switch {
	case ea == nil && eb == nil:
		return cmp.Compare(na, nb)
	case ea != nil && eb != nil:
		return strings.Compare(va, vb)
	case ea != nil:
		return -1 // empty sorts first
	}
	return 1
}

// orderIndex is a table's rows sorted by (keys..., seq), in blocks.
type orderIndex struct {
	keys   []keyField
	blocks [][]*record
	starts []int // starts[i] is the position of blocks[i][0]; nil when stale
	n      int
	used   uint64
}

type orderIndexes struct {
	mu     sync.Mutex
	byKeys map[string]*orderIndex
	seen   map[string]int // uses of signatures without an index yet
	fields []int          // per schema field: how many indexes key on it
	clock  uint64
}

func (ix *orderIndex) cmp(a, b *record) int {
	for _, k := range ix.keys {
		if c := compareValues(a.vals[k.idx], b.vals[k.idx], k.numeric); c != 0 {
			if k.desc {
				return -c
			}
			return c
		}
	}
	return cmp.Compare(a.seq, b.seq)
}

func buildIndex(keys []keyField, rows []*record) *orderIndex {
	ix := &orderIndex{keys: keys, n: len(rows)}
	sorted := slices.Clone(rows)
	slices.SortFunc(sorted, ix.cmp)
	for len(sorted) > 0 {
		n := min(blockSize, len(sorted))
		ix.blocks = append(ix.blocks, sorted[:n:n])
		sorted = sorted[n:]
	}
	return ix
}

// block returns the block that holds r, or where r belongs.
func (ix *orderIndex) block(r *record) int {
	b := sort.Search(len(ix.blocks), func(i int) bool {
		bl := ix.blocks[i]
		return ix.cmp(bl[len(bl)-1], r) >= 0
	})
	return min(b, len(ix.blocks)-1)
}

func (ix *orderIndex) insert(r *record) {
	ix.starts = nil
	ix.n++
	if len(ix.blocks) == 0 {
		ix.blocks = [][]*record{{r}}
		return
	}
	b := ix.block(r)
	bl := ix.blocks[b]
	j := sort.Search(len(bl), func(i int) bool { return ix.cmp(bl[i], r) > 0 })
	bl = slices.Insert(bl, j, r)
	if len(bl) < 2*blockSize {
		ix.blocks[b] = bl
		return
	}
	half := len(bl) / 2
	lo := slices.Clip(bl[:half])
	hi := slices.Clone(bl[half:])
	ix.blocks[b] = lo
	ix.blocks = slices.Insert(ix.blocks, b+1, hi)
}

func (ix *orderIndex) remove(r *record) {
	if len(ix.blocks) == 0 {
		return
	}
	b := ix.block(r)
	bl := ix.blocks[b]
	j := sort.Search(len(bl), func(i int) bool { return ix.cmp(bl[i], r) >= 0 })
	if j == len(bl) || bl[j] != r {
		return
	}
	ix.starts = nil
	ix.n--
	bl = slices.Delete(bl, j, j+1)
	if len(bl) == 0 {
		ix.blocks = slices.Delete(ix.blocks, b, b+1)
		return
	}
	ix.blocks[b] = bl
}

// prepare computes the block positions after writes. Callers hold the
// indexes' mutex; readers then use the index without it (writes take the
// simulator's lock exclusively).
func (ix *orderIndex) prepare() {
	if ix.starts != nil {
		return
	}
	ix.starts = make([]int, len(ix.blocks))
	pos := 0
	for i, bl := range ix.blocks {
		ix.starts[i] = pos
		pos += len(bl)
	}
}

// locate returns the block and offset of position p (p < n).
func (ix *orderIndex) locate(p int) (int, int) {
	b := sort.Search(len(ix.starts), func(i int) bool { return ix.starts[i] > p }) - 1
	return b, p - ix.starts[b]
}

func (ix *orderIndex) at(p int) *record {
	b, j := ix.locate(p)
	return ix.blocks[b][j]
}

// search returns the first position in [lo, hi) whose row satisfies pred
// (monotone over the range), or hi.
func (ix *orderIndex) search(lo, hi int, pred func(*record) bool) int {
	if lo >= hi {
		return hi
	}
	return lo + sort.Search(hi-lo, func(i int) bool { return pred(ix.at(lo + i)) })
}

// each calls fn for the rows at positions [lo, hi) in order until it
// returns false.
func (ix *orderIndex) each(lo, hi int, fn func(*record) bool) {
	if lo >= hi {
		return
	}
	b, j := ix.locate(lo)
	for p := lo; p < hi; b, j = b+1, 0 {
		bl := ix.blocks[b]
		for ; j < len(bl) && p < hi; j, p = j+1, p+1 {
			if !fn(bl[j]) {
				return
			}
		}
	}
}

// covers reports whether some index keys on field i, so that writing it
// must keep the indexes in order. Callers hold the simulator's write lock.
func (x *orderIndexes) covers(i int) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return i < len(x.fields) && x.fields[i] > 0
}

// write sets r's field i to v, moving r in every index keyed on it.
func (x *orderIndexes) write(r *record, i int, v string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var moved []*orderIndex
	for _, ix := range x.byKeys {
		for _, k := range ix.keys {
			if k.idx == i {
				ix.remove(r)
				moved = append(moved, ix)
				break
			}
		}
	}
	r.vals[i] = v
	for _, ix := range moved {
		ix.insert(r)
	}
}

func (x *orderIndexes) added(r *record) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, ix := range x.byKeys {
		ix.insert(r)
	}
}

func (x *orderIndexes) removed(r *record) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, ix := range x.byKeys {
		ix.remove(r)
	}
}

// lookup returns the index on keys, building it from rows at the second
// query that wants it (a query seen once is cheaper to scan than to index);
// nil means scan.
func (x *orderIndexes) lookup(t *table, keys []keyField) *orderIndex {
	sig := make([]string, len(keys))
	for i, k := range keys {
		sig[i] = k.String()
	}
	name := strings.Join(sig, ",")
	x.mu.Lock()
	defer x.mu.Unlock()
	x.clock++
	if ix := x.byKeys[name]; ix != nil {
		ix.used = x.clock
		ix.prepare()
		return ix
	}
	if x.seen == nil || len(x.seen) > 64 {
		x.seen = map[string]int{}
	}
	if x.seen[name]++; x.seen[name] < 2 {
		return nil
	}
	delete(x.seen, name)
	if x.byKeys == nil {
		x.byKeys = map[string]*orderIndex{}
	}
	if len(x.byKeys) >= maxIndexes {
		var oldest string
		for k, ix := range x.byKeys {
			if oldest == "" || ix.used < x.byKeys[oldest].used {
				oldest = k
			}
		}
		x.drop(oldest)
	}
	ix := buildIndex(keys, t.rows)
	ix.used = x.clock
	ix.prepare()
	x.byKeys[name] = ix
	if x.fields == nil {
		x.fields = make([]int, len(t.sch.fields))
	}
	for _, k := range ix.keys {
		x.fields[k.idx]++
	}
	return ix
}

func (x *orderIndexes) drop(name string) {
	for _, k := range x.byKeys[name].keys {
		x.fields[k.idx]--
	}
	delete(x.byKeys, name)
}

// plainField is the schema position of an ORDERBY key or condition that
// reads its own table's field as stored, or -1.
func plainField(t *table, path string) int {
	if strings.Contains(path, ".") {
		return -1
	}
	if i, ok := t.sch.idx[path]; ok {
		return i
	}
	return -1
}

// selectFromTable is selectRows over a whole table, answered from an index
// when the query has at most one AND group and an ORDERBY on plain fields
// or an equality clause on a plain field; an unordered query is scanned
// in insertion order. Without needTotal (sysparm_no_count) both stop as
// soon as the window is full, and the total returned is only a lower
// bound.
func (q *query) selectFromTable(t *table, offset, limit int, needTotal bool) ([]*record, int) {
	if len(t.rows) < 1000 {
		return q.selectRows(t.rows, offset, limit)
	}
	if len(q.groups) > 1 {
		if len(q.order) == 0 {
			return q.collect(t.scan, offset, limit, needTotal)
		}
		return q.selectRows(t.rows, offset, limit)
	}
	var group [][]cond
	if len(q.groups) == 1 {
		group = q.groups[0]
	}
	var keys []keyField
	for _, o := range q.order {
		i := plainField(t, o.path)
		if i < 0 {
			return q.selectRows(t.rows, offset, limit)
		}
		keys = append(keys, keyField{idx: i, numeric: o.numeric, desc: o.desc})
	}
	// An equality clause on a plain field leads the key, unless it is the
	// first ORDERBY field itself (then the range below bounds it).
	eq := -1
	for ci, clause := range group {
		if len(clause) == 1 && clause[0].op == "=" && clause[0].field >= 0 {
			eq = ci
			break
		}
	}
	if eq >= 0 {
		f := group[eq][0].field
		if len(keys) > 0 && keys[0] == (keyField{idx: f}) {
			eq = -1
		} else {
			keys = append([]keyField{{idx: f}}, keys...)
		}
	}
	var ix *orderIndex
	if len(keys) > 0 {
		ix = t.index.lookup(t, keys)
	}
	if ix == nil {
		if len(q.order) == 0 {
			// Unordered: insertion order, as selectRows answers it.
			return q.collect(t.scan, offset, limit, needTotal)
		}
		return q.selectRows(t.rows, offset, limit)
	}
	lo, hi := 0, ix.n
	answered := 0 // clauses fully answered by [lo, hi)
	if eq >= 0 {
		f, v := keys[0].idx, group[eq][0].val
		lo = ix.search(lo, hi, func(r *record) bool { return r.vals[f] >= v })
		hi = ix.search(lo, hi, func(r *record) bool { return r.vals[f] > v })
		answered++
	}
	// Range clauses on the next key field, when it is ordered as text and
	// ascending: within [lo, hi) the rows are sorted by it.
	next := 0
	if eq >= 0 {
		next = 1
	}
	if next < len(keys) {
		k := keys[next]
		ranged := false
		for ci, clause := range group {
			if ci == eq || k.numeric || k.desc || len(clause) != 1 || clause[0].field != k.idx || clause[0].numeric {
				continue
			}
			c, f := clause[0], k.idx
			above := func(v string) int { return ix.search(lo, hi, func(r *record) bool { return r.vals[f] > v }) }
			from := func(v string) int { return ix.search(lo, hi, func(r *record) bool { return r.vals[f] >= v }) }
			switch c.op {
			case ">":
				lo, ranged = above(c.val), true
			case ">=":
				lo, ranged = from(c.val), true
			case "=":
				lo, hi = from(c.val), above(c.val)
			case "<":
				hi, ranged = from(c.val), true
			case "<=":
				hi, ranged = above(c.val), true
			default:
				continue
			}
			hi = max(lo, hi)
			answered++
		}
		if ranged {
			// A range excludes empty values, which sort first.
			lo = ix.search(lo, hi, func(r *record) bool { return r.vals[k.idx] != "" })
		}
	}
	if answered == len(group) {
		total := hi - lo
		if offset >= total {
			return nil, total
		}
		end := total
		if limit >= 0 && offset+limit < total {
			end = offset + limit
		}
		window := make([]*record, 0, end-offset)
		ix.each(lo+offset, lo+end, func(r *record) bool { window = append(window, r); return true })
		return window, total
	}
	return q.collect(func(fn func(*record) bool) { ix.each(lo, hi, fn) }, offset, limit, needTotal)
}

// scan calls fn for t's rows in insertion order until it returns false.
func (t *table) scan(fn func(*record) bool) {
	for _, r := range t.rows {
		if !fn(r) {
			return
		}
	}
}

// collect matches the rows each yields, in that order, and returns the
// window [offset, offset+limit) and the number of matches — all of them
// with needTotal, else those up to the end of the window.
func (q *query) collect(each func(func(*record) bool), offset, limit int, needTotal bool) ([]*record, int) {
	var window []*record
	total := 0
	each(func(r *record) bool {
		if !q.match(r) {
			return true
		}
		if total >= offset && (limit < 0 || len(window) < limit) {
			window = append(window, r)
		}
		total++
		return needTotal || limit < 0 || len(window) < limit
	})
	return window, total
}
