package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/ops/analysis"
)

// DefaultMetricInterval is the length of one metric measurement when the
// configuration sets none.
const DefaultMetricInterval = 10 * time.Second

// maxScrape bounds a /metrics body.
const maxScrape = 16 << 20

// metricCheck is one parsed metrics or prometheus check.
type metricCheck struct {
	name, kind string
	timeout    time.Duration

	url tmpl // metrics: the /metrics URL

	prom     *promSource // prometheus
	promText tmpl        // prometheus: the PromQL query, templated
	promSrc  string

	query            *analysis.Expr // metrics: the value judged (optional)
	success, failure *analysis.Condition
	interval         time.Duration
	count            int
	limits           analysis.Limits
	ratio            *analysis.Ratio
	mw               *analysis.MannWhitney
}

// ValidateMetricCheck parses a metrics or prometheus check as NewHealth
// would, for configuration checks; key names the check (e.g.
// environments[0].health[2]) in the error. Checks of other kinds pass.
func ValidateMetricCheck(key string, hc ops.HealthCheck) error {
	if hc.Metrics == nil && hc.Prometheus == nil {
		return nil
	}
	_, err := parseMetric(key, hc, newOptions(nil))
	return err
}

func parseMetric(key string, hc ops.HealthCheck, o options) (*metricCheck, error) {
	if hc.Metrics != nil && hc.Prometheus != nil {
		return nil, fmt.Errorf("%s: set metrics or prometheus, not both", key)
	}
	m := &metricCheck{name: hc.Name, timeout: hc.Timeout}
	if m.timeout <= 0 {
		m.timeout = DefaultCheckTimeout
	}
	var a ops.MetricAnalysis
	var err error
	if mc := hc.Metrics; mc != nil {
		m.kind, a = "metrics", mc.MetricAnalysis
		key += ".metrics"
		if strings.TrimSpace(mc.URL) == "" {
			return nil, fmt.Errorf("%s.url: must name the target's /metrics URL, e.g. \"{{ .Target.Vars.url }}/metrics\"", key)
		}
		if m.url, err = parseTmpl(key+".url", mc.URL); err != nil {
			return nil, fmt.Errorf("%s.url: %w", key, err)
		}
		if a.Query != "" {
			if m.query, err = analysis.ParseExpr(a.Query); err != nil {
				return nil, fmt.Errorf("%s.query: %q: %w", key, a.Query, err)
			}
			if m.query.UsesResult() {
				return nil, fmt.Errorf("%s.query: %q: result is the query's own value; use it in the conditions", key, a.Query)
			}
		}
	} else {
		pc := hc.Prometheus
		m.kind, a = "prometheus", pc.MetricAnalysis
		key += ".prometheus"
		if m.prom, err = newPromSource(key, pc.Address, o.client); err != nil {
			return nil, err
		}
		if strings.TrimSpace(a.Query) == "" {
			return nil, fmt.Errorf("%s.query: must hold a PromQL query, e.g. sum(rate(http_requests_total{code=~\"5..\"}[1m]))", key)
		}
		if err := promSanity(a.Query); err != nil {
			return nil, fmt.Errorf("%s.query: %q: %w", key, a.Query, err)
		}
		m.promSrc = a.Query
		if m.promText, err = parseTmpl(key+".query", a.Query); err != nil {
			return nil, fmt.Errorf("%s.query: %w", key, err)
		}
	}
	for _, c := range []struct {
		field string
		src   string
		dst   **analysis.Condition
	}{{"success_condition", a.SuccessCondition, &m.success}, {"failure_condition", a.FailureCondition, &m.failure}} {
		if c.src == "" {
			continue
		}
		cond, err := analysis.ParseCondition(c.src)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %q: %w", key, c.field, c.src, err)
		}
		switch {
		case m.kind == "prometheus" && cond.UsesSeries():
			return nil, fmt.Errorf("%s.%s: %q: a prometheus condition compares result (the query's value), e.g. result < 0.01", key, c.field, c.src)
		case m.kind == "metrics" && m.query == nil && cond.UsesResult():
			return nil, fmt.Errorf("%s.%s: %q: result needs a query", key, c.field, c.src)
		}
		*c.dst = cond
	}
	b := a.CanaryVsBaseline
	if m.success == nil && m.failure == nil && b == nil {
		return nil, fmt.Errorf("%s: set success_condition, failure_condition or canary_vs_baseline: a check needs something to judge by", key)
	}
	if m.kind == "metrics" && m.query == nil && b != nil {
		return nil, fmt.Errorf("%s.canary_vs_baseline: needs query, the value compared between the canary and the baseline", key)
	}
	if a.Interval < 0 {
		return nil, fmt.Errorf("%s.interval: %s is negative", key, a.Interval)
	}
	m.interval = a.Interval
	if m.interval == 0 {
		m.interval = DefaultMetricInterval
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"count", a.Count}, {"failure_limit", a.FailureLimit}, {"inconclusive_limit", a.InconclusiveLimit}} {
		if f.v < 0 {
			return nil, fmt.Errorf("%s.%s: %d is negative", key, f.name, f.v)
		}
	}
	m.count = a.Count
	m.limits = analysis.Limits{Count: a.Count, FailureLimit: a.FailureLimit, InconclusiveLimit: a.InconclusiveLimit}
	if b != nil {
		worse := analysis.HigherIsWorse
		switch b.Worse {
		case "", "higher":
		case "lower":
			worse = analysis.LowerIsWorse
		default:
			return nil, fmt.Errorf("%s.canary_vs_baseline.worse: %q: want higher or lower", key, b.Worse)
		}
		if b.MaxRatio < 0 || b.Tolerance < 0 {
			return nil, fmt.Errorf("%s.canary_vs_baseline: max_ratio and tolerance cannot be negative", key)
		}
		if b.MaxRatio > 0 && b.MaxRatio < 1 {
			return nil, fmt.Errorf("%s.canary_vs_baseline.max_ratio: %g would fail a canary exactly as good as the baseline; use 1 or more", key, b.MaxRatio)
		}
		if b.MaxRatio > 0 {
			m.ratio = &analysis.Ratio{MaxRatio: b.MaxRatio, Tolerance: b.Tolerance, Worse: worse}
		}
		if b.MannWhitney != nil {
			alpha := b.MannWhitney.Alpha
			if alpha == 0 {
				alpha = 0.05
			}
			if alpha <= 0 || alpha >= 1 {
				return nil, fmt.Errorf("%s.canary_vs_baseline.mann_whitney.alpha: %g: want a level between 0 and 1 such as 0.05", key, alpha)
			}
			m.mw = &analysis.MannWhitney{Alpha: alpha, Worse: worse}
		}
		if m.ratio == nil && m.mw == nil {
			return nil, fmt.Errorf("%s.canary_vs_baseline: set max_ratio, mann_whitney or both", key)
		}
	}
	return m, nil
}

