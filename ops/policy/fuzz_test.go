package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzCompile compiles arbitrary expressions, alone and as a rule set, and
// evaluates what compiles: nothing may panic, and whatever compiles
// evaluates to a verdict (an expression that cannot be evaluated fails
// with an error, it does not crash the gate).
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		`update.version in env.promote_from.succeeded_versions`,
		`update.config.log_level != "debug"`,
		`now.getHours() < 22 && now.getDayOfWeek() != 0`,
		`change.risk == "high" ? change.approval == "approved" : true`,
		`size(env.targets) > 0 && env.targets.all(t, t.name.startsWith("prd-"))`,
		`update.version.matches("^[0-9]+\\.[0-9]+\\.[0-9]+$")`,
		`duration("1h") > duration("30m")`,
		`1 / 0 == 1`,
		`update.version ==`,
		`"text"`,
		`[1, 2, 3].exists(x, x > 2)`,
		`{"a": 1}.a == 1`,
		`timestamp("2026-01-01T00:00:00Z") < now`,
		strings.Repeat("(", 200) + "true" + strings.Repeat(")", 200),
	} {
		f.Add(s)
	}
	// Every policy the shipped configurations use.
	if b, err := os.ReadFile(filepath.Join("..", "..", "fixtures", "config", "daytwo.example.yaml")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if _, expr, ok := strings.Cut(line, "expr:"); ok {
				f.Add(strings.Trim(strings.TrimSpace(expr), `'"`))
			}
		}
	}
	env, err := NewEnv()
	if err != nil {
		f.Fatal(err)
	}
	in := Input{
		Environment: "production",
		Update:      map[string]any{"version": "1.2.3", "config": map[string]any{"log_level": "info"}},
		Env:         map[string]any{"name": "production", "targets": []any{map[string]any{"name": "prd-1"}}},
		Change:      map[string]any{"risk": "high", "approval": "approved"},
		Now:         time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC),
	}
	f.Fuzz(func(t *testing.T, expr string) {
		_, cerr := Compile(env, expr)
		set, err := NewSet([]Rule{{Name: "fuzz", Expr: expr, Block: true}})
		if (cerr == nil) != (err == nil) {
			t.Fatalf("Compile and NewSet disagree on %q: %v / %v", expr, cerr, err)
		}
		if err != nil {
			return
		}
		vs := set.Evaluate(in)
		if len(vs) != 1 {
			t.Fatalf("%d verdicts, want 1", len(vs))
		}
		if vs[0].Error != "" && vs[0].Passed {
			t.Fatalf("a rule that could not be evaluated passed: %+v", vs[0])
		}
	})
}
