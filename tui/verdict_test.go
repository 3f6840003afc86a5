package tui

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/daytwo/daytwo/fixtures/demofleet"
	"github.com/daytwo/daytwo/ops"
)

// metricEnvironments is one ungated environment "web" of two demo fleet
// targets under load, deployed by a script that writes the fleet's state
// file, with an error-rate metric check during a 1s bake per batch.
func metricEnvironments(t *testing.T) func(dir string) []ops.Environment {
	return func(dir string) []ops.Environment {
		state := filepath.Join(dir, "fleet")
		fleet, err := demofleet.Start(context.Background(), demofleet.Options{
			StateDir: state,
			Targets:  []demofleet.Target{{Name: "w-1"}, {Name: "w-2"}}, WarmUp: -1, InitialVersion: "1.0.0", Load: 40,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fleet.Close() })
		urls := fleet.URLs()
		write := []string{
			"sh", "-c", `printf '{"target":"%s","version":"%s"}\n' "$1" "$2" > "$FLEET/$1.json.tmp" && mv "$FLEET/$1.json.tmp" "$FLEET/$1.json"`,
			"deploy", "{{ .Target.Name }}", "{{ .Version }}",
		}
		return []ops.Environment{{
			Name:    "web",
			Targets: []ops.Target{{Name: "w-1", Vars: map[string]string{"url": urls["w-1"]}}, {Name: "w-2", Vars: map[string]string{"url": urls["w-2"]}}},
			Deploy:  ops.DeploySpec{Command: write, Env: map[string]string{"FLEET": state}, Timeout: 10 * time.Second},
			Health: []ops.HealthCheck{{Name: "error-rate", Metrics: &ops.MetricsCheck{
				URL: "{{ .Target.Vars.url }}/metrics",
				MetricAnalysis: ops.MetricAnalysis{
					SuccessCondition: `rate(http_requests_total{code=~"5.."}) / rate(http_requests_total) < 0.05`,
					Interval:         300 * time.Millisecond, Count: 2,
				},
			}}},
			Strategy: ops.Strategy{BatchSize: ops.BatchSize{Count: 1}, MaxParallel: 1, Bake: time.Second},
		}}
	}
}

// TestMonitorShowsMetricVerdictsWithNumbers: the run monitor's log shows
// each metric verdict with its numbers — a pass for a healthy release, and
// for a -degraded one the failed verdict of the canary against its
// baseline, the measured error rate and the tally.
func TestMonitorShowsMetricVerdictsWithNumbers(t *testing.T) {
	f := newFixture(t, fixtureOptions{environments: metricEnvironments(t)})
	ctx := context.Background()
	run := func(version string) {
		t.Helper()
		p, err := f.svc.Propose(ctx, ops.ProposeRequest{Environment: "web", Version: version})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Run(ctx, ops.RunRequest{Update: p.Update.ID}); err != nil && !errors.Is(err, ops.ErrRunFailed) {
			t.Fatal(err)
		}
		f.svc.Wait()
	}
	run("1.1.0")
	tm := startConsole(t, f, testOptions(), 240, 40)
	waitFor(t, tm, "web")
	typeKeys(tm, "4")
	waitFor(t, tm, `metric verdict: metrics "error-rate" on w-1: successful (within limits)`, "#1 successful: 0 (success_condition holds)", "2 measured: 2 successful, 0 failed")

	run("1.2.0-degraded")
	typeKeys(tm, "L")
	waitFor(t, tm, `metric verdict: metrics "error-rate" on w-1: failed`, "against baseline w-2", "#1 failed: 0.", "success_condition does not hold",
		"0 successful, 1 failed")
}
