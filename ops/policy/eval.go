package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
)

// Rule is one configured policy.
type Rule struct {
	Name         string
	Environments []string // empty: every environment
	Services     []string // empty: every service
	Expr         string
	Block        bool // block, or only warn
	Message      string
}

// Verdict is one rule's outcome for one evaluation.
type Verdict struct {
	Policy  string `json:"policy"`
	Action  string `json:"action"` // block or warn
	Passed  bool   `json:"passed"`
	Message string `json:"message,omitempty"`
	// Error is set when the expression could not be evaluated (e.g. a
	// missing field); a rule that cannot be evaluated fails.
	Error string `json:"error,omitempty"`
}

// Blocking reports whether the verdict stops the action.
func (v Verdict) Blocking() bool { return !v.Passed && v.Action == "block" }

// Set is a compiled set of rules.
type Set struct {
	rules []compiled
}

type compiled struct {
	Rule
	prg cel.Program
}

// NewSet compiles rules; the error names the first invalid rule.
func NewSet(rules []Rule) (*Set, error) {
	env, err := NewEnv()
	if err != nil {
		return nil, err
	}
	s := &Set{}
	for _, r := range rules {
		prg, err := Compile(env, r.Expr)
		if err != nil {
			return nil, fmt.Errorf("policy %q: %w", r.Name, err)
		}
		s.rules = append(s.rules, compiled{Rule: r, prg: prg})
	}
	return s, nil
}

// Input is what rules see: plain maps and lists (JSON-like), so that
// callers need not expose their types to CEL.
type Input struct {
	// Environment is the stage (dev, staging, production); Key the
	// (service, environment) pair's own name, which rules may also name;
	// Service the service.
	Environment string
	Key         string
	Service     string
	Update      map[string]any
	Env         map[string]any
	Change      map[string]any
	Now         time.Time
}

// applies reports whether r is evaluated for in.
func (r *compiled) applies(in Input) bool {
	if len(r.Environments) > 0 && !slices.Contains(r.Environments, in.Environment) && (in.Key == "" || !slices.Contains(r.Environments, in.Key)) {
		return false
	}
	return len(r.Services) == 0 || slices.Contains(r.Services, in.Service)
}

// Mentions reports whether a rule that applies to in names field in its
// expression, so that a caller can skip reading what no rule looks at (the
// promotion source's history, for every environment, every cycle). A rule
// that names it in a way the text does not show (a computed key) is not
// seen: callers must pass the field's empty value then, never a wrong one.
func (s *Set) Mentions(in Input, field string) bool {
	for i := range s.rules {
		if s.rules[i].applies(in) && strings.Contains(s.rules[i].Expr, field) {
			return true
		}
	}
	return false
}

// Evaluate runs every rule that applies to in.Environment.
func (s *Set) Evaluate(in Input) []Verdict {
	vars := map[string]any{
		VarUpdate: orEmpty(in.Update),
		VarEnv:    orEmpty(in.Env),
		VarChange: orEmpty(in.Change),
		VarNow:    in.Now.UTC(),
	}
	var out []Verdict
	for _, r := range s.rules {
		if !r.applies(in) {
			continue
		}
		v := Verdict{Policy: r.Name, Action: "warn", Message: r.Message}
		if r.Block {
			v.Action = "block"
		}
		val, _, err := r.prg.Eval(vars)
		switch {
		case err != nil:
			v.Error = err.Error()
		default:
			b, ok := val.Value().(bool)
			if !ok {
				v.Error = fmt.Sprintf("expression yielded %v, not a bool", val.Value())
			}
			v.Passed = ok && b
		}
		out = append(out, v)
	}
	return out
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}
