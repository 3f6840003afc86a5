package analysis

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func req(code string, v float64) Sample {
	return Sample{Name: "http_requests_total", Labels: map[string]string{"code": code, "handler": "/"}, Value: v}
}

func window(start, end []Sample, d time.Duration) *Window {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	return &Window{Start: Snapshot{Time: t0, Samples: start}, End: Snapshot{Time: t0.Add(d), Samples: end}}
}

func TestExprEval(t *testing.T) {
	base := window(
		[]Sample{req("200", 100), req("500", 10), {Name: "up", Value: 1}},
		[]Sample{req("200", 180), req("500", 30), req("503", 10), {Name: "up", Value: 1}},
		10*time.Second)
	reset := window([]Sample{req("200", 1000)}, []Sample{req("200", 40)}, 4*time.Second)
	hist := func(le string, v float64) Sample {
		return Sample{Name: "lat_bucket", Labels: map[string]string{"le": le}, Value: v}
	}
	histW := window(
		[]Sample{hist("0.1", 0), hist("0.5", 0), hist("+Inf", 0)},
		[]Sample{hist("0.1", 50), hist("0.5", 90), hist("+Inf", 100)},
		10*time.Second)
	r := 0.25
	tests := map[string]struct {
		src    string
		env    Env
		want   float64
		noData bool
	}{
		"rate of all requests":     {src: `rate(http_requests_total)`, env: Env{Window: base}, want: (80 + 20 + 10) / 10.0},
		"regex matcher, anchored":  {src: `rate(http_requests_total{code=~"5.."})`, env: Env{Window: base}, want: 3},
		"error ratio":              {src: `rate(http_requests_total{code=~"5.."}) / rate(http_requests_total)`, env: Env{Window: base}, want: 30.0 / 110},
		"negative matcher":         {src: `increase(http_requests_total{code!="200", handler="/"})`, env: Env{Window: base}, want: 30},
		"regex does not match sub": {src: `increase(http_requests_total{code=~"5"})`, env: Env{Window: base}, want: 0},
		"unknown label":            {src: `increase(http_requests_total{cod=~"5.."})`, env: Env{Window: base}, noData: true},
		"series new at the end":    {src: `increase(http_requests_total{code="503"})`, env: Env{Window: base}, want: 10},
		"counter reset":            {src: `rate(http_requests_total)`, env: Env{Window: reset}, want: 10},
		"gauge":                    {src: `up * 100 - 1`, env: Env{Window: base}, want: 99},
		"unknown metric":           {src: `rate(http_request_total)`, env: Env{Window: base}, noData: true},
		"zero over zero":           {src: `increase(http_requests_total{code="404"} ) / increase(up)`, env: Env{Window: base}, noData: true},
		"no matching series is 0":  {src: `rate(http_requests_total{code="404"})`, env: Env{Window: base}, want: 0},
		"nothing over nothing":     {src: `increase(up) / increase(up)`, env: Env{Window: base}, noData: true},
		"result":                   {src: `result * 2`, env: Env{Result: &r}, want: 0.5},
		"result missing":           {src: `result`, env: Env{}, noData: true},
		"precedence":               {src: `1 + 2 * 3 - -1`, want: 8},
		"parentheses":              {src: `(1 + 2) * 3`, want: 9},
		"p50 interpolated":         {src: `histogram_quantile(0.5, rate(lat_bucket))`, env: Env{Window: histW}, want: 0.1},
		"p70 interpolated":         {src: `histogram_quantile(0.7, increase(lat_bucket))`, env: Env{Window: histW}, want: 0.1 + 0.4*(70-50)/40.0},
		"p99 in +Inf bucket":       {src: `histogram_quantile(0.99, rate(lat_bucket))`, env: Env{Window: histW}, want: 0.5},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e, err := ParseExpr(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Eval(tc.env)
			if tc.noData {
				if !errors.Is(err, ErrNoData) {
					t.Fatalf("got %v, %v; want ErrNoData", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := map[string]struct {
		src, want string
		cond      bool
	}{
		"unknown function":      {src: `irate(x)`, want: `at column 1: unknown function "irate"`},
		"unclosed paren":        {src: `rate(x`, want: `at column 7: want ")"`},
		"bad matcher":           {src: `rate(x{code~"5"})`, want: `unexpected character '~'`},
		"unquoted label value":  {src: `rate(x{code=5})`, want: `want a double-quoted value`},
		"bad regex":             {src: `rate(x{code=~"("})`, want: `bad regular expression`},
		"comparison in a query": {src: `rate(x) < 1`, want: `belongs in a condition`},
		"condition without cmp": {src: `rate(x)`, cond: true, want: `a condition needs a comparison`},
		"two comparisons":       {src: `1 < 2 < 3`, cond: true, want: `one comparison per condition`},
		"rate of a number":      {src: `rate(5)`, want: `takes a metric selector`},
		"quantile of a counter": {src: `histogram_quantile(0.9, rate(x_total))`, want: `not a histogram's _bucket`},
		"unterminated string":   {src: `x{a="b}`, want: `unterminated string`},
		"stray character":       {src: `x # y`, want: `unexpected character '#'`},
		"empty":                 {src: ``, want: `ends too early`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var err error
			if tc.cond {
				_, err = ParseCondition(tc.src)
			} else {
				_, err = ParseExpr(tc.src)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCondition(t *testing.T) {
	w := window([]Sample{req("200", 0), req("500", 0)}, []Sample{req("200", 95), req("500", 5)}, 10*time.Second)
	tests := map[string]struct {
		src   string
		want  bool
		value float64
	}{
		"error ratio under 1%": {src: `rate(http_requests_total{code=~"5.."}) / rate(http_requests_total) < 0.01`, want: false, value: 0.05},
		"error ratio under 6%": {src: `rate(http_requests_total{code=~"5.."}) / rate(http_requests_total) <= 0.06`, want: true, value: 0.05},
		"rate at least":        {src: `rate(http_requests_total) >= 10`, want: true, value: 10},
		"equal":                {src: `increase(http_requests_total{code="500"}) == 5`, want: true, value: 5},
		"not equal":            {src: `increase(http_requests_total{code="500"}) != 5`, want: false, value: 5},
		"greater":              {src: `2 > 1`, want: true, value: 2},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := ParseCondition(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			got, v, err := c.Eval(Env{Window: w})
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || math.Abs(v-tc.value) > 1e-9 {
				t.Fatalf("got %v (value %v), want %v (value %v)", got, v, tc.want, tc.value)
			}
		})
	}
	c, _ := ParseCondition(`result < 0.01`)
	if !c.UsesResult() || c.UsesSeries() {
		t.Fatal("result < 0.01 should use result and no series")
	}
	e, _ := ParseExpr(`rate(x) / 2`)
	if e.UsesResult() || !e.UsesSeries() {
		t.Fatal("rate(x) / 2 should use series and not result")
	}
}

func TestJudge(t *testing.T) {
	lt := func(th float64) func(float64) (bool, error) {
		return func(v float64) (bool, error) { return v < th, nil }
	}
	gt := func(th float64) func(float64) (bool, error) {
		return func(v float64) (bool, error) { return v > th, nil }
	}
	tests := map[string]struct {
		value            float64
		err              error
		success, failure func(float64) (bool, error)
		want             Outcome
	}{
		"success holds":                   {value: 0.001, success: lt(0.01), want: Successful},
		"success fails, no failure cond":  {value: 0.2, success: lt(0.01), want: Failed},
		"failure holds":                   {value: 0.2, failure: gt(0.1), want: Failed},
		"failure does not hold":           {value: 0.05, failure: gt(0.1), want: Successful},
		"both, between: inconclusive":     {value: 0.05, success: lt(0.01), failure: gt(0.1), want: Inconclusive},
		"both hold: failure wins":         {value: 0.05, success: lt(1), failure: gt(0.01), want: Failed},
		"no data is inconclusive":         {value: math.NaN(), err: ErrNoData, success: lt(0.01), want: Inconclusive},
		"NaN is inconclusive":             {value: math.NaN(), success: lt(0.01), want: Inconclusive},
		"no conditions: skipped":          {value: 1, want: Skipped},
		"error in a condition: not ok":    {value: 1, success: func(float64) (bool, error) { return false, ErrNoData }, want: Inconclusive},
		"unreachable even with a failure": {value: 0, err: errors.New("connection refused"), failure: gt(0.1), want: Inconclusive},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got, reason := Judge(tc.value, tc.err, tc.success, tc.failure); got != tc.want {
				t.Fatalf("got %s (%s), want %s", got, reason, tc.want)
			}
		})
	}
}

func TestCombine(t *testing.T) {
	tests := map[string]struct {
		in   []Outcome
		want Outcome
	}{
		"fail wins":                {in: []Outcome{Successful, Inconclusive, Failed}, want: Failed},
		"inconclusive over ok":     {in: []Outcome{Successful, Inconclusive}, want: Inconclusive},
		"skipped left out":         {in: []Outcome{Skipped, Successful}, want: Successful},
		"only skipped":             {in: []Outcome{Skipped, Skipped}, want: Skipped},
		"skipped and inconclusive": {in: []Outcome{Skipped, Inconclusive}, want: Inconclusive},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Combine(tc.in...); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestLoop(t *testing.T) {
	S, F, I, K := Successful, Failed, Inconclusive, Skipped
	tests := map[string]struct {
		limits    Limits
		seq       []Outcome
		wantTaken int // measurements taken before the loop ended
		want      Outcome
	}{
		"all ok":                            {limits: Limits{Count: 3}, seq: []Outcome{S, S, S}, wantTaken: 3, want: S},
		"first failure ends it":             {limits: Limits{Count: 5}, seq: []Outcome{S, F, S, S, S}, wantTaken: 2, want: F},
		"failure within limit":              {limits: Limits{Count: 3, FailureLimit: 1}, seq: []Outcome{F, S, S}, wantTaken: 3, want: S},
		"failures beyond limit":             {limits: Limits{Count: 5, FailureLimit: 1}, seq: []Outcome{F, S, F, S, S}, wantTaken: 3, want: F},
		"inconclusive beyond limit":         {limits: Limits{Count: 5}, seq: []Outcome{S, I, S}, wantTaken: 2, want: I},
		"inconclusive within limit":         {limits: Limits{Count: 3, InconclusiveLimit: 1}, seq: []Outcome{I, S, S}, wantTaken: 3, want: S},
		"only tolerated inconclusive: fail": {limits: Limits{Count: 2, InconclusiveLimit: 5}, seq: []Outcome{I, I}, wantTaken: 2, want: I},
		"all skipped":                       {limits: Limits{Count: 2}, seq: []Outcome{K, K}, wantTaken: 2, want: K},
		"zero count takes one":              {limits: Limits{}, seq: []Outcome{S, F}, wantTaken: 1, want: S},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l := NewLoop(tc.limits)
			taken := 0
			for _, o := range tc.seq {
				taken++
				if l.Add(Measurement{Outcome: o, Value: 1, Baseline: math.NaN()}) {
					break
				}
			}
			if taken != tc.wantTaken {
				t.Fatalf("loop took %d measurements, want %d", taken, tc.wantTaken)
			}
			v := l.Verdict()
			if v.Outcome != tc.want {
				t.Fatalf("verdict %s (%s; %s), want %s", v.Outcome, v.Reason, v.Tally, tc.want)
			}
			if v.Passed() != (tc.want == S || tc.want == K) {
				t.Fatalf("Passed() = %v for %s", v.Passed(), v.Outcome)
			}
		})
	}
}

func TestRatio(t *testing.T) {
	tests := map[string]struct {
		r              Ratio
		canary, basev  float64
		want           Outcome
		reasonContains string
	}{
		"twice is ok at max 2":         {r: Ratio{MaxRatio: 2}, canary: 0.02, basev: 0.01, want: Successful},
		"triple fails at max 2":        {r: Ratio{MaxRatio: 2}, canary: 0.03, basev: 0.01, want: Failed, reasonContains: "3× the baseline"},
		"better is ok":                 {r: Ratio{MaxRatio: 2}, canary: 0.001, basev: 0.01, want: Successful},
		"zero baseline, errors: fail":  {r: Ratio{MaxRatio: 2}, canary: 0.2, basev: 0, want: Failed, reasonContains: "+Inf"},
		"zero and zero: ok":            {r: Ratio{MaxRatio: 2}, canary: 0, basev: 0, want: Successful},
		"within tolerance":             {r: Ratio{MaxRatio: 2, Tolerance: 0.01}, canary: 0.005, basev: 0, want: Successful, reasonContains: "within tolerance"},
		"beyond tolerance":             {r: Ratio{MaxRatio: 2, Tolerance: 0.01}, canary: 0.2, basev: 0, want: Failed},
		"lower is worse: drop fails":   {r: Ratio{MaxRatio: 2, Worse: LowerIsWorse}, canary: 10, basev: 50, want: Failed},
		"lower is worse: rise ok":      {r: Ratio{MaxRatio: 2, Worse: LowerIsWorse}, canary: 100, basev: 50, want: Successful},
		"no baseline value":            {r: Ratio{MaxRatio: 2}, canary: 1, basev: math.NaN(), want: Inconclusive},
		"lower is worse: zero canary":  {r: Ratio{MaxRatio: 2, Worse: LowerIsWorse}, canary: 0, basev: 5, want: Failed},
		"just above max ratio (2.001)": {r: Ratio{MaxRatio: 2}, canary: 2.001, basev: 1, want: Failed},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, reason := tc.r.Compare(tc.canary, tc.basev)
			if got != tc.want || !strings.Contains(reason, tc.reasonContains) {
				t.Fatalf("got %s (%s), want %s containing %q", got, reason, tc.want, tc.reasonContains)
			}
		})
	}
}

func TestMannWhitneyU(t *testing.T) {
	tests := map[string]struct {
		x, y  []float64
		u, p  float64
		delta float64
	}{
		// Exact values: complete separation of 3 vs 3 has p = 1/C(6,3).
		"separated 3v3":         {x: []float64{4, 5, 6}, y: []float64{1, 2, 3}, u: 9, p: 1.0 / 20},
		"separated, wrong side": {x: []float64{1, 2, 3}, y: []float64{4, 5, 6}, u: 0, p: 1},
		// Ties inside the baseline (no errors at all) do not matter.
		"zero baseline 3v6": {x: []float64{0.2, 0.21, 0.19}, y: []float64{0, 0, 0, 0, 0, 0}, u: 18, p: 1.0 / 84},
		// Ties across groups count half: U = 4 + 0.5.
		"ties across":   {x: []float64{1, 2, 3}, y: []float64{0, 2, 0}, u: 7.5, p: 0.15},
		"all identical": {x: []float64{1, 1, 1}, y: []float64{1, 1, 1}, u: 4.5, p: 1},
		// Normal approximation (C(40,20) is beyond the exact limit): a
		// clear shift, and no shift at all.
		"normal, shifted": {x: seq(20, 10), y: seq(20, 0), u: 345 + 5, p: 0, delta: 1e-4},
		"normal, same":    {x: seq(20, 0), y: seq(20, 0), u: 200, p: 0.5, delta: 0.02},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			u, p := MannWhitneyU(tc.x, tc.y)
			delta := tc.delta
			if delta == 0 {
				delta = 1e-9
			}
			if u != tc.u || math.Abs(p-tc.p) > delta {
				t.Fatalf("U=%v p=%v, want U=%v p=%v", u, p, tc.u, tc.p)
			}
		})
	}
}

func seq(n int, from float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = from + float64(i)
	}
	return out
}

func TestMannWhitneyTest(t *testing.T) {
	tests := map[string]struct {
		mw           MannWhitney
		canary, base []float64
		want         Outcome
		reason       string
	}{
		"degraded canary":     {mw: MannWhitney{Alpha: 0.05}, canary: []float64{0.2, 0.19, 0.21}, base: []float64{0, 0, 0.01, 0, 0, 0}, want: Failed, reason: "significantly worse"},
		"healthy canary":      {mw: MannWhitney{Alpha: 0.05}, canary: []float64{0, 0.01, 0}, base: []float64{0, 0, 0.01, 0, 0.01, 0}, want: Successful, reason: "no significant"},
		"too few samples":     {mw: MannWhitney{Alpha: 0.05}, canary: []float64{0.2, 0.2}, base: []float64{0, 0, 0, 0}, want: Inconclusive, reason: "smallest p 0.06667"},
		"no baseline samples": {mw: MannWhitney{Alpha: 0.05}, canary: []float64{0.2}, want: Inconclusive},
		"lower is worse":      {mw: MannWhitney{Alpha: 0.05, Worse: LowerIsWorse}, canary: []float64{1, 2, 3}, base: []float64{10, 11, 12, 13, 14, 15}, want: Failed},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, reason := tc.mw.Test(tc.canary, tc.base)
			if got != tc.want || !strings.Contains(reason, tc.reason) {
				t.Fatalf("got %s (%s), want %s containing %q", got, reason, tc.want, tc.reason)
			}
		})
	}
}

func TestIncreaseAndRate(t *testing.T) {
	if got := Increase(10, 25); got != 15 {
		t.Fatalf("Increase(10, 25) = %v", got)
	}
	if got := Increase(100, 7); got != 7 {
		t.Fatalf("Increase after a reset = %v, want 7", got)
	}
	if r, ok := Rate(0, 50, 10*time.Second); !ok || r != 5 {
		t.Fatalf("Rate = %v %v", r, ok)
	}
	if _, ok := Rate(0, 50, 0); ok {
		t.Fatal("Rate over no time is not ok")
	}
}
