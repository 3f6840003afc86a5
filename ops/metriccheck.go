package ops

import (
	"fmt"
	"strings"
	"time"
)

// MetricAnalysis is what the metric check kinds share, in Argo Rollouts'
// vocabulary: a query, the conditions that judge its value, and the
// measurement loop (interval, count, failure_limit, inconclusive_limit).
// A metric check runs during each batch's bake; a measurement without
// data is inconclusive, never a pass.
type MetricAnalysis struct {
	// Query is the value judged: for metrics checks an expression of the
	// metrics expression language (see ops/analysis), for prometheus
	// checks PromQL. Optional for metrics checks whose conditions hold the
	// whole expression.
	Query string `koanf:"query" json:"query,omitempty"`
	// SuccessCondition and FailureCondition are comparisons, over result
	// (the query's value) or, for metrics checks, over scraped series.
	SuccessCondition string `koanf:"success_condition" json:"success_condition,omitempty"`
	FailureCondition string `koanf:"failure_condition" json:"failure_condition,omitempty"`
	// Interval is the length of one measurement (default 10s).
	Interval time.Duration `koanf:"interval" json:"interval,omitempty"`
	// Count is how many measurements are taken (default: as many
	// intervals as fit in the bake, at least one). A bake lasts at least
	// Count intervals.
	Count int `koanf:"count" json:"count,omitempty"`
	// FailureLimit and InconclusiveLimit are how many failed and
	// inconclusive measurements are tolerated (default 0).
	FailureLimit      int `koanf:"failure_limit" json:"failure_limit,omitempty"`
	InconclusiveLimit int `koanf:"inconclusive_limit" json:"inconclusive_limit,omitempty"`
	// CanaryVsBaseline compares each updated target with the targets not
	// yet updated.
	CanaryVsBaseline *BaselineComparison `koanf:"canary_vs_baseline" json:"canary_vs_baseline,omitempty"`
}

// BaselineComparison compares the query's value on an updated target with
// its mean over the baseline (the targets of later batches, still on the
// previous release).
type BaselineComparison struct {
	// MaxRatio fails a measurement whose canary value is worse than the
	// baseline's by more than this factor (0: no ratio test).
	MaxRatio float64 `koanf:"max_ratio" json:"max_ratio,omitempty"`
	// Tolerance is an absolute difference that always passes (a baseline
	// of 0 errors against a canary with very few).
	Tolerance float64 `koanf:"tolerance" json:"tolerance,omitempty"`
	// Worse is "higher" (errors, latency; the default) or "lower".
	Worse string `koanf:"worse" json:"worse,omitempty"`
	// MannWhitney, if set, tests the canary's per-interval samples
	// against the baseline's at the end of the analysis.
	MannWhitney *MannWhitneyTest `koanf:"mann_whitney" json:"mann_whitney,omitempty"`
}

// MannWhitneyTest is a one-sided Mann-Whitney U test's setting.
type MannWhitneyTest struct {
	// Alpha is the significance level (default 0.05).
	Alpha float64 `koanf:"alpha" json:"alpha,omitempty"`
}

// MetricsCheck scrapes each target's Prometheus text exposition at the
// start and end of every interval and judges rates from counter deltas.
type MetricsCheck struct {
	// URL is the target's /metrics URL, templated like http checks.
	URL            string `koanf:"url" json:"url"`
	MetricAnalysis `koanf:",squash"`
}

// PrometheusCheck runs a PromQL query on a Prometheus server at the end of
// every interval, templated with .Service, .Environment, .Target and
// .Version.
type PrometheusCheck struct {
	// Address is the Prometheus server's base URL.
	Address        string `koanf:"address" json:"address"`
	MetricAnalysis `koanf:",squash"`
}

// VerifyWindow is a verification window after the last batch: every
// target is checked (health and metric checks, no baseline) for Window
// before the run is declared successful.
type VerifyWindow struct {
	Window time.Duration `koanf:"window" json:"window"`
	// OnFailure is what a failed verification does: "rollback" (the
	// default: roll every target back, close the change unsuccessful,
	// open an incident), "incident" (keep the release, open an incident
	// naming the failing checks) or "alert" (keep the release, record the
	// failure in the run log and the audit log).
	OnFailure string `koanf:"on_failure" json:"on_failure,omitempty"`
	// AfterClose, on a gated environment, runs the window after the run:
	// the change is closed successful when the last batch ends and the
	// window then watches the release; a failure is unplanned work,
	// handled through an emergency change linked to the original
	// (verify_after_close.go). False (the default) runs the window inside
	// the run, under the original change. No effect without
	// requires_change or in a bundle.
	AfterClose bool `koanf:"after_close" json:"after_close,omitempty"`
}

// MetricVerdict is one metric check's verdict on one updated target, with
// the numbers behind it.
type MetricVerdict struct {
	Check        string   `json:"check"`
	Kind         string   `json:"kind"`
	Target       string   `json:"target"`
	Baseline     []string `json:"baseline,omitempty"`
	Query        string   `json:"query,omitempty"`
	Outcome      string   `json:"outcome"`
	Reason       string   `json:"reason"`
	Tally        string   `json:"tally"`
	Measurements []string `json:"measurements,omitempty"`
	// Comparison is the end-of-analysis baseline test, if any.
	Comparison string `json:"comparison,omitempty"`
}

// Passed reports whether the verdict lets the rollout go on.
func (v MetricVerdict) Passed() bool { return v.Outcome == "successful" || v.Outcome == "skipped" }

// String renders the verdict on one line, numbers included.
func (v MetricVerdict) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q on %s: %s (%s)", v.Kind, v.Check, v.Target, v.Outcome, v.Reason)
	if len(v.Baseline) > 0 {
		fmt.Fprintf(&b, " against baseline %s", strings.Join(v.Baseline, ", "))
	} else {
		b.WriteString(" with no baseline")
	}
	if v.Query != "" {
		fmt.Fprintf(&b, "; %s", v.Query)
	}
	for i, m := range v.Measurements {
		fmt.Fprintf(&b, "; #%d %s", i+1, m)
	}
	if v.Comparison != "" {
		fmt.Fprintf(&b, "; %s", v.Comparison)
	}
	fmt.Fprintf(&b, "; %s", v.Tally)
	return b.String()
}