// measures says how long an analysis runs within a bake of d: Count
// intervals, or as many as fit in d (at least one).
func (m *metricCheck) measures(d time.Duration) int {
	if m.count > 0 {
		return m.count
	}
	return max(1, int(d/m.interval))
}

// observation is one target's view of one interval.
type observation struct {
	env analysis.Env
	err error
}

// source produces observations: for metrics checks, scrapes at the start
// and end of every interval; for prometheus checks, a query at the end.
type source interface {
	// start begins the first interval for the targets.
	start(ctx context.Context, targets []ops.Target)
	// observe ends the current interval for the targets and begins the
	// next; results are in the targets' order.
	observe(ctx context.Context, targets []ops.Target) []observation
}

// analyse runs the measurement loop of m for the updated target of req
// against req.Baseline, logging every measurement with its numbers, and
// returns the verdict.
func (h *Health) analyse(ctx context.Context, m *metricCheck, req ops.StepRequest, d time.Duration, sl *stepLog) (ops.MetricVerdict, error) {
	targets := append([]ops.Target{req.Target}, req.Baseline...)
	var src source
	if m.kind == "metrics" {
		src = &scraper{h: h, m: m, req: req, last: map[string]*analysis.Snapshot{}, errs: map[string]error{}}
	} else {
		src = &promRunner{h: h, m: m, req: req}
	}
	n := m.measures(d)
	limits := m.limits
	limits.Count = n
	loop := analysis.NewLoop(limits)
	verdict := ops.MetricVerdict{Check: m.name, Kind: m.kind, Target: req.Target.Name}
	if verdict.Check == "" {
		verdict.Check = m.kind
	}
	for _, b := range req.Baseline {
		verdict.Baseline = append(verdict.Baseline, b.Name)
	}
	if m.query != nil {
		verdict.Query = m.query.String()
	} else if m.kind == "prometheus" {
		verdict.Query = m.promSrc
	}
	sl.emit("daytwo", fmt.Sprintf("analysis %s: %d measurement(s) of %s against %d baseline target(s)", verdict.Check, n, fmtTimeout(m.interval), len(req.Baseline)))
	src.start(ctx, targets)
	var canarySamples, baseSamples []float64
	for i := 1; i <= n; i++ {
		if err := h.o.sleep(ctx, m.interval); err != nil {
			return verdict, err
		}
		obs := src.observe(ctx, targets)
		meas := m.judge(obs)
		if !math.IsNaN(meas.Value) {
			canarySamples = append(canarySamples, meas.Value)
		}
		for _, o := range obs[1:] {
			if v, err := m.value(o); err == nil {
				baseSamples = append(baseSamples, v)
			}
		}
		sl.emit("daytwo", fmt.Sprintf("analysis %s #%d/%d: %s", verdict.Check, i, n, meas))
		verdict.Measurements = append(verdict.Measurements, meas.String())
		if loop.Add(meas) {
			break
		}
	}
	v := loop.Verdict()
	if m.mw != nil && v.Outcome == analysis.Successful && len(req.Baseline) > 0 {
		o, reason := m.mw.Test(canarySamples, baseSamples)
		verdict.Comparison = reason
		if o != analysis.Successful {
			v.Outcome, v.Reason = o, reason
		}
	} else if m.mw != nil && len(req.Baseline) == 0 {
		verdict.Comparison = "mann-whitney: no baseline (every target is updated)"
	}
	verdict.Outcome, verdict.Reason, verdict.Tally = string(v.Outcome), v.Reason, v.Tally
	sl.emit("daytwo", "analysis verdict: "+verdict.String())
	if req.OnVerdict != nil {
		req.OnVerdict(verdict)
	}
	if !verdict.Passed() {
		return verdict, fmt.Errorf("%s", verdict.String())
	}
	return verdict, nil
}

