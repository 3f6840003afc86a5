// Package analysis is the verdict math of metric checks, as pure code: an
// expression language over scraped counters (rates from deltas), success
// and failure conditions, the measurement loop of Argo Rollouts'
// AnalysisRuns (interval, count, failure_limit, inconclusive_limit), and
// the comparison of updated targets with a baseline of targets not yet
// updated (a ratio, and a Mann-Whitney U test on per-interval samples, as
// Kayenta does). It does no I/O: callers scrape and query, and hand the
// numbers in.
package analysis

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Outcome is the result of one measurement or of a whole analysis.
type Outcome string

// Outcomes. Inconclusive is never a pass; Skipped is a check that had
// nothing to judge by (a baseline comparison without a baseline and no
// absolute condition), which the verdict says in so many words.
const (
	Successful   Outcome = "successful"
	Failed       Outcome = "failed"
	Inconclusive Outcome = "inconclusive"
	Skipped      Outcome = "skipped"
)

// Judge turns a measured value into an outcome by the Argo Rollouts rules:
// no value is inconclusive; a true failure condition fails (it wins over
// success); a true success condition succeeds; a false success condition
// fails when there is no failure condition and is inconclusive when there
// is one (neither condition holds); a false failure condition alone
// succeeds. With no condition at all the outcome is Skipped. The reason
// names the condition that decided, with the value.
func Judge(value float64, err error, success, failure func(v float64) (bool, error)) (Outcome, string) {
	if err != nil {
		return Inconclusive, err.Error()
	}
	if math.IsNaN(value) {
		return Inconclusive, "no value (NaN)"
	}
	if failure != nil {
		bad, err := failure(value)
		if err != nil {
			return Inconclusive, "failure_condition: " + err.Error()
		}
		if bad {
			return Failed, "failure_condition holds"
		}
	}
	if success != nil {
		good, err := success(value)
		if err != nil {
			return Inconclusive, "success_condition: " + err.Error()
		}
		switch {
		case good:
			return Successful, "success_condition holds"
		case failure != nil:
			return Inconclusive, "neither success_condition nor failure_condition holds"
		default:
			return Failed, "success_condition does not hold"
		}
	}
	if failure != nil {
		return Successful, "failure_condition does not hold"
	}
	return Skipped, "no condition"
}

// Combine merges the outcomes of the criteria of one measurement (the
// absolute conditions and the baseline comparison): any failure fails,
// then any inconclusive is inconclusive; skipped criteria are left out,
// and only skipped ones leave the measurement skipped.
func Combine(outcomes ...Outcome) Outcome {
	has := map[Outcome]bool{}
	for _, o := range outcomes {
		has[o] = true
	}
	switch {
	case has[Failed]:
		return Failed
	case has[Inconclusive]:
		return Inconclusive
	case has[Successful]:
		return Successful
	}
	return Skipped
}

// Measurement is one interval's judgement of one target.
type Measurement struct {
	Outcome Outcome
	// Value is the canary's value; Baseline the baseline's (NaN when
	// there is none).
	Value, Baseline float64
	Reason          string
}

// String renders the measurement with its numbers, e.g.
// "failed: 0.2 vs baseline 0 (ratio > max 2)".
func (m Measurement) String() string {
	var b strings.Builder
	b.WriteString(string(m.Outcome))
	b.WriteString(": ")
	b.WriteString(Num(m.Value))
	if !math.IsNaN(m.Baseline) {
		b.WriteString(" vs baseline " + Num(m.Baseline))
	}
	if m.Reason != "" {
		b.WriteString(" (" + m.Reason + ")")
	}
	return b.String()
}

// Num formats a value compactly: up to 4 significant digits.
func Num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// Limits are the measurement loop's settings, in Argo Rollouts' words.
type Limits struct {
	// Count is how many measurements the analysis takes (at least 1).
	Count int
	// FailureLimit is how many failed measurements are tolerated: one
	// more fails the analysis at once.
	FailureLimit int
	// InconclusiveLimit is how many inconclusive measurements are
	// tolerated: one more fails the analysis at once (inconclusive is
	// never a pass).
	InconclusiveLimit int
}

// Loop tallies measurements and decides when the analysis is over.
type Loop struct {
	Limits       Limits
	Measurements []Measurement
	counts       map[Outcome]int
}

// NewLoop starts a measurement loop.
func NewLoop(l Limits) *Loop {
	if l.Count < 1 {
		l.Count = 1
	}
	return &Loop{Limits: l, counts: map[Outcome]int{}}
}

// Add records a measurement and reports whether the analysis is over: the
// count is reached, or a limit is exceeded.
func (l *Loop) Add(m Measurement) (done bool) {
	l.Measurements = append(l.Measurements, m)
	l.counts[m.Outcome]++
	return len(l.Measurements) >= l.Limits.Count ||
		l.counts[Failed] > l.Limits.FailureLimit ||
		l.counts[Inconclusive] > l.Limits.InconclusiveLimit
}

// Count returns how many measurements had outcome o.
func (l *Loop) Count(o Outcome) int { return l.counts[o] }

// Verdict is an analysis's outcome with the tally behind it.
type Verdict struct {
	Outcome Outcome
	Reason  string
	Tally   string
}

// Passed reports whether the verdict lets a rollout go on: successful, or
// skipped for want of anything to judge by.
func (v Verdict) Passed() bool { return v.Outcome == Successful || v.Outcome == Skipped }

// Verdict decides the analysis: failed once failures exceed the limit,
// inconclusive once inconclusive measurements exceed theirs or when no
// measurement succeeded (a run of only tolerated inconclusive
// measurements is not a pass), skipped when every measurement was, and
// successful otherwise.
func (l *Loop) Verdict() Verdict {
	v := Verdict{Tally: fmt.Sprintf("%d measured: %d successful, %d failed, %d inconclusive (failure_limit %d, inconclusive_limit %d)",
		len(l.Measurements), l.counts[Successful], l.counts[Failed], l.counts[Inconclusive], l.Limits.FailureLimit, l.Limits.InconclusiveLimit)}
	switch {
	case l.counts[Failed] > l.Limits.FailureLimit:
		v.Outcome, v.Reason = Failed, fmt.Sprintf("%d failed measurement(s), more than failure_limit %d", l.counts[Failed], l.Limits.FailureLimit)
	case l.counts[Inconclusive] > l.Limits.InconclusiveLimit:
		v.Outcome, v.Reason = Inconclusive, fmt.Sprintf("%d inconclusive measurement(s), more than inconclusive_limit %d", l.counts[Inconclusive], l.Limits.InconclusiveLimit)
	case len(l.Measurements) == 0:
		v.Outcome, v.Reason = Inconclusive, "no measurement was taken"
	case l.counts[Skipped] == len(l.Measurements):
		v.Outcome, v.Reason = Skipped, "nothing to judge by"
	case l.counts[Successful] == 0:
		v.Outcome, v.Reason = Inconclusive, "no measurement succeeded"
	default:
		v.Outcome, v.Reason = Successful, "within limits"
	}
	return v
}
