package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/daytwo/daytwo/ops"
)

var errRatioRE = regexp.MustCompile(`#1 failed: ([0-9.]+) vs baseline 0 \(`)

// TestDemoMetricAnalysisRollsBackDegraded runs the headless demo through
// the binary: the -degraded release passes its health checks on the
// canary, the metric analysis fails it against the baseline with its
// numbers, the rollout rolls back and the change closes unsuccessful with
// the verdict in its work notes. Every verdict is in the audit log.
func TestDemoMetricAnalysisRollsBackDegraded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	r := daytwo(t, nil, "demo", "--headless", "--approve-after", "1s", "--dir", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "demo story passed") {
		t.Fatalf("demo --headless: code %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"propose 1.2.0-degraded to production",
		`prd-1 FAILED during bake: exec: bake of prd-1: metrics "error-rate" on prd-1: failed`,
		"against baseline prd-2, prd-3",
		"CHG0000002 closed unsuccessful, with the verdict's numbers in its work notes",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
	// The canary fails about one request in five; the interval need not
	// hold whole cycles of five, so the measured ratio is near 0.2.
	m := errRatioRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("demo output has no measured error ratio against the baseline:\n%s", r.stdout)
	}
	if v, _ := strconv.ParseFloat(m[1], 64); v < 0.1 || v > 0.3 {
		t.Errorf("measured error ratio %v, want about 0.2", v)
	}
	env := []string{"DAYTWO_CONFIG=" + filepath.Join(dir, "daytwo.yaml"), "DAYTWO_SN_PASSWORD=daytwo"}
	a := daytwo(t, env, "audit", "list", "--env", "production", "-o", "json")
	if a.code != 0 {
		t.Fatalf("audit list: %+v", a)
	}
	var events []ops.Event
	if err := json.Unmarshal([]byte(a.stdout), &events); err != nil {
		t.Fatalf("audit list -o json: %v\n%s", err, a.stdout)
	}
	var passed, failed int
	for _, e := range events {
		if e.Action != "analysis.verdict" {
			continue
		}
		switch e.Result {
		case "successful":
			passed++
		case "failed":
			failed++
			ms, _ := e.Detail["measurements"].([]any)
			if e.Subject != "prd-1" || e.Detail["baseline"] != "prd-2,prd-3" || len(ms) == 0 || !errRatioRE.MatchString("#1 "+ms[0].(string)) {
				t.Errorf("failed verdict without its numbers: %+v", e)
			}
		}
	}
	// 1.1.0 passes on prd-1 and prd-2 (prd-3 has no baseline, judged by the
	// threshold alone, and passes too); 1.2.0-degraded fails on prd-1.
	if passed != 3 || failed != 1 {
		t.Errorf("analysis.verdict events: %d successful, %d failed; want 3 and 1", passed, failed)
	}
}
