package ops

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Environment is a place updates roll out to, as the operator configured it.
// Field tags are the configuration file's key names, a contract with users.
//
// With services (a configuration with services:), one Environment is one
// (service, environment) pair: Service and Stage name the pair and Name is
// its key in the store, "service/stage" (UnitKey). A configuration with
// only environments: describes one implicit service whose pairs keep the
// plain stage name as key, so a database made before services keeps its
// history.
type Environment struct {
	Name string `koanf:"name" json:"name"`
	// Service is the service deployed here; Stage the shared environment
	// (dev, staging, production) it is deployed to. Both are set by the
	// configuration loader, never read from an environments[] entry.
	Service        string            `koanf:"-" json:"service,omitempty"`
	Stage          string            `koanf:"-" json:"stage,omitempty"`
	Tier           string            `koanf:"tier" json:"tier,omitempty"`
	RequiresChange bool              `koanf:"requires_change" json:"requires_change"`
	AutoRun        bool              `koanf:"auto_run" json:"auto_run"`
	PromoteFrom    string            `koanf:"promote_from" json:"promote_from,omitempty"`
	Change         ChangeDefaults    `koanf:"change" json:"change"`
	Targets        []Target          `koanf:"targets" json:"targets"`
	Deploy         DeploySpec        `koanf:"deploy" json:"deploy"`
	VersionProbe   VersionProbe      `koanf:"version_probe" json:"version_probe"`
	Health         []HealthCheck     `koanf:"health" json:"health,omitempty"`
	Strategy       Strategy          `koanf:"strategy" json:"strategy"`
	Config         map[string]string `koanf:"config" json:"config,omitempty"`
	// Verify, if set, keeps checking every target after the last batch.
	Verify *VerifyWindow `koanf:"verify" json:"verify,omitempty"`
}

// UnitKey is the store key of one (service, stage) pair.
func UnitKey(service, stage string) string { return service + "/" + stage }

// StageOf is the stage of a pair's key: what follows "service/", or the
// key itself for a plain environment name.
func StageOf(key string) string {
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		return key[i+1:]
	}
	return key
}

// StageName is the shared environment this entry deploys to: Stage, or
// Name for an entry built without services.
func (e Environment) StageName() string {
	if e.Stage != "" {
		return e.Stage
	}
	return e.Name
}

// ChangeDefaults says how the change request for an update of a gated
// environment is raised.
type ChangeDefaults struct {
	Type            ChangeType    `koanf:"type" json:"type,omitempty"`
	Template        string        `koanf:"template" json:"template,omitempty"`
	CmdbCI          string        `koanf:"cmdb_ci" json:"cmdb_ci,omitempty"`
	AssignmentGroup string        `koanf:"assignment_group" json:"assignment_group,omitempty"`
	Risk            string        `koanf:"risk" json:"risk,omitempty"`
	Impact          string        `koanf:"impact" json:"impact,omitempty"`
	Window          time.Duration `koanf:"window" json:"window,omitempty"`
	// CheckConflicts asks ServiceNow's conflict detection (blackout
	// windows, other changes on the CI) when the change is raised; the gate
	// blocks while it reports conflicts. On by default in configuration
	// files.
	CheckConflicts bool `koanf:"check_conflicts" json:"check_conflicts,omitempty"`
}

// Target is one host or instance an environment's release runs on. Vars
// are free-form values available to command and URL templates.
type Target struct {
	Name string            `koanf:"name" json:"name"`
	Vars map[string]string `koanf:"vars" json:"vars,omitempty"`
}

// DeploySpec configures the command executor: argv templates run without a
// shell. An empty Rollback means "deploy the previous release".
type DeploySpec struct {
	Command  []string          `koanf:"command" json:"command,omitempty"`
	Rollback []string          `koanf:"rollback" json:"rollback,omitempty"`
	Timeout  time.Duration     `koanf:"timeout" json:"timeout,omitempty"`
	Env      map[string]string `koanf:"env" json:"env,omitempty"`
	// Ansible and SSH select the other executors (see executors.go);
	// at most one of Command, Ansible and SSH is set.
	Ansible *AnsibleSpec `koanf:"ansible" json:"ansible,omitempty"`
	SSH     *SSHSpec     `koanf:"ssh" json:"ssh,omitempty"`
}

