package config

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/daytwo/daytwo/ops"
)

// Service is one deployable application of a configuration with
// services: its CI and its deployment process, defined once, and the
// environments it runs in with what differs there. The gating of each
// environment (requires_change, change defaults, promote_from, auto_run,
// freezes, policies) stays on the shared environments[] entry.
type Service struct {
	Name string `koanf:"name"`
	// CmdbCI is the service's ServiceNow configuration item: the cmdb_ci
	// of the change requests raised for it (an environment entry may name
	// another one).
	CmdbCI string `koanf:"cmdb_ci"`
	// InheritHistory marks the service the file described before it had
	// services: its (service, environment) pairs keep the plain environment
	// names in the store, so the history recorded then stays theirs. At
	// most one service may set it.
	InheritHistory bool `koanf:"inherit_history"`

	Deploy       ops.DeploySpec    `koanf:"deploy"`
	VersionProbe ops.VersionProbe  `koanf:"version_probe"`
	Health       []ops.HealthCheck `koanf:"health"`
	Strategy     ops.Strategy      `koanf:"strategy"`
	Config       map[string]string `koanf:"config"`
	Verify       *ops.VerifyWindow `koanf:"verify"`

	Environments []ServiceEnvironment `koanf:"environments"`
}

// ServiceEnvironment is one environment a service runs in: its targets,
// and whatever differs from the service's process there. A field left
// out keeps the service's value; config keys merge over the service's.
type ServiceEnvironment struct {
	Name         string            `koanf:"name"`
	CmdbCI       string            `koanf:"cmdb_ci"`
	Targets      []ops.Target      `koanf:"targets"`
	Deploy       ops.DeploySpec    `koanf:"deploy"`
	VersionProbe ops.VersionProbe  `koanf:"version_probe"`
	Health       []ops.HealthCheck `koanf:"health"`
	Strategy     ops.Strategy      `koanf:"strategy"`
	Config       map[string]string `koanf:"config"`
	Verify       *ops.VerifyWindow `koanf:"verify"`
}

// DefaultService names the implicit service of a configuration without
// services when its environments name no CI.
const DefaultService = "default"

// unitOrigin says where one expanded (service, environment) pair came
// from, so that a problem found on the pair is reported at the key the
// user wrote.
type unitOrigin struct {
	service, entry, stage int // indexes into Services, its Environments, Config.Environments
}

// expand turns the decoded file into the pairs the rest of daytwo works
// on. Without services every environment is a pair of the implicit
// service, keyed by its own name. With services, the environments[] entries
// become the shared stages (kept in Stages) and every service's entry
// becomes one pair: the stage, overlaid with the service's process,
// overlaid with the entry.
func (c *Config) expand() []unitOrigin {
	if len(c.Services) == 0 {
		name := implicitService(c.Environments)
		for i := range c.Environments {
			c.Environments[i].Service = name
			c.Environments[i].Stage = c.Environments[i].Name
		}
		c.Stages = c.Environments
		return nil
	}
	c.Stages = c.Environments
	stages := map[string]int{}
	for i, st := range c.Stages {
		stages[st.Name] = i
	}
	runsIn := map[string]map[string]bool{}
	for _, svc := range c.Services {
		runsIn[svc.Name] = map[string]bool{}
		for _, se := range svc.Environments {
			runsIn[svc.Name][se.Name] = true
		}
	}
	var units []ops.Environment
	var origins []unitOrigin
	for i, svc := range c.Services {
		for j, se := range svc.Environments {
			k, ok := stages[se.Name]
			if !ok {
				continue // reported by validate
			}
			u := overlay(c.Stages[k], svc, se)
			u.Name = unitKey(svc, se.Name)
			u.PromoteFrom = ""
			if from := c.Stages[k].PromoteFrom; from != "" && runsIn[svc.Name][from] {
				u.PromoteFrom = unitKey(svc, from)
			}
			units = append(units, u)
			origins = append(origins, unitOrigin{service: i, entry: j, stage: k})
		}
	}
	c.Environments = units
	return origins
}

func unitKey(svc Service, stage string) string {
	if svc.InheritHistory {
		return stage
	}
	return ops.UnitKey(svc.Name, stage)
}

// implicitService names the one service of a file without services: its
// CI when every environment that names one names the same, else
// DefaultService.
func implicitService(envs []ops.Environment) string {
	name := ""
	for _, e := range envs {
		switch ci := e.Change.CmdbCI; {
		case ci == "":
		case name == "":
			name = ci
		case name != ci:
			return DefaultService
		}
	}
	if name == "" || !validName(name) {
		return DefaultService
	}
	return name
}

