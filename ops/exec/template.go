package exec

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"

	"github.com/daytwo/daytwo/ops"
)

// TemplateData is what argv, URL, address and expected-value templates
// see, e.g. {{ .Target.Vars.url }}/version or {{ .Config.log_level }}.
// A missing map key is an error, not an empty string. Version probes see
// Env and Target only.
type TemplateData struct {
	// Env is the environment's name (with services, the stage: staging,
	// production).
	Env string
	// Service is the service the step deploys ("" for version probes).
	Service string
	// Target is the target of the step: .Target.Name and .Target.Vars.
	Target ops.Target
	// Version is the version the step puts in place (for a rollback, the
	// version being returned to).
	Version string
	// PreviousVersion is the version the target ran before the step.
	PreviousVersion string
	// Change is the ServiceNow change number authorising the step, if any.
	Change string
	// Config is the config map of the release being put in place.
	Config map[string]string
	// PreviousConfig is the config map of the release before the step.
	PreviousConfig map[string]string
	// Rollback is true when the step is a rollback.
	Rollback bool

	// step is the request, for what programs need besides templates (the
	// run marks and the start hook).
	step ops.StepRequest
}

func newData(env string, req ops.StepRequest) *TemplateData {
	return &TemplateData{
		Env:             ops.StageOf(env),
		Service:         req.Service,
		Target:          req.Target,
		Version:         req.Version,
		PreviousVersion: req.PreviousVersion,
		Change:          req.Change,
		Config:          req.Config,
		PreviousConfig:  req.PreviousConfig,
		Rollback:        req.Rollback,
		step:            req,
	}
}

// tmpl is one parsed template. Text without actions is kept as a literal,
// so a plain argv such as ["/bin/true"] costs nothing per step.
type tmpl struct {
	lit string
	t   *template.Template
}

func parseTmpl(name, s string) (tmpl, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(s)
	if err != nil {
		return tmpl{}, err
	}
	if t.Tree == nil || t.Root == nil {
		return tmpl{lit: s}, nil
	}
	var lit strings.Builder
	for _, n := range t.Root.Nodes {
		text, ok := n.(*parse.TextNode)
		if !ok {
			return tmpl{t: t}, nil
		}
		lit.Write(text.Text)
	}
	return tmpl{lit: lit.String()}, nil
}

func (t tmpl) render(d *TemplateData) (string, error) {
	if t.t == nil {
		return t.lit, nil
	}
	var b strings.Builder
	if err := t.t.Execute(&b, d); err != nil {
		return "", err
	}
	return b.String(), nil
}

// argvTemplate is a parsed argv; key names it in errors ("deploy.command").
type argvTemplate struct {
	key  string
	args []tmpl
}

func parseArgv(key string, argv []string) (argvTemplate, error) {
	if len(argv) == 0 {
		return argvTemplate{}, fmt.Errorf("%s: empty: name the program to run (argv list, no shell)", key)
	}
	a := argvTemplate{key: key, args: make([]tmpl, len(argv))}
	for i, s := range argv {
		t, err := parseTmpl(fmt.Sprintf("%s[%d]", key, i), s)
		if err != nil {
			return argvTemplate{}, fmt.Errorf("%s[%d]: %w", key, i, err)
		}
		a.args[i] = t
	}
	return a, nil
}

func (a argvTemplate) render(d *TemplateData) ([]string, error) {
	argv := make([]string, len(a.args))
	for i, t := range a.args {
		s, err := t.render(d)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", a.key, i, err)
		}
		argv[i] = s
	}
	if argv[0] == "" {
		return nil, fmt.Errorf("%s[0]: the program name rendered empty", a.key)
	}
	return argv, nil
}

// envPrefix marks the variables daytwo owns. Inherited ones are dropped:
// they configure daytwo itself and may carry ServiceNow credentials.
const envPrefix = "DAYTWO_"

// parseExtraEnv checks a deploy.env map and renders it as sorted KEY=VALUE
// pairs.
func parseExtraEnv(key string, m map[string]string) ([]string, error) {
	out := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		switch {
		case k == "" || strings.ContainsAny(k, "=\x00"):
			return nil, fmt.Errorf("%s: %q is not a variable name", key, k)
		case strings.HasPrefix(k, envPrefix):
			return nil, fmt.Errorf("%s: %s: the %s prefix is reserved for variables daytwo sets", key, k, envPrefix)
		}
		out = append(out, k+"="+m[k])
	}
	return out, nil
}

// stepEnv builds a step program's environment (see the package comment).
func stepEnv(extra []string, d *TemplateData) ([]string, error) {
	parent := os.Environ()
	env := make([]string, 0, len(parent)+len(extra)+7+len(d.Target.Vars)+len(d.Config))
	for _, kv := range parent {
		if !strings.HasPrefix(kv, envPrefix) {
			env = append(env, kv)
		}
	}
	env = append(env, extra...)
	env = append(env,
		"DAYTWO_ENV="+d.Env,
		"DAYTWO_SERVICE="+d.Service,
		"DAYTWO_TARGET="+d.Target.Name,
		"DAYTWO_VERSION="+d.Version,
		"DAYTWO_PREVIOUS_VERSION="+d.PreviousVersion,
		"DAYTWO_CHANGE="+d.Change,
		"DAYTWO_ROLLBACK="+fmt.Sprint(d.Rollback),
	)
	env, err := appendPrefixed(env, "DAYTWO_TARGET_", "target var", d.Target.Vars)
	if err != nil {
		return nil, err
	}
	return appendPrefixed(env, "DAYTWO_CFG_", "config key", d.Config)
}

func appendPrefixed(env []string, prefix, what string, m map[string]string) ([]string, error) {
	if len(m) == 0 {
		return env, nil
	}
	seen := make(map[string]string, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		name, err := envName(k)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", what, k, err)
		}
		if other, ok := seen[name]; ok {
			return nil, fmt.Errorf("%ss %q and %q both become %s%s", what, other, k, prefix, name)
		}
		seen[name] = k
		env = append(env, prefix+name+"="+m[k])
	}
	return env, nil
}

var errEmptyName = errors.New("empty name")

// envName upper-cases k and replaces anything outside [A-Z0-9_] with '_'.
func envName(k string) (string, error) {
	if k == "" {
		return "", errEmptyName
	}
	b := []byte(strings.ToUpper(k))
	for i, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
			b[i] = '_'
		}
	}
	return string(b), nil
}
