package snowsim

import (
	"cmp"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// term is one condition of an encoded query, e.g. "stateIN-1,0".
type term struct {
	field, op, value string
}

// orderTerm is one ORDERBY / ORDERBYDESC instruction.
type orderTerm struct {
	field string
	desc  bool
}

// parsedQuery is an encoded query: groups are OR-ed (^NQ), clauses within a
// group are AND-ed (^), terms within a clause are OR-ed (^OR).
type parsedQuery struct {
	groups [][][]term
	order  []orderTerm
}

// operators, longest first so that prefixes do not shadow longer spellings.
var operators = []string{
	"ISNOTEMPTY", "ISEMPTY", "ANYTHING", "EMPTYSTRING", "NOT LIKE", "NOT IN", "STARTSWITH", "ENDSWITH",
	"NSAMEAS", "SAMEAS", "BETWEEN", "LIKE", "IN", "!=", "<=", ">=", "=", "<", ">",
}

// parseQuery splits an encoded query into its parts. It never fails: like the
// platform it drops what it cannot understand and keeps the rest.
func parseQuery(s string) parsedQuery {
	var q parsedQuery
	if s == "" {
		return q
	}
	for _, seg := range strings.Split(s, "^NQ") {
		var group [][]term
		for _, tok := range strings.Split(seg, "^") {
			switch {
			case tok == "" || tok == "EQ":
				continue
			case strings.HasPrefix(tok, "ORDERBYDESC"):
				if f := tok[len("ORDERBYDESC"):]; isFieldPath(f) {
					q.order = append(q.order, orderTerm{field: f, desc: true})
				}
				continue
			case strings.HasPrefix(tok, "ORDERBY"):
				if f := tok[len("ORDERBY"):]; isFieldPath(f) {
					q.order = append(q.order, orderTerm{field: f})
				}
				continue
			}
			or := false
			if strings.HasPrefix(tok, "OR") && len(group) > 0 {
				or, tok = true, tok[2:]
			}
			t, ok := parseTerm(tok)
			if !ok {
				continue
			}
			if or {
				group[len(group)-1] = append(group[len(group)-1], t)
			} else {
				group = append(group, []term{t})
			}
		}
		q.groups = append(q.groups, group)
	}
	return q
}

func isFieldChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.'
}

func isFieldPath(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isFieldChar(s[i]) {
			return false
		}
	}
	return true
}

func parseTerm(tok string) (term, bool) {
	i := 0
	for i < len(tok) && isFieldChar(tok[i]) {
		i++
	}
	field, rest := tok[:i], tok[i:]
	if !isFieldPath(field) {
		return term{}, false
	}
	for _, op := range operators {
		if strings.HasPrefix(rest, op) {
			return term{field: field, op: op, value: rest[len(op):]}, true
		}
	}
	return term{}, false
}

// getter reads a (possibly dot-walked) value from a row.
type getter func(*record) string

// cond is a compiled term.
type cond struct {
	path    string // the field path, for index selection
	field   int    // schema position when get reads that plain field as stored, else -1
	get     getter
	op      string
	val     string
	vals    []string
	numeric bool
	num     float64
	lo, hi  string
}

type orderKey struct {
	path    string
	get     getter
	numeric bool
	desc    bool
}

// query is a parsed query compiled against one table.
type query struct {
	groups [][][]cond
	order  []orderKey
}

// resolvePath compiles a dot-walked field path into a getter and the final
// field. It returns ok=false for unknown fields.
func (d *db) resolvePath(t *table, path string) (getter, *field, bool) {
	parts := strings.Split(path, ".")
	cur := t
	var steps []int
	var tables []*table
	var f *field
	for n, p := range parts {
		i, ok := cur.sch.idx[p]
		if !ok {
			return nil, nil, false
		}
		f = cur.sch.fields[i]
		if f.kind == kPassword {
			return nil, nil, false
		}
		steps = append(steps, i)
		tables = append(tables, cur)
		if n < len(parts)-1 {
			if f.kind != kRef {
				return nil, nil, false
			}
			cur = d.tables[f.ref]
			if cur == nil {
				return nil, nil, false
			}
		}
	}
	if len(steps) == 1 {
		i := steps[0]
		return func(r *record) string { return r.vals[i] }, f, true
	}
	return func(r *record) string {
		for n, i := range steps {
			v := r.vals[i]
			if n == len(steps)-1 {
				return v
			}
			next := tables[n+1].byID[v]
			if next == nil {
				return ""
			}
			r = next
		}
		return ""
	}, f, true
}

var jsDateRe = regexp.MustCompile(`^javascript:\s*gs\.(\w+)\(\s*'?([^',)]*)'?\s*(?:,\s*'?([^')]*)'?\s*)?\)\s*;?$`)