// overlay builds one pair: the stage's settings, then the service's
// process where it sets a field, then the entry's where it sets one.
func overlay(stage ops.Environment, svc Service, se ServiceEnvironment) ops.Environment {
	u := stage
	u.Service, u.Stage = svc.Name, stage.Name
	u.Targets = slices.Clone(se.Targets)
	u.Config = maps.Clone(stage.Config)
	for _, layer := range []ServiceEnvironment{serviceLayer(svc), se} {
		set(&u.Deploy, layer.Deploy)
		set(&u.VersionProbe, layer.VersionProbe)
		set(&u.Health, layer.Health)
		set(&u.Strategy, layer.Strategy)
		set(&u.Verify, layer.Verify)
		if layer.CmdbCI != "" {
			u.Change.CmdbCI = layer.CmdbCI
		}
		if len(layer.Config) > 0 && u.Config == nil {
			u.Config = map[string]string{}
		}
		maps.Copy(u.Config, layer.Config)
	}
	return u
}

func serviceLayer(svc Service) ServiceEnvironment {
	return ServiceEnvironment{
		CmdbCI: svc.CmdbCI, Deploy: svc.Deploy, VersionProbe: svc.VersionProbe,
		Health: svc.Health, Strategy: svc.Strategy, Config: svc.Config, Verify: svc.Verify,
	}
}

// set replaces *dst with v unless v is the zero value (the layer left the
// field out).
func set[T any](dst *T, v T) {
	if !reflect.ValueOf(&v).Elem().IsZero() {
		*dst = v
	}
}

// validateServices checks what only the services form has: service names,
// the environments they name, and the shared stages (which carry no
// targets of their own). The pairs themselves are checked like
// environments, at the keys their fields came from (see unitKeyOf).
func (v *validator) validateServices(c *Config, stages map[string]int) {
	names := map[string]int{}
	inherit := -1
	for i, svc := range c.Services {
		key := fmt.Sprintf("services[%d]", i)
		switch {
		case svc.Name == "":
			v.add(key+".name", "must not be empty")
		case !validName(svc.Name):
			v.add(key+".name", "%q: use lower-case letters, digits, - and _", svc.Name)
		default:
			if j, dup := names[svc.Name]; dup {
				v.add(key+".name", "%q is already the name of services[%d]", svc.Name, j)
			}
			names[svc.Name] = i
		}
		if svc.InheritHistory {
			if inherit >= 0 {
				v.add(key+".inherit_history", "services[%d] already inherits the history: only one service can", inherit)
			}
			inherit = i
		}
		if len(svc.Environments) == 0 {
			v.add(key+".environments", "a service needs at least one environment to run in (one of %s)", quoted(c.Stages))
		}
		seen := map[string]bool{}
		for j, se := range svc.Environments {
			ek := fmt.Sprintf("%s.environments[%d].name", key, j)
			switch _, ok := stages[se.Name]; {
			case se.Name == "":
				v.add(ek, "must not be empty")
			case !ok:
				v.add(ek, "no environment is named %q (environments: %s)", se.Name, quoted(c.Stages))
			case seen[se.Name]:
				v.add(ek, "%q appears twice", se.Name)
			}
			seen[se.Name] = true
		}
	}
	for i, st := range c.Stages {
		if len(st.Targets) > 0 {
			v.add(fmt.Sprintf("environments[%d].targets", i), "with services, targets belong to each service's entry for %q (services[].environments[].targets)", st.Name)
		}
	}
}

func quoted(envs []ops.Environment) string {
	if len(envs) == 0 {
		return "none declared"
	}
	q := make([]string, len(envs))
	for i, e := range envs {
		q[i] = fmt.Sprintf("%q", e.Name)
	}
	return strings.Join(q, ", ")
}

// unitKeyOf maps a problem found on an expanded pair back to the key the
// user wrote: the service's entry if it set the field, else the service if
// it did, else the shared environment.
func unitKeyOf(tree map[string]any, o unitOrigin, rest string) string {
	field, _, _ := strings.Cut(strings.TrimPrefix(rest, "."), ".")
	field, _, _ = strings.Cut(field, "[")
	entry := fmt.Sprintf("services[%d].environments[%d]", o.service, o.entry)
	if field == "" || field == "targets" {
		return entry + rest
	}
	svcs, _ := tree["services"].([]any)
	svc, _ := elem(svcs, o.service).(map[string]any)
	envs, _ := svc["environments"].([]any)
	se, _ := elem(envs, o.entry).(map[string]any)
	switch {
	case has(se, field):
		return entry + rest
	case has(svc, field):
		return fmt.Sprintf("services[%d]", o.service) + rest
	default:
		return fmt.Sprintf("environments[%d]", o.stage) + rest
	}
}

func elem(l []any, i int) any {
	if i < len(l) {
		return l[i]
	}
	return nil
}

func has(m map[string]any, key string) bool {
	_, ok := m[key]
	return ok
}
