package ops

import (
	"strings"
	"testing"
	"time"
)

func fleet(n int) []Target {
	ts := make([]Target, n)
	for i := range ts {
		ts[i] = Target{Name: "t" + string(rune('a'+i))}
	}
	return ts
}

func TestBatches(t *testing.T) {
	tests := map[string]struct {
		targets  int
		strategy Strategy
		want     []int
		canary   bool
	}{
		"one at a time":       {3, Strategy{}, []int{1, 1, 1}, false},
		"pairs":               {5, Strategy{BatchSize: BatchSize{Count: 2}}, []int{2, 2, 1}, false},
		"percent rounds up":   {10, Strategy{BatchSize: BatchSize{Percent: 25}}, []int{3, 3, 3, 1}, false},
		"canary first":        {5, Strategy{BatchSize: BatchSize{Count: 2}, Canary: true}, []int{1, 2, 2}, true},
		"canary of one":       {1, Strategy{Canary: true}, []int{1}, false},
		"batch bigger than n": {2, Strategy{BatchSize: BatchSize{Count: 10}}, []int{2}, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := BuildPlan(Environment{Name: "e", Targets: fleet(tc.targets), Strategy: tc.strategy}, Release{}, "1.0.0", nil)
			if err != nil {
				t.Fatal(err)
			}
			var sizes []int
			seen := map[string]bool{}
			for i, b := range p.Batches {
				sizes = append(sizes, len(b.Targets))
				if b.Index != i+1 || b.Canary != (tc.canary && i == 0) {
					t.Errorf("batch %d = %+v", i, b)
				}
				for _, tg := range b.Targets {
					if seen[tg] {
						t.Errorf("target %s planned twice", tg)
					}
					seen[tg] = true
				}
			}
			if len(seen) != tc.targets || len(sizes) != len(tc.want) {
				t.Fatalf("sizes = %v, want %v", sizes, tc.want)
			}
			for i := range sizes {
				if sizes[i] != tc.want[i] {
					t.Fatalf("sizes = %v, want %v", sizes, tc.want)
				}
			}
		})
	}
}

func TestPlanDigestAndText(t *testing.T) {
	env := Environment{
		Name: "production", RequiresChange: true, Change: ChangeDefaults{Type: "normal"}, Targets: fleet(3),
		Strategy: Strategy{MaxParallel: 1, Bake: 10 * time.Second},
		Health:   []HealthCheck{{HTTP: &HTTPCheck{URL: "{{ .Target.Vars.url }}/healthz", ExpectStatus: 200}, Retries: 3, Interval: time.Second, Timeout: 2 * time.Second}},
	}
	from := Release{Version: "1.4.1", Config: map[string]string{"log_level": "info", "old": "x"}}
	p1, err := BuildPlan(env, from, "1.4.2", map[string]string{"log_level": "warn", "new": "y"})
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := BuildPlan(env, from, "1.4.2", map[string]string{"new": "y", "log_level": "warn"})
	if p1.Digest() != p2.Digest() {
		t.Fatal("digest depends on map order")
	}
	env.Strategy.MaxFailures = 1
	p3, _ := BuildPlan(env, from, "1.4.2", map[string]string{"log_level": "warn", "new": "y"})
	if p3.Digest() == p1.Digest() {
		t.Fatal("an edited strategy must change the digest")
	}
	if got := strings.Join(p1.Steps, ","); got != "deploy,health,bake" {
		t.Fatalf("steps = %s", got)
	}
	text := p1.Text()
	for _, want := range []string{
		"Environment production: 1.4.1 → 1.4.2",
		"sha256:" + p1.Digest(),
		"log_level: info → warn", "new: (none) → y", "old: x → (none)",
		"3 target(s) in 3 batch(es)", "batch 1: ta",
		"http GET {{ .Target.Vars.url }}/healthz expects 200",
		"roll every touched target back to 1.4.1",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("plan text lacks %q:\n%s", want, text)
		}
	}
	if _, err := BuildPlan(env, from, "1.4.2; rm -rf /", nil); err == nil {
		t.Fatal("a version with shell syntax must be refused")
	}
}

func TestUpdateLifecycle(t *testing.T) {
	if _, err := UpdateProposed.Transition(UpdateRunning); err == nil {
		t.Fatal("proposed → running skips approval")
	}
	if !UpdateRunning.CanTransition(UpdateFailed) || !UpdateFailed.CanTransition(UpdateRolledBack) {
		t.Fatal("failure path")
	}
	for _, s := range []UpdateState{UpdateSucceeded, UpdateRejected, UpdateCanceled, UpdateRolledBack} {
		if !s.Terminal() {
			t.Errorf("%s must be terminal", s)
		}
	}
	if UpdateState("bogus").Valid() {
		t.Fatal("unknown state valid")
	}
}
