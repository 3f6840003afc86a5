package exec

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/daytwo/daytwo/ops"
)

// metricTarget is a real /metrics endpoint (client_golang's registry and
// handler) whose traffic the test drives: every tick adds ok requests and
// errors.
type metricTarget struct {
	srv      *httptest.Server
	requests *prometheus.CounterVec
	latency  prometheus.Histogram
	ok, bad  float64
}

func newMetricTarget(t *testing.T, ok, bad float64) *metricTarget {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := &metricTarget{
		ok: ok, bad: bad,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total", Help: "requests"}, []string{"code"}),
		latency:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: "http_request_duration_seconds", Help: "latency", Buckets: []float64{0.01, 0.1, 1}}),
	}
	reg.MustRegister(m.requests, m.latency)
	m.requests.WithLabelValues("200").Add(1000) // history before the bake
	m.srv = httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *metricTarget) tick() {
	m.requests.WithLabelValues("200").Add(m.ok)
	if m.bad > 0 {
		m.requests.WithLabelValues("500").Add(m.bad)
	}
	for range 10 {
		m.latency.Observe(0.05)
	}
}

func (m *metricTarget) target(name string) ops.Target {
	return ops.Target{Name: name, Vars: map[string]string{"url": m.srv.URL}}
}

// trafficClock advances time on every sleep and, on sleeps of the metric
// interval, drives one interval of traffic on every target.
type trafficClock struct {
	*fakeClock
	interval time.Duration
	mu       sync.Mutex
	targets  []*metricTarget
}

func (c *trafficClock) sleep(ctx context.Context, d time.Duration) error {
	if d == c.interval {
		c.mu.Lock()
		for _, t := range c.targets {
			t.tick()
		}
		c.mu.Unlock()
	}
	return c.fakeClock.sleep(ctx, d)
}

const errorRatio = `rate(http_requests_total{code=~"5.."}) / rate(http_requests_total)`

