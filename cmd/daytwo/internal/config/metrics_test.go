package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const metricEnv = `
store: {path: d.db}
environments:
  - name: production
    targets: [{name: prd-1, vars: {url: "http://127.0.0.1:1"}}, {name: prd-2, vars: {url: "http://127.0.0.1:2"}}]
    deploy: {command: [/bin/true]}
    strategy: {batch_size: 1, bake: %s}
    health:
%s
`

func loadMetricConfig(t *testing.T, bake, health string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "daytwo.yaml")
	body := strings.Replace(strings.Replace(metricEnv, "%s", bake, 1), "%s", health, 1)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv, environ := noEnv()
	return Load(Source{File: path, Getenv: getenv, Environ: environ})
}

func TestMetricCheckKeysLoad(t *testing.T) {
	cfg, err := loadMetricConfig(t, "3s", `
      - name: error-rate
        metrics:
          url: "{{ .Target.Vars.url }}/metrics"
          query: 'rate(http_requests_total{code=~"5.."}) / rate(http_requests_total)'
          success_condition: result < 0.05
          interval: 1s
          count: 3
          failure_limit: 1
          inconclusive_limit: 2
          canary_vs_baseline: {max_ratio: 2.0, tolerance: 0.01, worse: higher, mann_whitney: {alpha: 0.05}}
      - name: prom
        prometheus:
          address: http://127.0.0.1:9090
          query: 'sum(rate(http_requests_total{instance="{{ .Target.Name }}",code=~"5.."}[1m]))'
          failure_condition: result > 1`)
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.Environments[0].Health
	m := h[0].Metrics
	if m == nil || m.URL != "{{ .Target.Vars.url }}/metrics" || m.Count != 3 || m.FailureLimit != 1 || m.InconclusiveLimit != 2 ||
		m.Interval.String() != "1s" || m.SuccessCondition != "result < 0.05" {
		t.Fatalf("metrics check = %+v", m)
	}
	if b := m.CanaryVsBaseline; b == nil || b.MaxRatio != 2 || b.Tolerance != 0.01 || b.Worse != "higher" || b.MannWhitney == nil || b.MannWhitney.Alpha != 0.05 {
		t.Fatalf("canary_vs_baseline = %+v", m.CanaryVsBaseline)
	}
	if p := h[1].Prometheus; p == nil || p.Address != "http://127.0.0.1:9090" || p.FailureCondition != "result > 1" {
		t.Fatalf("prometheus check = %+v", p)
	}
}

func TestMetricCheckConfigProblems(t *testing.T) {
	tests := map[string]struct {
		bake, health, want string
	}{
		"bad expression": {
			bake: "3s", health: `
      - metrics: {url: "{{ .Target.Vars.url }}/metrics", success_condition: 'rate(http_requests_total{code=~"5.."} < 0.01'}`,
			want: `environments[0].health[0].metrics.success_condition: "rate(http_requests_total{code=~\"5..\"} < 0.01": at column 39: want ")"`,
		},
		"no bake": {
			bake: "0s", health: `
      - metrics: {url: "{{ .Target.Vars.url }}/metrics", success_condition: 'rate(x) < 1'}`,
			want: `environments[0].health[0].metrics: metric checks run during each batch's bake and the verification window: set strategy.bake`,
		},
		"unknown key": {
			bake: "3s", health: `
      - metrics: {url: "{{ .Target.Vars.url }}/metrics", success_condition: 'rate(x) < 1', failureLimit: 2}`,
			want: `failureLimit`,
		},
		"both kinds": {
			bake: "3s", health: `
      - metrics: {url: "{{ .Target.Vars.url }}/metrics", success_condition: 'rate(x) < 1'}
        prometheus: {address: "http://127.0.0.1:9090", query: up, success_condition: result > 0}`,
			want: `environments[0].health[0]: set exactly one of http, tcp, command, ansible, metrics or prometheus`,
		},
		"missing target var": {
			bake: "3s", health: `
      - metrics: {url: "{{ .Target.Vars.metrics }}/metrics", success_condition: 'rate(x) < 1'}`,
			want: `environments[0].health[0].metrics.url`,
		},
		"prometheus condition over series": {
			bake: "3s", health: `
      - prometheus: {address: "http://127.0.0.1:9090", query: up, success_condition: up > 0}`,
			want: `environments[0].health[0].prometheus.success_condition: "up > 0": a prometheus condition compares result`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := loadMetricConfig(t, tc.bake, tc.health)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
