package policy

import (
	"strings"
	"testing"
)

func TestCompile(t *testing.T) {
	env, err := NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		expr    string
		wantErr string
	}{
		"membership":       {expr: `update.version in env.promote_from.succeeded_versions`},
		"comparison":       {expr: `update.config.log_level != "debug"`},
		"time":             {expr: `now.getHours() < 22`},
		"syntax error":     {expr: `update.version ==`, wantErr: "invalid CEL"},
		"unknown variable": {expr: `release.version == "1"`, wantErr: "undeclared reference"},
		"not a bool":       {expr: `"text"`, wantErr: "want bool"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Compile(env, tc.expr)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Compile(%q) = %v", tc.expr, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Compile(%q) = %v, want error containing %q", tc.expr, err, tc.wantErr)
			}
		})
	}
}

func TestEvaluate(t *testing.T) {
	set, err := NewSet([]Rule{
		{Name: "promote", Environments: []string{"production"}, Expr: `update.version in env.promote_from.succeeded_versions`, Block: true, Message: "staging first"},
		{Name: "no-debug", Expr: `update.config.log_level != "debug"`, Message: "debug logging"},
		{Name: "missing-field", Environments: []string{"production"}, Expr: `change.risk == "low"`, Block: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	in := Input{
		Environment: "production",
		Update:      map[string]any{"version": "1.4.2", "config": map[string]any{"log_level": "debug"}},
		Env:         map[string]any{"promote_from": map[string]any{"succeeded_versions": []any{"1.4.1", "1.4.2"}}},
	}
	got := set.Evaluate(in)
	if len(got) != 3 {
		t.Fatalf("verdicts = %+v", got)
	}
	if !got[0].Passed || got[0].Blocking() {
		t.Errorf("promote: %+v", got[0])
	}
	if got[1].Passed || got[1].Blocking() || got[1].Action != "warn" {
		t.Errorf("no-debug must warn: %+v", got[1])
	}
	if got[2].Passed || !got[2].Blocking() || got[2].Error == "" {
		t.Errorf("an expression over a missing field must fail, not pass: %+v", got[2])
	}
	in.Environment = "staging"
	if got := set.Evaluate(in); len(got) != 1 || got[0].Policy != "no-debug" {
		t.Errorf("scoping: %+v", got)
	}
	if _, err := NewSet([]Rule{{Name: "bad", Expr: "1 +"}}); err == nil || !strings.Contains(err.Error(), `policy "bad"`) {
		t.Errorf("invalid rule: %v", err)
	}
}

func TestMentionsOnlyRulesThatApply(t *testing.T) {
	set, err := NewSet([]Rule{
		{Name: "promote", Environments: []string{"production"}, Expr: `update.version in env.promote_from.succeeded_versions`},
		{Name: "payments-only", Services: []string{"payments"}, Expr: `env.promote_from.current_version != ""`},
		{Name: "debug", Expr: `update.config.log_level != "debug"`},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in   Input
		want bool
	}{
		{Input{Environment: "production", Service: "checkout"}, true},
		{Input{Environment: "staging", Service: "checkout"}, false},
		{Input{Environment: "staging", Service: "payments"}, true},
		{Input{Environment: "dev", Key: "production"}, true}, // a rule may name the pair's key
	} {
		if got := set.Mentions(c.in, "promote_from"); got != c.want {
			t.Errorf("Mentions(%+v) = %v, want %v", c.in, got, c.want)
		}
	}
}
