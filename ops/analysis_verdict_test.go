package ops_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// analysingFleet is the in-memory fleet with a Bake that reports one
// metric verdict per target, as exec's metric checks do, and remembers
// the baseline each bake was given.
type analysingFleet struct {
	*fleet
	mu        sync.Mutex
	baselines map[string][]string
	fail      map[string]bool
}

func (f *analysingFleet) Bake(ctx context.Context, req ops.StepRequest, d time.Duration, log ops.LogSink) (string, error) {
	var names []string
	for _, b := range req.Baseline {
		names = append(names, b.Name)
	}
	f.mu.Lock()
	f.baselines[req.Target.Name] = names
	failing := f.fail[req.Target.Name]
	f.mu.Unlock()
	v := ops.MetricVerdict{
		Check: "error-rate", Kind: "metrics", Target: req.Target.Name, Baseline: names, Outcome: "successful",
		Reason: "within limits", Tally: "1 measured", Measurements: []string{"successful: 0 vs baseline 0"},
	}
	if failing {
		v.Outcome, v.Measurements = "failed", []string{"failed: 0.2 vs baseline 0 (+Inf× the baseline, more than max_ratio 2)"}
	}
	if req.OnVerdict == nil {
		return "", errors.New("the runner gave the bake no verdict callback")
	}
	req.OnVerdict(v)
	if failing {
		return "", errors.New(v.String())
	}
	return v.String(), nil
}

func TestBakeGetsBaselineAndVerdictsAreAudited(t *testing.T) {
	w := newRunWorld(t, true)
	w.env.Strategy.Bake = 10 * time.Millisecond
	af := &analysingFleet{fleet: w.fleet, baselines: map[string][]string{}, fail: map[string]bool{}}
	svc, err := ops.New(ops.Config{Environments: []ops.Environment{w.env}, Actor: "test"}, w.db, nil,
		ops.WithHolder("host-a:1"), ops.WithLeaseTTL(time.Minute),
		ops.WithExecutors(func(ops.Environment) (ops.Executor, ops.HealthChecker, error) { return af, af, nil }),
		ops.WithProbers(func(ops.Environment) (ops.VersionProber, error) { return af, nil }))
	if err != nil {
		t.Fatal(err)
	}
	w.release(t, svc, "1.0.0")
	want := map[string][]string{"t1": {"t3", "t4"}, "t2": {"t3", "t4"}, "t3": nil, "t4": nil}
	for name, b := range want {
		if got := af.baselines[name]; !slices.Equal(got, b) {
			t.Errorf("%s baked against baseline %v, want %v (the targets of later batches)", name, got, b)
		}
	}

	// A failed verdict fails the bake and rolls the release back; every
	// verdict is in the audit log with its numbers.
	af.fail["t2"] = true
	p, err := svc.Propose(context.Background(), ops.ProposeRequest{Environment: "fleet", Version: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.Run(context.Background(), ops.RunRequest{Update: p.Update.ID})
	if !errors.Is(err, ops.ErrRunFailed) || res.Update.State != ops.UpdateRolledBack {
		t.Fatalf("run with a failed verdict: %v, update %s", err, res.Update.State)
	}
	events, err := w.db.ListEvents(context.Background(), ops.EventFilter{UpdateID: p.Update.ID})
	if err != nil {
		t.Fatal(err)
	}
	var verdicts []string
	for _, e := range events {
		if e.Action == "analysis.verdict" {
			verdicts = append(verdicts, e.Subject+" "+e.Result+" "+e.Detail["baseline"].(string))
			if e.Result == "failed" && !strings.Contains(strings.Join(toStrings(e.Detail["measurements"]), " "), "0.2 vs baseline 0") {
				t.Errorf("failed verdict without its numbers: %+v", e.Detail)
			}
		}
	}
	slices.Sort(verdicts)
	if w := []string{"t1 successful t3,t4", "t2 failed t3,t4"}; !slices.Equal(verdicts, w) {
		t.Fatalf("audited verdicts %v, want %v", verdicts, w)
	}
	log, err := svc.RunLogText(context.Background(), res.Run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log, `metric verdict: metrics "error-rate" on t2: failed`) {
		t.Errorf("run log lacks the verdict:\n%s", log)
	}
}

func toStrings(v any) []string {
	switch l := v.(type) {
	case []string:
		return l
	case []any:
		out := make([]string, len(l))
		for i, x := range l {
			out[i], _ = x.(string)
		}
		return out
	}
	return nil
}