// value is what one observation measures: the query's value, or the left
// side of the first condition.
func (m *metricCheck) value(o observation) (float64, error) {
	if o.err != nil {
		return math.NaN(), o.err
	}
	switch {
	case m.query != nil:
		return m.query.Eval(o.env)
	case m.kind == "prometheus":
		return *o.env.Result, nil
	}
	c := m.success
	if c == nil {
		c = m.failure
	}
	_, v, err := c.Eval(o.env)
	return v, err
}

// judge turns one interval's observations (the canary first, then the
// baseline) into a measurement.
func (m *metricCheck) judge(obs []observation) analysis.Measurement {
	canary := obs[0]
	meas := analysis.Measurement{Baseline: math.NaN()}
	var err error
	meas.Value, err = m.value(canary)
	cond := func(c *analysis.Condition) func(float64) (bool, error) {
		if c == nil {
			return nil
		}
		return func(v float64) (bool, error) {
			env := canary.env
			env.Result = &v
			ok, _, err := c.Eval(env)
			return ok, err
		}
	}
	abs, absReason := analysis.Judge(meas.Value, err, cond(m.success), cond(m.failure))
	if errors.Is(err, errInvalidQuery) {
		abs = analysis.Failed // a configuration error, not a missing number
	}
	if m.success == nil && m.failure == nil {
		abs, absReason = analysis.Skipped, ""
		if err != nil {
			abs, absReason = analysis.Inconclusive, err.Error()
		}
	}
	reasons := []string{}
	if absReason != "" {
		reasons = append(reasons, absReason)
	}
	base := analysis.Skipped
	if m.ratio != nil || m.mw != nil {
		switch {
		case len(obs) == 1:
			reasons = append(reasons, "no baseline: every target is updated")
		default:
			sum, n := 0.0, 0
			var berr error
			for _, o := range obs[1:] {
				v, err := m.value(o)
				if err != nil {
					berr = err
					break
				}
				sum += v
				n++
			}
			if berr != nil {
				base = analysis.Inconclusive
				reasons = append(reasons, "baseline: "+berr.Error())
			} else {
				meas.Baseline = sum / float64(n)
				if m.ratio != nil {
					var r string
					base, r = m.ratio.Compare(meas.Value, meas.Baseline)
					reasons = append(reasons, r)
				}
			}
		}
	}
	meas.Outcome = analysis.Combine(abs, base)
	meas.Reason = strings.Join(reasons, "; ")
	return meas
}

// scraper reads each target's text exposition at every interval boundary.
type scraper struct {
	h    *Health
	m    *metricCheck
	req  ops.StepRequest
	last map[string]*analysis.Snapshot
	errs map[string]error
}

