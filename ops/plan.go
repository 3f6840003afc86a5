package ops

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Plan is exactly what an update will do: from which release to which, in
// which batches, with which steps and checks, and how it is undone. Its
// digest is what approvers approve: a plan edited after approval has a new
// digest and needs a new approval.
type Plan struct {
	Environment   string         `json:"environment"`
	From          PlanRelease    `json:"from"`
	To            PlanRelease    `json:"to"`
	ConfigDiff    []ConfigChange `json:"config_diff"`
	Strategy      Strategy       `json:"strategy"`
	Batches       []Batch        `json:"batches"`
	Steps         []string       `json:"steps"`
	RollbackSteps []string       `json:"rollback_steps"`
	Health        []string       `json:"health"`
	Gated         bool           `json:"gated"`
	ChangeType    ChangeType     `json:"change_type,omitempty"`
}

// PlanRelease is one end of a plan.
type PlanRelease struct {
	Version string            `json:"version"`
	Config  map[string]string `json:"config"`
	Digest  string            `json:"digest"`
}

// ConfigChange is one config key that differs between two releases; an
// empty From or To means the key is added or removed.
type ConfigChange struct {
	Key  string `json:"key"`
	From string `json:"from"`
	To   string `json:"to"`
}

// Batch is a set of targets rolled out together.
type Batch struct {
	Index   int      `json:"index"`
	Canary  bool     `json:"canary,omitempty"`
	Targets []string `json:"targets"`
}

// Plan steps, per target.
const (
	StepDeploy   = "deploy"
	StepHealth   = "health"
	StepBake     = "bake"
	StepRollback = "rollback"
	// StepVerify asks a rolled-back target which version it runs.
	StepVerify = "verify"
)

// BuildPlan plans moving env from its current release (zero Release when
// nothing was deployed) to version with config.
func BuildPlan(env Environment, from Release, version string, config map[string]string) (Plan, error) {
	if err := ValidateVersion(version); err != nil {
		return Plan{}, err
	}
	if len(env.Targets) == 0 {
		return Plan{}, fmt.Errorf("environment %s has no targets", env.Name)
	}
	config = nonNil(config)
	p := Plan{
		Environment: env.Name,
		From:        PlanRelease{Version: from.Version, Config: nonNil(from.Config)},
		To:          PlanRelease{Version: version, Config: config, Digest: ReleaseDigest(version, config)},
		ConfigDiff:  DiffConfig(from.Config, config),
		Strategy:    env.Strategy,
		Gated:       env.RequiresChange,
	}
	if from.Version != "" {
		p.From.Digest = ReleaseDigest(from.Version, from.Config)
	}
	if env.RequiresChange {
		p.ChangeType = env.Change.Type
	}
	p.Batches = batches(env)
	p.Steps = []string{StepDeploy}
	if len(env.Health) > 0 {
		p.Steps = append(p.Steps, StepHealth)
	}
	if env.Strategy.Bake > 0 && len(env.Health) > 0 {
		p.Steps = append(p.Steps, StepBake)
	}
	p.RollbackSteps = []string{StepRollback}
	if len(env.Health) > 0 {
		p.RollbackSteps = append(p.RollbackSteps, StepHealth)
	}
	for _, h := range env.Health {
		p.Health = append(p.Health, describeCheck(h))
	}
	return p, nil
}

func batches(env Environment) []Batch {
	names := make([]string, len(env.Targets))
	for i, t := range env.Targets {
		names[i] = t.Name
	}
	var out []Batch
	if env.Strategy.Canary && len(names) > 1 {
		out = append(out, Batch{Index: 1, Canary: true, Targets: names[:1]})
		names = names[1:]
	}
	size := env.Strategy.BatchSize.Of(len(env.Targets))
	for len(names) > 0 {
		n := min(size, len(names))
		out = append(out, Batch{Index: len(out) + 1, Targets: names[:n:n]})
		names = names[n:]
	}
	return out
}

func describeCheck(h HealthCheck) string {
	var s string
	switch {
	case h.HTTP != nil:
		method := h.HTTP.Method
		if method == "" {
			method = "GET"
		}
		s = fmt.Sprintf("http %s %s expects %d", method, h.HTTP.URL, h.HTTP.ExpectStatus)
		if h.HTTP.ExpectBody != "" {
			s += fmt.Sprintf(" with body containing %q", h.HTTP.ExpectBody)
		}
		for _, k := range slices.Sorted(maps.Keys(h.HTTP.ExpectJSON)) {
			s += fmt.Sprintf(", json %s = %q", k, h.HTTP.ExpectJSON[k])
		}
	case h.TCP != nil:
		s = "tcp " + h.TCP.Address
	default:
		s = "command " + strings.Join(h.Command, " ")
	}
	return fmt.Sprintf("%s (%d retries, %s apart, timeout %s)", s, h.Retries, h.Interval, h.Timeout)
}

// DiffConfig lists the keys whose values differ, sorted by key.
func DiffConfig(from, to map[string]string) []ConfigChange {
	keys := map[string]bool{}
	for k := range from {
		keys[k] = true
	}
	for k := range to {
		keys[k] = true
	}
	diff := []ConfigChange{}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if from[k] != to[k] {
			diff = append(diff, ConfigChange{Key: k, From: from[k], To: to[k]})
		}
	}
	return diff
}

// Digest is the sha256 of the plan's canonical JSON encoding (fixed field
// order, sorted map keys).
func (p Plan) Digest() string {
	b, err := json.Marshal(p)
	if err != nil {
		panic(fmt.Sprintf("ops: plan cannot be encoded: %v", err)) // only plain data: cannot happen
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Text renders the plan for humans: the change description approvers read
// and `propose --dry-run`.
func (p Plan) Text() string {
	var b strings.Builder
	from := p.From.Version
	if from == "" {
		from = "(nothing deployed)"
	}
	fmt.Fprintf(&b, "Environment %s: %s → %s\n", p.Environment, from, p.To.Version)
	fmt.Fprintf(&b, "Plan digest: sha256:%s\n", p.Digest())
	if len(p.ConfigDiff) == 0 {
		b.WriteString("Config: unchanged\n")
	} else {
		b.WriteString("Config changes:\n")
		for _, c := range p.ConfigDiff {
			fmt.Fprintf(&b, "  %s: %s → %s\n", c.Key, orNone(c.From), orNone(c.To))
		}
	}
	targets := 0
	for _, bt := range p.Batches {
		targets += len(bt.Targets)
	}
	s := p.Strategy
	fmt.Fprintf(&b, "Rollout: %d target(s) in %d batch(es); batch size %s, max parallel %d, max failures %d, pause %s, bake %s\n",
		targets, len(p.Batches), s.BatchSize, s.MaxParallel, s.MaxFailures, s.Pause, s.Bake)
	for _, bt := range p.Batches {
		canary := ""
		if bt.Canary {
			canary = " (canary)"
		}
		fmt.Fprintf(&b, "  batch %d%s: %s\n", bt.Index, canary, strings.Join(bt.Targets, ", "))
	}
	fmt.Fprintf(&b, "Per target: %s\n", strings.Join(p.Steps, " → "))
	for _, h := range p.Health {
		fmt.Fprintf(&b, "  check: %s\n", h)
	}
	back := p.From.Version
	if back == "" {
		back = "the previous release"
	}
	fmt.Fprintf(&b, "On failure: stop, roll every touched target back to %s (%s), close the change unsuccessful and open an incident.\n",
		back, strings.Join(p.RollbackSteps, " → "))
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
