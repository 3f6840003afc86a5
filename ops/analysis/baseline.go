package analysis

import (
	"fmt"
	"math"
	"slices"
)

// Direction says which way a metric gets worse.
type Direction int

// Directions: HigherIsWorse for error rates and latencies (the default),
// LowerIsWorse for throughput or success rates.
const (
	HigherIsWorse Direction = iota
	LowerIsWorse
)

// Ratio compares one interval's canary value with the baseline's:
// the canary fails when it is worse than the baseline by more than
// MaxRatio times, unless the two differ by no more than Tolerance (so a
// baseline of exactly 0 errors does not fail a canary with one error in a
// thousand when Tolerance allows it).
type Ratio struct {
	MaxRatio  float64
	Tolerance float64
	Worse     Direction
}

// Compare judges canary against baseline.
func (r Ratio) Compare(canary, baseline float64) (Outcome, string) {
	if math.IsNaN(canary) || math.IsNaN(baseline) {
		return Inconclusive, "no value to compare"
	}
	diff := canary - baseline
	if r.Worse == LowerIsWorse {
		diff = -diff
	}
	if diff <= r.Tolerance {
		if diff <= 0 {
			return Successful, "not worse than the baseline"
		}
		return Successful, fmt.Sprintf("worse by %s, within tolerance %s", Num(diff), Num(r.Tolerance))
	}
	var ratio float64
	switch {
	case r.Worse == HigherIsWorse && baseline > 0:
		ratio = canary / baseline
	case r.Worse == LowerIsWorse && canary > 0:
		ratio = baseline / canary
	default:
		ratio = math.Inf(1)
	}
	if ratio > r.MaxRatio {
		return Failed, fmt.Sprintf("%s× the baseline, more than max_ratio %s", Num(ratio), Num(r.MaxRatio))
	}
	return Successful, fmt.Sprintf("%s× the baseline, within max_ratio %s", Num(ratio), Num(r.MaxRatio))
}

// MannWhitney is a one-sided Mann-Whitney U test of the canary's
// per-interval samples against the baseline's: the canary fails when its
// samples are significantly worse (p < Alpha).
type MannWhitney struct {
	Alpha float64
	Worse Direction
}

// exactLimit bounds the number of rank assignments enumerated for an exact
// p-value; beyond it the normal approximation (with tie correction and
// continuity correction) is used.
const exactLimit = 200_000

// Test returns the outcome with U, p and the sample sizes. Too few samples
// to ever reach significance is inconclusive, never a pass: the reason
// says the smallest p the sizes allow.
func (t MannWhitney) Test(canary, baseline []float64) (Outcome, string) {
	n1, n2 := len(canary), len(baseline)
	if n1 == 0 || n2 == 0 {
		return Inconclusive, fmt.Sprintf("mann-whitney: %d canary and %d baseline samples", n1, n2)
	}
	c, b := canary, baseline
	if t.Worse == LowerIsWorse {
		c, b = negate(canary), negate(baseline)
	}
	u, p := MannWhitneyU(c, b)
	if minP := 1 / binom(n1+n2, n1); minP > t.Alpha {
		return Inconclusive, fmt.Sprintf("mann-whitney: %d canary and %d baseline samples cannot reach alpha %s (smallest p %s): raise count",
			n1, n2, Num(t.Alpha), Num(minP))
	}
	desc := fmt.Sprintf("mann-whitney U=%s p=%s (n=%d vs %d, alpha %s)", Num(u), Num(p), n1, n2, Num(t.Alpha))
	if p < t.Alpha {
		return Failed, desc + ": the canary is significantly worse"
	}
	return Successful, desc + ": no significant difference"
}

func negate(x []float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = -v
	}
	return out
}

// MannWhitneyU returns U for x (pairs where x is greater than y, ties
// counting half) and the one-sided p-value of x being stochastically
// greater than y: exact, by enumerating every assignment of the pooled
// ranks (ties included), when that is small enough, else the normal
// approximation with tie and continuity corrections.
func MannWhitneyU(x, y []float64) (u, p float64) {
	n1, n2 := len(x), len(y)
	pooled := append(slices.Clone(x), y...)
	ranks := midranks(pooled)
	r1 := 0.0
	for i := range n1 {
		r1 += ranks[i]
	}
	u = r1 - float64(n1*(n1+1))/2
	if binom(n1+n2, n1) <= exactLimit {
		// p = share of ways to pick n1 of the pooled ranks whose sum is at
		// least the observed one.
		total, atLeast := 0, 0
		eps := 1e-9
		combinations(len(pooled), n1, func(idx []int) {
			s := 0.0
			for _, i := range idx {
				s += ranks[i]
			}
			total++
			if s >= r1-eps {
				atLeast++
			}
		})
		return u, float64(atLeast) / float64(total)
	}
	n := float64(n1 + n2)
	mean := float64(n1*n2) / 2
	tie := 0.0
	sorted := slices.Clone(pooled)
	slices.Sort(sorted)
	for i := 0; i < len(sorted); {
		j := i
		for j < len(sorted) && sorted[j] == sorted[i] {
			j++
		}
		t := float64(j - i)
		tie += t*t*t - t
		i = j
	}
	variance := float64(n1*n2) / 12 * ((n + 1) - tie/(n*(n-1)))
	if variance <= 0 {
		return u, 1
	}
	z := (u - mean - 0.5) / math.Sqrt(variance)
	return u, 0.5 * math.Erfc(z/math.Sqrt2)
}

// midranks ranks values from 1, ties sharing the mean of their ranks.
func midranks(v []float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case v[a] < v[b]:
			return -1
		case v[a] > v[b]:
			return 1
		}
		return 0
	})
	ranks := make([]float64, len(v))
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && v[idx[j]] == v[idx[i]] {
			j++
		}
		r := float64(i+j+1) / 2 // mean of ranks i+1..j
		for k := i; k < j; k++ {
			ranks[idx[k]] = r
		}
		i = j
	}
	return ranks
}

func binom(n, k int) float64 {
	r := 1.0
	for i := 1; i <= k; i++ {
		r = r * float64(n-k+i) / float64(i)
	}
	return r
}

// combinations calls fn with every k-subset of 0..n-1.
func combinations(n, k int, fn func([]int)) {
	idx := make([]int, k)
	var rec func(start, depth int)
	rec = func(start, depth int) {
		if depth == k {
			fn(idx)
			return
		}
		for i := start; i <= n-(k-depth); i++ {
			idx[depth] = i
			rec(i+1, depth+1)
		}
	}
	rec(0, 0)
}