func TestMetricsCheckBake(t *testing.T) {
	healthy := func(t *testing.T) *metricTarget { return newMetricTarget(t, 100, 0) }
	degraded := func(t *testing.T) *metricTarget { return newMetricTarget(t, 80, 20) }
	tests := map[string]struct {
		canary   func(*testing.T) *metricTarget
		baseline []func(*testing.T) *metricTarget
		analysis ops.MetricAnalysis
		down     bool // the canary's /metrics is unreachable
		want     string
		wantErr  bool
		evidence []string
	}{
		"degraded canary against a healthy baseline": {
			canary: degraded, baseline: []func(*testing.T) *metricTarget{healthy, healthy},
			analysis: ops.MetricAnalysis{Query: errorRatio, Count: 3, CanaryVsBaseline: &ops.BaselineComparison{MaxRatio: 2, Tolerance: 0.01}},
			want:     "failed", wantErr: true,
			evidence: []string{"#1 failed: 0.2 vs baseline 0", "+Inf× the baseline, more than max_ratio 2", "against baseline b1, b2"},
		},
		"healthy canary": {
			canary: healthy, baseline: []func(*testing.T) *metricTarget{healthy},
			analysis: ops.MetricAnalysis{Query: errorRatio, SuccessCondition: "result < 0.01", Count: 3, CanaryVsBaseline: &ops.BaselineComparison{MaxRatio: 2}},
			want:     "successful",
			evidence: []string{"#3 successful: 0 vs baseline 0", "3 measured: 3 successful"},
		},
		"absolute threshold, no baseline": {
			canary:   degraded,
			analysis: ops.MetricAnalysis{SuccessCondition: errorRatio + " < 0.01", Count: 2},
			want:     "failed", wantErr: true,
			evidence: []string{"#1 failed: 0.2 (success_condition does not hold)", "with no baseline"},
		},
		"last batch: baseline comparison has no baseline, threshold still judges": {
			canary:   healthy,
			analysis: ops.MetricAnalysis{Query: errorRatio, SuccessCondition: "result < 0.01", Count: 2, CanaryVsBaseline: &ops.BaselineComparison{MaxRatio: 2}},
			want:     "successful",
			evidence: []string{"no baseline: every target is updated"},
		},
		"mann-whitney catches the canary": {
			canary: degraded, baseline: []func(*testing.T) *metricTarget{healthy, healthy},
			analysis: ops.MetricAnalysis{Query: errorRatio, Count: 3, CanaryVsBaseline: &ops.BaselineComparison{MaxRatio: 100, Tolerance: 1, MannWhitney: &ops.MannWhitneyTest{}}},
			want:     "failed", wantErr: true,
			evidence: []string{"mann-whitney U=18 p=0.0119 (n=3 vs 6", "significantly worse"},
		},
		"unreachable target is inconclusive, never a pass": {
			canary: healthy, down: true,
			analysis: ops.MetricAnalysis{SuccessCondition: errorRatio + " < 0.01", Count: 3, InconclusiveLimit: 1},
			want:     "inconclusive", wantErr: true,
			evidence: []string{"#1 inconclusive", "2 inconclusive measurement(s), more than inconclusive_limit 1"},
		},
		"unknown metric is inconclusive": {
			canary:   healthy,
			analysis: ops.MetricAnalysis{SuccessCondition: `rate(http_request_total) > 1`, Count: 1},
			want:     "inconclusive", wantErr: true,
			evidence: []string{"the target exports no series named http_request_total"},
		},
		"unknown label is inconclusive": {
			canary:   healthy,
			analysis: ops.MetricAnalysis{SuccessCondition: `rate(http_requests_total{status=~"5.."}) < 1`, Count: 1},
			want:     "inconclusive", wantErr: true,
			evidence: []string{"no series of http_requests_total has a label status (its labels: code)"},
		},
		"latency quantile": {
			canary:   healthy,
			analysis: ops.MetricAnalysis{SuccessCondition: `histogram_quantile(0.99, rate(http_request_duration_seconds_bucket)) < 0.2`, Count: 1},
			want:     "successful",
			evidence: []string{"successful: 0.0991"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			const interval = 7 * time.Second
			clock := &trafficClock{fakeClock: newFakeClock(), interval: interval}
			canary := tc.canary(t)
			clock.targets = append(clock.targets, canary)
			req := ops.StepRequest{Environment: "prod", Target: canary.target("c1"), Version: "1.2.0"}
			if tc.down {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr := ln.Addr().String()
				ln.Close()
				req.Target.Vars["url"] = "http://" + addr
			}
			for i, b := range tc.baseline {
				m := b(t)
				clock.targets = append(clock.targets, m)
				req.Baseline = append(req.Baseline, m.target("b"+string(rune('1'+i))))
			}
			a := tc.analysis
			a.Interval = interval
			h, err := NewHealth("prod", []ops.HealthCheck{{
				Name: "errors", Timeout: time.Second,
				Metrics: &ops.MetricsCheck{URL: "{{ .Target.Vars.url }}/metrics", MetricAnalysis: a},
			}},
				WithSleep(clock.sleep), WithClock(clock.now))
			if err != nil {
				t.Fatal(err)
			}
			var verdicts []ops.MetricVerdict
			req.OnVerdict = func(v ops.MetricVerdict) { verdicts = append(verdicts, v) }
			var rec recorder
			ev, err := h.Bake(context.Background(), req, time.Second, rec.sink)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v (evidence %q)", err, tc.wantErr, ev)
			}
			if len(verdicts) != 1 || verdicts[0].Outcome != tc.want {
				t.Fatalf("verdicts = %+v, want one %s", verdicts, tc.want)
			}
			text := ev
			if err != nil {
				text = err.Error()
			}
			for _, want := range tc.evidence {
				if !strings.Contains(text, want) {
					t.Errorf("evidence %q lacks %q", text, want)
				}
			}
			log := strings.Join(rec.stream("daytwo"), "\n")
			if !strings.Contains(log, "analysis verdict: metrics \"errors\" on c1: "+tc.want) {
				t.Errorf("run log lacks the verdict:\n%s", log)
			}
		})
	}
}

