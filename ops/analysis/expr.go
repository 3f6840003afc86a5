package analysis

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Sample is one series of a scrape: a metric name, its labels and a value.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Snapshot is one scrape of one target.
type Snapshot struct {
	Time    time.Time
	Samples []Sample
}

// Window is what a measurement sees of one target: the scrapes at the
// start and at the end of an interval.
type Window struct {
	Start, End Snapshot
}

// ErrNoData reports an expression that has no value for a window: no
// series match a selector, an interval without time, or 0/0 (a rate of
// errors over a rate of requests with no requests). A measurement without
// data is inconclusive, never a pass.
var ErrNoData = errors.New("no data")

// Env is what an expression is evaluated against: a window of scraped
// series (selectors, rate, increase) and, for conditions over a query,
// the query's result.
type Env struct {
	Window *Window
	Result *float64
}

// Expr is a parsed value expression of the metrics expression language, a
// small subset of PromQL evaluated over two scrapes:
//
//	rate(m{l="v"})        per-second increase of the counter m over the
//	                      interval, summed over every matching series
//	increase(m{...})      the increase itself
//	m{...}                the summed value at the end of the interval (a gauge)
//	histogram_quantile(0.99, rate(m_bucket{...}))
//	                      the quantile of the histogram's increase over
//	                      the interval, interpolated as Prometheus does
//	result                the value of the check's query (conditions only)
//	numbers, + - * /, parentheses
//
// Label matchers are =, !=, =~ and !~ with double-quoted values; regular
// expressions are anchored, as in PromQL. A counter that went down was
// reset, and its end value is its increase; a series absent at the start
// counts from 0 (client libraries create a labelled series at its first
// increment).
type Expr struct {
	src  string
	root node
}

// Condition is a comparison of two expressions, such as
// `rate(errors) / rate(requests) < 0.01` or `result < 0.01`.
type Condition struct {
	src         string
	left, right node
	op          string
}

// String returns the source text.
func (e *Expr) String() string { return e.src }

// String returns the source text.
func (c *Condition) String() string { return c.src }

// UsesResult reports whether the expression refers to result.
func (e *Expr) UsesResult() bool { return uses(e.root, isResult) }

// UsesSeries reports whether the expression reads scraped series.
func (e *Expr) UsesSeries() bool { return uses(e.root, isSeries) }

// UsesResult reports whether the condition refers to result.
func (c *Condition) UsesResult() bool { return uses(c.left, isResult) || uses(c.right, isResult) }

// UsesSeries reports whether the condition reads scraped series.
func (c *Condition) UsesSeries() bool { return uses(c.left, isSeries) || uses(c.right, isSeries) }

// Eval computes the expression's value.
func (e *Expr) Eval(env Env) (float64, error) { return e.root.eval(env) }

// Eval computes both sides and compares them; it also returns the left
// side's value, the number a verdict reports.
func (c *Condition) Eval(env Env) (bool, float64, error) {
	l, err := c.left.eval(env)
	if err != nil {
		return false, math.NaN(), err
	}
	r, err := c.right.eval(env)
	if err != nil {
		return false, l, err
	}
	return compare(c.op, l, r), l, nil
}

func compare(op string, l, r float64) bool {
	switch op {
	case "<":
		return l < r
	case "<=":
		return l <= r
	case ">":
		return l > r
	case ">=":
		return l >= r
	case "==":
		return l == r
	case "!=":
		return l != r
	}
	return false
}

// ParseExpr parses a value expression (no comparison).
func ParseExpr(src string) (*Expr, error) {
	p := &parser{src: src}
	if err := p.lex(); err != nil {
		return nil, err
	}
	n, err := p.sum()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		if t.kind == tCmp {
			return nil, p.errAt(t, "a comparison (%s) belongs in a condition, not in a query", t.text)
		}
		return nil, p.errAt(t, "unexpected %s", t.describe())
	}
	return &Expr{src: src, root: n}, nil
}

// ParseCondition parses a comparison: an expression, one of < <= > >= ==
// !=, and another expression.
func ParseCondition(src string) (*Condition, error) {
	p := &parser{src: src}
	if err := p.lex(); err != nil {
		return nil, err
	}
	l, err := p.sum()
	if err != nil {
		return nil, err
	}
	t := p.next()
	if t.kind != tCmp {
		if t.kind == tEOF {
			return nil, p.errAt(t, "a condition needs a comparison, e.g. %s < 0.01", strings.TrimSpace(src))
		}
		return nil, p.errAt(t, "unexpected %s, want a comparison (< <= > >= == !=)", t.describe())
	}
	r, err := p.sum()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errAt(t, "unexpected %s (one comparison per condition)", t.describe())
	}
	return &Condition{src: src, left: l, right: r, op: t.text}, nil
}

