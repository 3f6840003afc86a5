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