// scriptValue evaluates the few javascript: value helpers clients send.
func scriptValue(v string, now time.Time) (string, bool) {
	if !strings.HasPrefix(v, "javascript:") {
		return v, true
	}
	m := jsDateRe.FindStringSubmatch(v)
	if m == nil {
		return "", false
	}
	now = now.UTC()
	day := func(n int) time.Time {
		y, mo, d := now.AddDate(0, 0, -n).Date()
		return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
	}
	n, _ := strconv.Atoi(m[2])
	switch m[1] {
	case "dateGenerate":
		tm := m[3]
		if tm == "" || tm == "start" {
			tm = "00:00:00"
		} else if tm == "end" {
			tm = "23:59:59"
		}
		return m[2] + " " + tm, true
	case "now", "nowDateTime", "nowNoTZ":
		return fmtTime(now), true
	case "daysAgo":
		return fmtTime(now.AddDate(0, 0, -n)), true
	case "daysAgoStart":
		return fmtTime(day(n)), true
	case "daysAgoEnd":
		return fmtTime(day(n).Add(24*time.Hour - time.Second)), true
	case "beginningOfToday":
		return fmtTime(day(0)), true
	case "endOfToday":
		return fmtTime(day(0).Add(24*time.Hour - time.Second)), true
	case "hoursAgo":
		return fmtTime(now.Add(-time.Duration(n) * time.Hour)), true
	case "minutesAgo":
		return fmtTime(now.Add(-time.Duration(n) * time.Minute)), true
	}
	return "", false
}

func isNumeric(f *field) bool { return f.kind == kInt || f.kind == kChoice && f.numeric }

// compileTerm turns a term into a cond; ok=false drops it (invalid field or value).
func (d *db) compileTerm(t *table, tm term, now time.Time) (cond, bool) {
	get, f, ok := d.resolvePath(t, tm.field)
	if !ok {
		return cond{}, false
	}
	val, ok := scriptValue(tm.value, now)
	if !ok {
		return cond{}, false
	}
	c := cond{path: tm.field, field: plainField(t, tm.field), get: get, op: tm.op, val: val, numeric: isNumeric(f)}
	switch tm.op {
	case "IN", "NOT IN":
		c.vals = strings.Split(val, ",")
	case "BETWEEN":
		lo, hi, found := strings.Cut(val, "@")
		if !found {
			return cond{}, false
		}
		if c.lo, ok = scriptValue(lo, now); !ok {
			return cond{}, false
		}
		if c.hi, ok = scriptValue(hi, now); !ok {
			return cond{}, false
		}
	case "SAMEAS", "NSAMEAS":
		other, _, ok := d.resolvePath(t, val)
		if !ok {
			return cond{}, false
		}
		self := get
		c.field = -1
		if tm.op == "SAMEAS" {
			c.get = func(r *record) string { return strconv.FormatBool(self(r) == other(r)) }
		} else {
			c.get = func(r *record) string { return strconv.FormatBool(self(r) != other(r)) }
		}
		c.op, c.val = "=", "true"
		return c, true
	}
	if c.numeric {
		if n, err := strconv.ParseFloat(val, 64); err == nil {
			c.num = n
		} else {
			c.numeric = false
		}
	}
	// References may be queried by display value as well as by sys_id.
	if f.kind == kRef && (tm.op == "=" || tm.op == "!=" || tm.op == "IN" || tm.op == "NOT IN" ||
		tm.op == "LIKE" || tm.op == "NOT LIKE" || tm.op == "STARTSWITH" || tm.op == "ENDSWITH") {
		byName := false
		if c.vals != nil {
			for _, v := range c.vals {
				byName = byName || v != "" && !isSysID(v)
			}
		} else {
			byName = val != "" && !isSysID(val)
		}
		if byName {
			raw, refTable := get, f.ref
			c.get = func(r *record) string { return d.display(refTable, raw(r)) }
			c.field = -1
		}
	}
	if tm.op == "LIKE" || tm.op == "NOT LIKE" || tm.op == "STARTSWITH" || tm.op == "ENDSWITH" {
		c.val = strings.ToLower(val)
	}
	return c, true
}

func (c *cond) compare(v string) int {
	if c.numeric {
		if n, err := strconv.ParseFloat(v, 64); err == nil {
			return cmp.Compare(n, c.num)
		}
	}
	return strings.Compare(v, c.val)
}