// --- syntax tree ---

type node interface {
	eval(env Env) (float64, error)
	children() []node
}

type numNode float64

func (n numNode) eval(Env) (float64, error) { return float64(n), nil }
func (numNode) children() []node            { return nil }

type resultNode struct{}

func (resultNode) eval(env Env) (float64, error) {
	if env.Result == nil {
		return 0, fmt.Errorf("result: %w (no query result)", ErrNoData)
	}
	return *env.Result, nil
}
func (resultNode) children() []node { return nil }

type negNode struct{ x node }

func (n negNode) eval(env Env) (float64, error) {
	v, err := n.x.eval(env)
	return -v, err
}
func (n negNode) children() []node { return []node{n.x} }

type binNode struct {
	op   byte
	l, r node
}

func (n binNode) eval(env Env) (float64, error) {
	l, err := n.l.eval(env)
	if err != nil {
		return 0, err
	}
	r, err := n.r.eval(env)
	if err != nil {
		return 0, err
	}
	switch n.op {
	case '+':
		return l + r, nil
	case '-':
		return l - r, nil
	case '*':
		return l * r, nil
	}
	if r == 0 && l == 0 {
		return 0, fmt.Errorf("0/0: %w (nothing happened in the interval)", ErrNoData)
	}
	return l / r, nil
}
func (n binNode) children() []node { return []node{n.l, n.r} }

type matcher struct {
	label, op, value string
	re               *regexp.Regexp
}

func (m matcher) matches(labels map[string]string) bool {
	v := labels[m.label]
	switch m.op {
	case "=":
		return v == m.value
	case "!=":
		return v != m.value
	case "=~":
		return m.re.MatchString(v)
	default: // !~
		return !m.re.MatchString(v)
	}
}

type selector struct {
	src      string
	name     string
	matchers []matcher
}

func (s *selector) match(snap Snapshot) []Sample {
	var out []Sample
	for _, smp := range snap.Samples {
		if smp.Name != s.name {
			continue
		}
		ok := true
		for _, m := range s.matchers {
			if !m.matches(smp.Labels) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, smp)
		}
	}
	return out
}

// noSeries explains a selector that matches nothing: no data when the
// target does not export the metric at all or a matcher names a label
// none of its series has (both are usually typos), and nil when the
// metric is there but no series matches (no 5xx answers yet: a sum of
// nothing is 0).
func (s *selector) noSeries(snap Snapshot) error {
	labels := map[string]bool{}
	n := 0
	for _, smp := range snap.Samples {
		if smp.Name != s.name {
			continue
		}
		n++
		for k := range smp.Labels {
			labels[k] = true
		}
	}
	if n == 0 {
		return fmt.Errorf("%s: %w: the target exports no series named %s", s.src, ErrNoData, s.name)
	}
	for _, m := range s.matchers {
		if !labels[m.label] {
			have := make([]string, 0, len(labels))
			for k := range labels {
				have = append(have, k)
			}
			sort.Strings(have)
			return fmt.Errorf("%s: %w: no series of %s has a label %s (its labels: %s)", s.src, ErrNoData, s.name, m.label, strings.Join(have, ", "))
		}
	}
	return nil
}

// gaugeNode is a bare selector: the summed value at the end.
type gaugeNode struct{ sel *selector }

func (n gaugeNode) eval(env Env) (float64, error) {
	if env.Window == nil {
		return 0, fmt.Errorf("%s: %w (no scrape)", n.sel.src, ErrNoData)
	}
	m := n.sel.match(env.Window.End)
	if len(m) == 0 {
		if err := n.sel.noSeries(env.Window.End); err != nil {
			return 0, err
		}
	}
	sum := 0.0
	for _, s := range m {
		sum += s.Value
	}
	return sum, nil
}
func (gaugeNode) children() []node { return nil }

// counterNode is rate(sel) or increase(sel).
type counterNode struct {
	sel  *selector
	rate bool
}

