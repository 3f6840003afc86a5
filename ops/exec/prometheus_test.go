package exec

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

func freeLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startPrometheus runs Debian's prometheus on a free loopback port,
// scraping the given targets (as instance labels c1, b1, ...) every
// second, and returns its URL once it has data for every target.
func startPrometheus(t *testing.T, targets map[string]string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI: prometheus is not installed (apt-get install prometheus)")
		}
		t.Skip("SKIPPED LOUDLY: no prometheus on PATH; apt-get install -y prometheus to run this test")
	}
	dir := t.TempDir()
	var sc strings.Builder
	sc.WriteString("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n")
	for name, u := range targets {
		pu, _ := url.Parse(u)
		fmt.Fprintf(&sc, "  - job_name: %s\n    static_configs: [{targets: [%q], labels: {target: %s}}]\n", name, pu.Host, name)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(sc.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopback(t)
	cmd := exec.Command(bin, "--config.file", cfg, "--storage.tsdb.path", filepath.Join(dir, "data"), "--web.listen-address", addr)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		// Ready once every target has been scraped at least twice (a rate
		// needs two samples).
		q := url.QueryEscape(`count(count_over_time(up[1m]) >= 3)`)
		resp, err := http.Get(base + "/api/v1/query?query=" + q)
		if err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if strings.Contains(b.String(), `"value":[`) && strings.Contains(b.String(), fmt.Sprintf(`,"%d"]`, len(targets))) {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus never had data for %d targets; logs:\n%s", len(targets), logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestPrometheusCheckWithRealServer has a real Prometheus scrape a
// degraded canary and a healthy baseline (real client_golang endpoints
// with traffic) and the prometheus check judge them through the v1 API.
func TestPrometheusCheckWithRealServer(t *testing.T) {
	canary, base := newMetricTarget(t, 80, 20), newMetricTarget(t, 100, 0)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // steady traffic while Prometheus scrapes
		defer close(done)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				canary.tick()
				base.tick()
			}
		}
	}()
	defer func() { close(stop); <-done }()
	prom := startPrometheus(t, map[string]string{"c1": canary.srv.URL, "b1": base.srv.URL})

	// PromQL answers nothing, not 0, while a target has no 5xx series:
	// "or vector(0)" says that none means zero.
	query := `(sum(rate(http_requests_total{target="{{ .Target.Name }}",code=~"5.."}[5s])) or vector(0)) / sum(rate(http_requests_total{target="{{ .Target.Name }}"}[5s]))`
	check := func(t *testing.T, a ops.MetricAnalysis) (ops.MetricVerdict, error) {
		t.Helper()
		a.Query, a.Interval, a.Count = query, 200*time.Millisecond, 2
		h, err := NewHealth("prod", []ops.HealthCheck{{
			Name: "prom-errors", Timeout: 5 * time.Second,
			Prometheus: &ops.PrometheusCheck{Address: prom, MetricAnalysis: a},
		}})
		if err != nil {
			t.Fatal(err)
		}
		var v ops.MetricVerdict
		req := ops.StepRequest{
			Environment: "prod", Target: ops.Target{Name: "c1"}, Version: "1.2.0",
			Baseline: []ops.Target{{Name: "b1"}}, OnVerdict: func(mv ops.MetricVerdict) { v = mv },
		}
		_, err = h.Bake(context.Background(), req, 100*time.Millisecond, (&recorder{}).sink)
		return v, err
	}
	v, err := check(t, ops.MetricAnalysis{FailureCondition: "result > 0.1", CanaryVsBaseline: &ops.BaselineComparison{MaxRatio: 2, Tolerance: 0.01}})
	if err == nil || v.Outcome != "failed" || !strings.Contains(v.Measurements[0], "vs baseline 0") {
		t.Fatalf("degraded canary: verdict %+v, err %v", v, err)
	}
	t.Logf("verdict: %s", v)

	// Judged by the baseline, the healthy target passes.
	h, err := NewHealth("prod", []ops.HealthCheck{{
		Name: "prom-errors", Timeout: 5 * time.Second,
		Prometheus: &ops.PrometheusCheck{Address: prom, MetricAnalysis: ops.MetricAnalysis{Query: query, SuccessCondition: "result < 0.01", Interval: 200 * time.Millisecond, Count: 2}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := h.Bake(context.Background(), ops.StepRequest{Environment: "prod", Target: ops.Target{Name: "b1"}, Version: "1.0.0"}, 0, (&recorder{}).sink); err != nil {
		t.Fatalf("healthy target: %v", err)
	} else if !strings.Contains(ev, "successful") {
		t.Fatalf("healthy target evidence: %s", ev)
	}

	// No data for a target Prometheus does not know: inconclusive.
	h, err = NewHealth("prod", []ops.HealthCheck{{Prometheus: &ops.PrometheusCheck{
		Address:        prom,
		MetricAnalysis: ops.MetricAnalysis{Query: query, SuccessCondition: "result < 0.01", Interval: 100 * time.Millisecond, Count: 1},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Bake(context.Background(), ops.StepRequest{Environment: "prod", Target: ops.Target{Name: "nobody"}, Version: "1.0.0"}, 0, (&recorder{}).sink); err == nil ||
		!strings.Contains(err.Error(), "inconclusive") {
		t.Fatalf("unknown target: %v, want inconclusive", err)
	}

	// Bad PromQL fails with the server's parser message, not inconclusive.
	h, err = NewHealth("prod", []ops.HealthCheck{{Prometheus: &ops.PrometheusCheck{
		Address:        prom,
		MetricAnalysis: ops.MetricAnalysis{Query: `sum(rate(http_requests_total[5x]))`, SuccessCondition: "result < 0.01", Interval: 100 * time.Millisecond, Count: 1},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Bake(context.Background(), ops.StepRequest{Environment: "prod", Target: ops.Target{Name: "c1"}, Version: "1.0.0"}, 0, (&recorder{}).sink); err == nil ||
		!strings.Contains(err.Error(), "invalid PromQL") || !strings.Contains(err.Error(), ": failed") {
		t.Fatalf("bad PromQL: %v, want a failed verdict naming invalid PromQL", err)
	}
}