func (c *cond) match(r *record) bool {
	v := c.get(r)
	switch c.op {
	case "=":
		return v == c.val
	case "!=":
		return v != c.val
	case "LIKE":
		return strings.Contains(strings.ToLower(v), c.val)
	case "NOT LIKE":
		return !strings.Contains(strings.ToLower(v), c.val)
	case "STARTSWITH":
		return strings.HasPrefix(strings.ToLower(v), c.val)
	case "ENDSWITH":
		return strings.HasSuffix(strings.ToLower(v), c.val)
	case "IN":
		return slices.Contains(c.vals, v)
	case "NOT IN":
		return !slices.Contains(c.vals, v)
	case "ISEMPTY", "EMPTYSTRING":
		return v == ""
	case "ISNOTEMPTY":
		return v != ""
	case "ANYTHING":
		return true
	case "<":
		return v != "" && c.compare(v) < 0
	case "<=":
		return v != "" && c.compare(v) <= 0
	case ">":
		return v != "" && c.compare(v) > 0
	case ">=":
		return v != "" && c.compare(v) >= 0
	case "BETWEEN":
		return v != "" && v >= c.lo && v <= c.hi
	}
	return false
}

// compile binds a parsed query to a table. Unknown fields and operators are
// silently dropped, as on a default instance.
func (d *db) compile(t *table, pq parsedQuery, now time.Time) *query {
	q := &query{}
	for _, g := range pq.groups {
		var group [][]cond
		for _, clause := range g {
			var cs []cond
			for _, tm := range clause {
				if c, ok := d.compileTerm(t, tm, now); ok {
					cs = append(cs, c)
				}
			}
			if len(cs) > 0 {
				group = append(group, cs)
			}
		}
		q.groups = append(q.groups, group)
	}
	for _, o := range pq.order {
		get, f, ok := d.resolvePath(t, o.field)
		if !ok {
			continue
		}
		q.order = append(q.order, orderKey{path: o.field, get: get, numeric: isNumeric(f), desc: o.desc})
	}
	return q
}

// and adds a condition to every group (used for name=value URL filters).
func (q *query) and(c cond) {
	if len(q.groups) == 0 {
		q.groups = [][][]cond{nil}
	}
	for i := range q.groups {
		q.groups[i] = append(q.groups[i], []cond{c})
	}
}

func (q *query) match(r *record) bool {
	if len(q.groups) == 0 {
		return true
	}
	for _, g := range q.groups {
		ok := true
		for _, clause := range g {
			any := false
			for i := range clause {
				if clause[i].match(r) {
					any = true
					break
				}
			}
			if !any {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (k orderKey) compare(a, b *record) int {
	c := compareValues(k.get(a), k.get(b), k.numeric)
	if k.desc {
		return -c
	}
	return c
}

// selectRows returns the matching rows in query order, the total match count,
// and the window [offset, offset+limit).
func (q *query) selectRows(rows []*record, offset, limit int) ([]*record, int) {
	var matched []*record
	for _, r := range rows {
		if q.match(r) {
			matched = append(matched, r)
		}
	}
	total := len(matched)
	if offset >= total {
		return nil, total
	}
	if len(q.order) > 0 && total > 1 {
		if k := offset + limit; limit >= 0 && k < total/4 {
			// Only the first k rows in order are needed: select them with a
			// bounded heap (O(n log k)) instead of sorting every match.
			matched = q.topK(matched, k)
		} else {
			slices.SortStableFunc(matched, q.cmp)
		}
	}
	end := total
	if limit >= 0 && offset+limit < total {
		end = offset + limit
	}
	return matched[offset:end], total
}

func (q *query) cmp(a, b *record) int {
	for _, k := range q.order {
		if c := k.compare(a, b); c != 0 {
			return c
		}
	}
	return 0
}

// topK returns the k first rows of rows in query order, stable (ties keep
// their original order), using a max-heap of the best k seen so far.
func (q *query) topK(rows []*record, k int) []*record {
	type item struct {
		r   *record
		pos int
	}
	less := func(a, b item) bool { // a sorts after b
		if c := q.cmp(a.r, b.r); c != 0 {
			return c > 0
		}
		return a.pos > b.pos
	}
	h := make([]item, 0, k)
	down := func(i int) {
		for {
			l, big := 2*i+1, i
			if l < len(h) && less(h[l], h[big]) {
				big = l
			}
			if r := l + 1; r < len(h) && less(h[r], h[big]) {
				big = r
			}
			if big == i {
				return
			}
			h[i], h[big] = h[big], h[i]
			i = big
		}
	}
	for pos, r := range rows {
		it := item{r, pos}
		if len(h) < k {
			h = append(h, it)
			for i := len(h) - 1; i > 0; {
				parent := (i - 1) / 2
				if !less(h[i], h[parent]) {
					break
				}
				h[i], h[parent] = h[parent], h[i]
				i = parent
			}
			continue
		}
		if less(h[0], it) {
			h[0] = it
			down(0)
		}
	}
	slices.SortFunc(h, func(a, b item) int {
		if less(a, b) {
			return 1
		}
		if less(b, a) {
			return -1
		}
		return 0
	})
	out := make([]*record, len(h))
	for i, it := range h {
		out[i] = it.r
	}
	return out
}