func (n counterNode) eval(env Env) (float64, error) {
	w := env.Window
	if w == nil {
		return 0, fmt.Errorf("%s: %w (no scrape)", n.sel.src, ErrNoData)
	}
	inc, err := increases(n.sel, *w)
	if err != nil {
		return 0, err
	}
	sum := 0.0
	for _, v := range inc {
		sum += v.Value
	}
	if !n.rate {
		return sum, nil
	}
	d := w.End.Time.Sub(w.Start.Time).Seconds()
	if d <= 0 {
		return 0, fmt.Errorf("rate(%s): %w (the interval has no length)", n.sel.src, ErrNoData)
	}
	return sum / d, nil
}
func (counterNode) children() []node { return nil }

// increases returns each matching end series with its increase over the
// window as Value.
func increases(sel *selector, w Window) ([]Sample, error) {
	end := sel.match(w.End)
	if len(end) == 0 {
		if err := sel.noSeries(w.End); err != nil {
			return nil, err
		}
	}
	start := map[string]float64{}
	for _, s := range sel.match(w.Start) {
		start[seriesKey(s)] = s.Value
	}
	out := make([]Sample, len(end))
	for i, s := range end {
		out[i] = s
		out[i].Value = Increase(start[seriesKey(s)], s.Value)
	}
	return out, nil
}

// Increase is a counter's increase between two readings: the difference,
// or, when the counter went down (the process restarted), its new value.
func Increase(start, end float64) float64 {
	if end < start {
		return end
	}
	return end - start
}

// Rate is Increase per second over d; ok is false for a d of zero or less.
func Rate(start, end float64, d time.Duration) (float64, bool) {
	if d <= 0 {
		return 0, false
	}
	return Increase(start, end) / d.Seconds(), true
}

func seriesKey(s Sample) string {
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(s.Name)
	for _, k := range keys {
		b.WriteString("\xff" + k + "\xfe" + s.Labels[k])
	}
	return b.String()
}

// quantileNode is histogram_quantile(q, rate(m_bucket{...})).
type quantileNode struct {
	q   float64
	sel *selector
}

func (n quantileNode) eval(env Env) (float64, error) {
	if env.Window == nil {
		return 0, fmt.Errorf("%s: %w (no scrape)", n.sel.src, ErrNoData)
	}
	inc, err := increases(n.sel, *env.Window)
	if err != nil {
		return 0, err
	}
	byLE := map[float64]float64{}
	for _, s := range inc {
		le, err := strconv.ParseFloat(s.Labels["le"], 64)
		if err != nil {
			return 0, fmt.Errorf("histogram_quantile: %s has a series without a numeric le label", n.sel.name)
		}
		byLE[le] += s.Value
	}
	b := make([]Bucket, 0, len(byLE))
	for le, c := range byLE {
		b = append(b, Bucket{UpperBound: le, Count: c})
	}
	v, ok := Quantile(n.q, b)
	if !ok {
		return 0, fmt.Errorf("histogram_quantile(%g, %s): %w (no observations in the interval)", n.q, n.sel.src, ErrNoData)
	}
	return v, nil
}
func (quantileNode) children() []node { return nil }

// Bucket is one cumulative histogram bucket.
type Bucket struct {
	UpperBound float64
	Count      float64
}

// Quantile interpolates the q-quantile of cumulative buckets the way
// PromQL's histogram_quantile does: linearly inside the bucket the rank
// falls in, the lowest bucket starting at 0, the +Inf bucket answered with
// the highest finite bound. ok is false without observations.
func Quantile(q float64, buckets []Bucket) (float64, bool) {
	b := slices.Clone(buckets)
	slices.SortFunc(b, func(x, y Bucket) int {
		switch {
		case x.UpperBound < y.UpperBound:
			return -1
		case x.UpperBound > y.UpperBound:
			return 1
		}
		return 0
	})
	if len(b) == 0 || !math.IsInf(b[len(b)-1].UpperBound, 1) {
		return 0, false
	}
	total := b[len(b)-1].Count
	if total <= 0 {
		return 0, false
	}
	if q < 0 {
		return math.Inf(-1), true
	}
	if q > 1 {
		return math.Inf(1), true
	}
	rank := q * total
	i := sort.Search(len(b)-1, func(i int) bool { return b[i].Count >= rank })
	if i == len(b)-1 {
		if len(b) < 2 {
			return 0, false
		}
		return b[len(b)-2].UpperBound, true
	}
	if i == 0 && b[0].UpperBound <= 0 {
		return b[0].UpperBound, true
	}
	lower, prev := 0.0, 0.0
	if i > 0 {
		lower, prev = b[i-1].UpperBound, b[i-1].Count
	}
	inBucket := b[i].Count - prev
	if inBucket <= 0 {
		return b[i].UpperBound, true
	}
	return lower + (b[i].UpperBound-lower)*(rank-prev)/inBucket, true
}