// VersionProbe tells how to ask a target which version it really runs.
type VersionProbe struct {
	HTTP    *HTTPProbe    `koanf:"http" json:"http,omitempty"`
	Command []string      `koanf:"command" json:"command,omitempty"`
	Timeout time.Duration `koanf:"timeout" json:"timeout,omitempty"`
}

// HTTPProbe reads a version over HTTP: the whole body, trimmed, or one field
// of a JSON body.
type HTTPProbe struct {
	URL       string `koanf:"url" json:"url"`
	JSONField string `koanf:"json_field" json:"json_field,omitempty"`
}

// HealthCheck is one check run against every target after it is deployed.
// Exactly one of HTTP, TCP, Command, Ansible, Metrics and Prometheus is set; the
// metric kinds run during the bake (see MetricAnalysis).
type HealthCheck struct {
	Name       string           `koanf:"name" json:"name,omitempty"`
	HTTP       *HTTPCheck       `koanf:"http" json:"http,omitempty"`
	TCP        *TCPCheck        `koanf:"tcp" json:"tcp,omitempty"`
	Command    []string         `koanf:"command" json:"command,omitempty"`
	Metrics    *MetricsCheck    `koanf:"metrics" json:"metrics,omitempty"`
	Prometheus *PrometheusCheck `koanf:"prometheus" json:"prometheus,omitempty"`
	// Ansible runs a playbook as the check: once per batch over the
	// batch's hosts, each host's result its target's (rollback_playbook
	// does not apply).
	Ansible  *AnsibleSpec  `koanf:"ansible" json:"ansible,omitempty"`
	Interval time.Duration `koanf:"interval" json:"interval,omitempty"`
	Timeout  time.Duration `koanf:"timeout" json:"timeout,omitempty"`
	Retries  int           `koanf:"retries" json:"retries,omitempty"`
}

// HTTPCheck passes when the URL answers with the expected status and, if
// set, a body containing ExpectBody and JSON fields equal to ExpectJSON.
type HTTPCheck struct {
	URL          string            `koanf:"url" json:"url"`
	Method       string            `koanf:"method" json:"method,omitempty"`
	ExpectStatus int               `koanf:"expect_status" json:"expect_status,omitempty"`
	ExpectBody   string            `koanf:"expect_body" json:"expect_body,omitempty"`
	ExpectJSON   map[string]string `koanf:"expect_json" json:"expect_json,omitempty"`
}

// TCPCheck passes when a TCP connection to Address succeeds.
type TCPCheck struct {
	Address string `koanf:"address" json:"address"`
}

// Strategy shapes a rollout: how many targets per batch, how many at once,
// how many failures are tolerated, and how long to wait and watch.
type Strategy struct {
	BatchSize   BatchSize     `koanf:"batch_size" json:"batch_size"`
	MaxParallel int           `koanf:"max_parallel" json:"max_parallel,omitempty"`
	MaxFailures int           `koanf:"max_failures" json:"max_failures"`
	Pause       time.Duration `koanf:"pause" json:"pause,omitempty"`
	Bake        time.Duration `koanf:"bake" json:"bake,omitempty"`
	Canary      bool          `koanf:"canary" json:"canary,omitempty"`
}