func (s *scraper) start(ctx context.Context, targets []ops.Target) {
	for i, snap := range s.scrapeAll(ctx, targets) {
		s.last[targets[i].Name], s.errs[targets[i].Name] = snap.snap, snap.err
	}
}

type scraped struct {
	snap *analysis.Snapshot
	err  error
}

func (s *scraper) scrapeAll(ctx context.Context, targets []ops.Target) []scraped {
	out := make([]scraped, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			req := s.req
			req.Target = t
			snap, err := s.h.scrape(ctx, s.m, req)
			out[i] = scraped{snap: snap, err: err}
		})
	}
	wg.Wait()
	return out
}

func (s *scraper) observe(ctx context.Context, targets []ops.Target) []observation {
	now := s.scrapeAll(ctx, targets)
	out := make([]observation, len(targets))
	for i, t := range targets {
		prev, perr := s.last[t.Name], s.errs[t.Name]
		switch {
		case now[i].err != nil:
			out[i].err = fmt.Errorf("%s: %w", t.Name, now[i].err)
		case prev == nil:
			out[i].err = fmt.Errorf("%s: no scrape at the start of the interval: %w", t.Name, perr)
		default:
			out[i].env = analysis.Env{Window: &analysis.Window{Start: *prev, End: *now[i].snap}}
		}
		s.last[t.Name], s.errs[t.Name] = now[i].snap, now[i].err
	}
	return out
}

// scrape fetches and parses one target's /metrics.
func (h *Health) scrape(ctx context.Context, m *metricCheck, req ops.StepRequest) (*analysis.Snapshot, error) {
	raw, err := m.url.render(newData(h.env, req))
	if err != nil {
		return nil, fmt.Errorf("metrics url: %w", err)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("metrics url %q: want an absolute http:// or https:// URL", raw)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, m.timeout, &TimeoutError{After: m.timeout})
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", u.Redacted(), err)
	}
	hreq.Header.Set("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
	at := h.o.now()
	resp, err := h.o.client.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", u.Redacted(), causeOr(ctx, unwrapURLError(err)))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("scrape %s: status %d", u.Redacted(), resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err == nil && mt != "text/plain" {
			return nil, fmt.Errorf("scrape %s: content type %s, want the Prometheus text format (text/plain)", u.Redacted(), mt)
		}
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(io.LimitReader(resp.Body, maxScrape))
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", u.Redacted(), causeOr(ctx, err))
	}
	return &analysis.Snapshot{Time: at, Samples: flatten(fams)}, nil
}

// flatten turns metric families into samples, histograms and summaries
// into their _bucket/_sum/_count (and quantile) series, as Prometheus
// stores them.
func flatten(fams map[string]*dto.MetricFamily) []analysis.Sample {
	var out []analysis.Sample
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			add := func(n string, v float64, extra ...string) {
				ls := labels
				if len(extra) > 0 {
					ls = make(map[string]string, len(labels)+1)
					for k, v := range labels {
						ls[k] = v
					}
					ls[extra[0]] = extra[1]
				}
				out = append(out, analysis.Sample{Name: n, Labels: ls, Value: v})
			}
			switch {
			case m.Counter != nil:
				add(name, m.GetCounter().GetValue())
			case m.Gauge != nil:
				add(name, m.GetGauge().GetValue())
			case m.Untyped != nil:
				add(name, m.GetUntyped().GetValue())
			case m.Histogram != nil:
				hg := m.GetHistogram()
				inf := false
				for _, b := range hg.GetBucket() {
					inf = inf || math.IsInf(b.GetUpperBound(), 1)
					add(name+"_bucket", float64(b.GetCumulativeCount()), "le", formatLE(b.GetUpperBound()))
				}
				if !inf {
					add(name+"_bucket", float64(hg.GetSampleCount()), "le", "+Inf")
				}
				add(name+"_sum", hg.GetSampleSum())
				add(name+"_count", float64(hg.GetSampleCount()))
			case m.Summary != nil:
				sm := m.GetSummary()
				for _, q := range sm.GetQuantile() {
					add(name, q.GetValue(), "quantile", formatLE(q.GetQuantile()))
				}
				add(name+"_sum", sm.GetSampleSum())
				add(name+"_count", float64(sm.GetSampleCount()))
			}
		}
	}
	return out
}

func formatLE(v float64) string {
	if math.IsInf(v, 1) {
		return "+Inf"
	}
	return model.SampleValue(v).String()
}