func uses(n node, pred func(node) bool) bool {
	if pred(n) {
		return true
	}
	for _, c := range n.children() {
		if uses(c, pred) {
			return true
		}
	}
	return false
}

func isResult(n node) bool { _, ok := n.(resultNode); return ok }

func isSeries(n node) bool {
	switch n.(type) {
	case gaugeNode, counterNode, quantileNode:
		return true
	}
	return false
}

// --- lexer and parser ---

type tokKind int

const (
	tEOF tokKind = iota
	tNum
	tIdent
	tStr
	tOp    // + - * /
	tCmp   // < <= > >= == !=
	tMatch // = =~ !~ (inside braces; != is lexed as tCmp)
	tPunct // ( ) { } ,
)

type token struct {
	kind tokKind
	text string
	pos  int
	num  float64
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tStr:
		return "string " + strconv.Quote(t.text)
	}
	return strconv.Quote(t.text)
}

type parser struct {
	src  string
	toks []token
	i    int
}

func (p *parser) errAt(t token, format string, args ...any) error {
	return fmt.Errorf("at column %d: %s", t.pos+1, fmt.Sprintf(format, args...))
}

func (p *parser) lex() error {
	s := p.src
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c >= '0' && c <= '9' || c == '.':
			j := i
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.' || s[j] == 'e' || s[j] == 'E' ||
				(s[j] == '-' || s[j] == '+') && j > i && (s[j-1] == 'e' || s[j-1] == 'E')) {
				j++
			}
			v, err := strconv.ParseFloat(s[i:j], 64)
			if err != nil {
				return fmt.Errorf("at column %d: %q is not a number", i+1, s[i:j])
			}
			p.toks = append(p.toks, token{kind: tNum, text: s[i:j], pos: i, num: v})
			i = j
		case c == '_' || c == ':' || unicode.IsLetter(rune(c)):
			j := i
			for j < len(s) && (s[j] == '_' || s[j] == ':' || s[j] < 0x80 && (unicode.IsLetter(rune(s[j])) || unicode.IsDigit(rune(s[j])))) {
				j++
			}
			p.toks = append(p.toks, token{kind: tIdent, text: s[i:j], pos: i})
			i = j
		case c == '"':
			j := i + 1
			var b strings.Builder
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
					switch s[j] {
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					default:
						b.WriteByte(s[j])
					}
					continue
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return fmt.Errorf("at column %d: unterminated string", i+1)
			}
			p.toks = append(p.toks, token{kind: tStr, text: b.String(), pos: i})
			i = j + 1
		case strings.ContainsRune("+-*/", rune(c)):
			p.toks = append(p.toks, token{kind: tOp, text: string(c), pos: i})
			i++
		case strings.ContainsRune("(){},", rune(c)):
			p.toks = append(p.toks, token{kind: tPunct, text: string(c), pos: i})
			i++
		default:
			two := ""
			if i+1 < len(s) {
				two = s[i : i+2]
			}
			switch {
			case two == "<=" || two == ">=" || two == "==" || two == "!=":
				p.toks = append(p.toks, token{kind: tCmp, text: two, pos: i})
				i += 2
			case two == "=~" || two == "!~":
				p.toks = append(p.toks, token{kind: tMatch, text: two, pos: i})
				i += 2
			case c == '<' || c == '>':
				p.toks = append(p.toks, token{kind: tCmp, text: string(c), pos: i})
				i++
			case c == '=':
				p.toks = append(p.toks, token{kind: tMatch, text: "=", pos: i})
				i++
			default:
				return fmt.Errorf("at column %d: unexpected character %q", i+1, c)
			}
		}
	}
	p.toks = append(p.toks, token{kind: tEOF, pos: len(s)})
	return nil
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) expect(text string) error {
	t := p.next()
	if t.text != text || t.kind == tStr {
		return p.errAt(t, "want %q, got %s", text, t.describe())
	}
	return nil
}

func (p *parser) sum() (node, error) {
	l, err := p.prod()
	if err != nil {
		return nil, err
	}
	for t := p.peek(); t.kind == tOp && (t.text == "+" || t.text == "-"); t = p.peek() {
		p.next()
		r, err := p.prod()
		if err != nil {
			return nil, err
		}
		l = binNode{op: t.text[0], l: l, r: r}
	}
	return l, nil
}

func (p *parser) prod() (node, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for t := p.peek(); t.kind == tOp && (t.text == "*" || t.text == "/"); t = p.peek() {
		p.next()
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = binNode{op: t.text[0], l: l, r: r}
	}
	return l, nil
}