func TestMetricCheckConfigErrors(t *testing.T) {
	url := "http://127.0.0.1:1/metrics"
	tests := map[string]struct {
		hc   ops.HealthCheck
		want string
	}{
		"bad condition": {
			hc:   ops.HealthCheck{Metrics: &ops.MetricsCheck{URL: url, MetricAnalysis: ops.MetricAnalysis{SuccessCondition: `rate(x{code=~"5.."}) <`}}},
			want: `health[0].metrics.success_condition: "rate(x{code=~\"5..\"}) <": at column 23: expression ends too early`,
		},
		"unknown function": {
			hc:   ops.HealthCheck{Metrics: &ops.MetricsCheck{URL: url, MetricAnalysis: ops.MetricAnalysis{Query: `irate(x)`, SuccessCondition: "result < 1"}}},
			want: `health[0].metrics.query: "irate(x)": at column 1: unknown function "irate" (supported: rate, increase, histogram_quantile)`,
		},
		"nothing to judge by": {
			hc:   ops.HealthCheck{Metrics: &ops.MetricsCheck{URL: url, MetricAnalysis: ops.MetricAnalysis{Query: `rate(x)`}}},
			want: `health[0].metrics: set success_condition, failure_condition or canary_vs_baseline`,
		},
		"baseline without query": {
			hc:   ops.HealthCheck{Metrics: &ops.MetricsCheck{URL: url, MetricAnalysis: ops.MetricAnalysis{SuccessCondition: "rate(x) < 1", CanaryVsBaseline: &ops.BaselineComparison{MaxRatio: 2}}}},
			want: `health[0].metrics.canary_vs_baseline: needs query`,
		},
		"ratio below one": {
			hc:   ops.HealthCheck{Metrics: &ops.MetricsCheck{URL: url, MetricAnalysis: ops.MetricAnalysis{Query: "rate(x)", CanaryVsBaseline: &ops.BaselineComparison{MaxRatio: 0.5}}}},
			want: `health[0].metrics.canary_vs_baseline.max_ratio: 0.5 would fail`,
		},
		"worse": {
			hc:   ops.HealthCheck{Metrics: &ops.MetricsCheck{URL: url, MetricAnalysis: ops.MetricAnalysis{Query: "rate(x)", CanaryVsBaseline: &ops.BaselineComparison{MaxRatio: 2, Worse: "up"}}}},
			want: `health[0].metrics.canary_vs_baseline.worse: "up": want higher or lower`,
		},
		"no url": {
			hc:   ops.HealthCheck{Metrics: &ops.MetricsCheck{MetricAnalysis: ops.MetricAnalysis{SuccessCondition: "rate(x) < 1"}}},
			want: `health[0].metrics.url: must name`,
		},
		"prometheus selector in condition": {
			hc:   ops.HealthCheck{Prometheus: &ops.PrometheusCheck{Address: "http://127.0.0.1:9090", MetricAnalysis: ops.MetricAnalysis{Query: "up", SuccessCondition: "up > 0"}}},
			want: `health[0].prometheus.success_condition: "up > 0": a prometheus condition compares result`,
		},
		"prometheus unbalanced": {
			hc:   ops.HealthCheck{Prometheus: &ops.PrometheusCheck{Address: "http://127.0.0.1:9090", MetricAnalysis: ops.MetricAnalysis{Query: "sum(rate(x[1m])", SuccessCondition: "result > 0"}}},
			want: `health[0].prometheus.query: "sum(rate(x[1m])": unclosed '('`,
		},
		"prometheus address": {
			hc:   ops.HealthCheck{Prometheus: &ops.PrometheusCheck{Address: "localhost:9090", MetricAnalysis: ops.MetricAnalysis{Query: "up", SuccessCondition: "result > 0"}}},
			want: `health[0].prometheus.address: "localhost:9090": want the server's absolute`,
		},
		"negative limit": {
			hc:   ops.HealthCheck{Metrics: &ops.MetricsCheck{URL: url, MetricAnalysis: ops.MetricAnalysis{SuccessCondition: "rate(x) < 1", FailureLimit: -1}}},
			want: `health[0].metrics.failure_limit: -1 is negative`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := NewHealth("prod", []ops.HealthCheck{tc.hc})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if verr := ValidateMetricCheck("health[0]", tc.hc); verr == nil || !strings.Contains(verr.Error(), tc.want) {
				t.Fatalf("ValidateMetricCheck: got %v, want %q", verr, tc.want)
			}
		})
	}
}

func TestPrometheusCheckUnreachableIsInconclusive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	clock := newFakeClock()
	h, err := NewHealth("prod", []ops.HealthCheck{{Name: "prom", Timeout: time.Second, Prometheus: &ops.PrometheusCheck{
		Address:        "http://" + addr,
		MetricAnalysis: ops.MetricAnalysis{Query: `sum(rate(http_requests_total{instance="{{ .Target.Name }}"}[1m]))`, SuccessCondition: "result < 0.01", Count: 2, Interval: time.Second},
	}}}, WithSleep(clock.sleep), WithClock(clock.now), WithHTTPClient(&http.Client{}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Bake(context.Background(), ops.StepRequest{Environment: "prod", Target: ops.Target{Name: "c1"}, Version: "1.0.0"}, time.Second, (&recorder{}).sink)
	if err == nil || !strings.Contains(err.Error(), "inconclusive") || !strings.Contains(err.Error(), "no data") {
		t.Fatalf("got %v, want an inconclusive verdict for an unreachable Prometheus", err)
	}
}