// UnmarshalJSON reads a strategy whose pause and bake are durations as
// strings ("10s", as daytwo's CLI prints them) or nanoseconds (as
// encoding/json writes them, e.g. in stored plans).
func (s *Strategy) UnmarshalJSON(b []byte) error {
	type plain Strategy
	var aux struct {
		plain
		Pause json.RawMessage `json:"pause,omitempty"`
		Bake  json.RawMessage `json:"bake,omitempty"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*s = Strategy(aux.plain)
	var err error
	if s.Pause, err = jsonDuration(aux.Pause); err != nil {
		return fmt.Errorf("strategy.pause: %w", err)
	}
	if s.Bake, err = jsonDuration(aux.Bake); err != nil {
		return fmt.Errorf("strategy.bake: %w", err)
	}
	return nil
}

// jsonDuration decodes a duration written as a string ("2h0m0s") or as
// nanoseconds.
func jsonDuration(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return time.ParseDuration(s)
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, err
	}
	return time.Duration(n), nil
}

// BatchSize is a batch size as a count of targets ("2") or a percentage of
// them ("25%"). The zero value means one target per batch.
type BatchSize struct {
	Count   int
	Percent int
}

// UnmarshalText parses "3" or "25%".
func (b *BatchSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	if p, ok := strings.CutSuffix(s, "%"); ok {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 || n > 100 {
			return fmt.Errorf("batch size %q: want a percentage from 1%% to 100%%", s)
		}
		*b = BatchSize{Percent: n}
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return fmt.Errorf("batch size %q: want a positive number of targets or a percentage such as \"25%%\"", s)
	}
	*b = BatchSize{Count: n}
	return nil
}

// MarshalText renders the batch size the way it is configured.
func (b BatchSize) MarshalText() ([]byte, error) {
	return []byte(b.String()), nil
}

// String renders "3", "25%" or "1" for the zero value.
func (b BatchSize) String() string {
	switch {
	case b.Percent > 0:
		return strconv.Itoa(b.Percent) + "%"
	case b.Count > 0:
		return strconv.Itoa(b.Count)
	default:
		return "1"
	}
}

// Of returns the number of targets per batch for a fleet of n targets:
// at least one, at most n.
func (b BatchSize) Of(n int) int {
	size := b.Count
	if b.Percent > 0 {
		size = (n*b.Percent + 99) / 100
	}
	return max(1, min(size, max(n, 1)))
}

// Freeze is a period during which an environment must not change: one-off
// (Start–End) or recurring (opens at every Cron time for Duration, in
// Timezone).
type Freeze struct {
	Name         string   `koanf:"name" json:"name"`
	Environments []string `koanf:"environments" json:"environments,omitempty"`
	// Services, if set, limits the freeze to these services.
	Services []string      `koanf:"services" json:"services,omitempty"`
	Start    time.Time     `koanf:"start" json:"start,omitzero"`
	End      time.Time     `koanf:"end" json:"end,omitzero"`
	Cron     string        `koanf:"cron" json:"cron,omitempty"`
	Duration time.Duration `koanf:"duration" json:"duration,omitempty"`
	Timezone string        `koanf:"timezone" json:"timezone,omitempty"`
}

// Applies reports whether the freeze covers the environment (a
// (service, environment) pair): a freeze that names no environment covers
// all of them, one that names no service covers every service.
func (f Freeze) Applies(env Environment) bool { return appliesTo(f.Environments, f.Services, env) }

// PolicyAction is what a failing policy does.
type PolicyAction string

// Policy actions.
const (
	PolicyBlock PolicyAction = "block"
	PolicyWarn  PolicyAction = "warn"
)

// Policy is a CEL rule over the update, the environment, the change and
// the time.
type Policy struct {
	Name         string   `koanf:"name" json:"name"`
	Environments []string `koanf:"environments" json:"environments,omitempty"`
	// Services, if set, limits the policy to these services.
	Services []string     `koanf:"services" json:"services,omitempty"`
	Expr     string       `koanf:"expr" json:"expr"`
	Action   PolicyAction `koanf:"action" json:"action"`
	Message  string       `koanf:"message" json:"message,omitempty"`
	// BlockProposals makes a failing continuous check of this policy (the
	// daemon evaluates what each environment runs) refuse new proposals
	// for that environment until it passes again.
	BlockProposals bool `koanf:"block_proposals" json:"block_proposals,omitempty"`
}

// Applies reports whether the policy covers the environment, as for
// freezes.
func (p Policy) Applies(env Environment) bool { return appliesTo(p.Environments, p.Services, env) }

// appliesTo: envs names the stage (or one pair's key), services the
// service; an empty list matches all.
func appliesTo(envs, services []string, env Environment) bool {
	return (len(envs) == 0 || slices.Contains(envs, env.StageName()) || slices.Contains(envs, env.Name)) &&
		(len(services) == 0 || slices.Contains(services, env.Service))
}