func (p *parser) unary() (node, error) {
	if t := p.peek(); t.kind == tOp && t.text == "-" {
		p.next()
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return negNode{x}, nil
	}
	return p.primary()
}

// functions lists the supported functions, for error messages.
const functions = "rate, increase, histogram_quantile"

func (p *parser) primary() (node, error) {
	t := p.next()
	switch t.kind {
	case tNum:
		return numNode(t.num), nil
	case tPunct:
		if t.text == "(" {
			n, err := p.sum()
			if err != nil {
				return nil, err
			}
			return n, p.expect(")")
		}
	case tIdent:
		if p.peek().text == "(" && p.peek().kind == tPunct {
			return p.call(t)
		}
		if t.text == "result" {
			return resultNode{}, nil
		}
		sel, err := p.selector(t)
		if err != nil {
			return nil, err
		}
		return gaugeNode{sel}, nil
	case tEOF:
		return nil, p.errAt(t, "expression ends too early")
	}
	return nil, p.errAt(t, "unexpected %s", t.describe())
}

func (p *parser) call(name token) (node, error) {
	p.next() // (
	switch name.text {
	case "rate", "increase":
		sel, err := p.selectorArg(name.text)
		if err != nil {
			return nil, err
		}
		return counterNode{sel: sel, rate: name.text == "rate"}, p.expect(")")
	case "histogram_quantile":
		q := p.next()
		if q.kind != tNum {
			return nil, p.errAt(q, "histogram_quantile: the first argument is the quantile, a number such as 0.99")
		}
		if err := p.expect(","); err != nil {
			return nil, err
		}
		fn := p.next()
		if fn.kind != tIdent || (fn.text != "rate" && fn.text != "increase") {
			return nil, p.errAt(fn, "histogram_quantile: the second argument is rate(<name>_bucket{...}) or increase(...)")
		}
		if err := p.expect("("); err != nil {
			return nil, err
		}
		sel, err := p.selectorArg(fn.text)
		if err != nil {
			return nil, err
		}
		if !strings.HasSuffix(sel.name, "_bucket") {
			return nil, p.errAt(fn, "histogram_quantile: %s is not a histogram's _bucket series", sel.name)
		}
		if err := p.expect(")"); err != nil {
			return nil, err
		}
		return quantileNode{q: q.num, sel: sel}, p.expect(")")
	}
	return nil, p.errAt(name, "unknown function %q (supported: %s)", name.text, functions)
}

func (p *parser) selectorArg(fn string) (*selector, error) {
	t := p.next()
	if t.kind != tIdent || t.text == "result" {
		return nil, p.errAt(t, "%s() takes a metric selector such as http_requests_total{code=~\"5..\"}, got %s", fn, t.describe())
	}
	return p.selector(t)
}

var labelRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (p *parser) selector(name token) (*selector, error) {
	sel := &selector{name: name.text}
	end := name.pos + len(name.text)
	if t := p.peek(); t.kind == tPunct && t.text == "{" {
		p.next()
		for {
			t := p.next()
			if t.kind == tPunct && t.text == "}" {
				end = t.pos + 1
				break
			}
			if t.kind != tIdent || !labelRE.MatchString(t.text) {
				return nil, p.errAt(t, "want a label name, got %s", t.describe())
			}
			op := p.next()
			if op.kind != tMatch && !(op.kind == tCmp && op.text == "!=") {
				return nil, p.errAt(op, "want a label matcher (= != =~ !~) after %s, got %s", t.text, op.describe())
			}
			v := p.next()
			if v.kind != tStr {
				return nil, p.errAt(v, "label %s: want a double-quoted value, got %s", t.text, v.describe())
			}
			m := matcher{label: t.text, op: op.text, value: v.text}
			if op.text == "=~" || op.text == "!~" {
				re, err := regexp.Compile("^(?:" + v.text + ")$")
				if err != nil {
					return nil, p.errAt(v, "label %s: bad regular expression %q: %v", t.text, v.text, err)
				}
				m.re = re
			}
			sel.matchers = append(sel.matchers, m)
			sep := p.next()
			if sep.kind == tPunct && sep.text == "}" {
				end = sep.pos + 1
				break
			}
			if sep.kind != tPunct || sep.text != "," {
				return nil, p.errAt(sep, "want ',' or '}' in the label matchers, got %s", sep.describe())
			}
		}
	}
	sel.src = p.src[name.pos:end]
	return sel, nil
}
