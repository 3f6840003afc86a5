package config

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/ops/exec"
	"github.com/daytwo/daytwo/ops/policy"
)

// validName is ^[a-z0-9][a-z0-9_-]{0,62}$ by hand (compiled, the counted
// repetition cost every command ~0.1 ms at start).
func validName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '-') {
			return false
		}
	}
	return true
}

// cronParser accepts standard five-field specs and descriptors (@daily).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

type validator struct{ probs []Problem }

func (v *validator) add(key, format string, args ...any) {
	v.probs = append(v.probs, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) oneOf(key, val string, allowed ...string) {
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	v.add(key, "%q is not one of %s", val, strings.Join(allowed, ", "))
}

// tmpl checks that s parses as a text/template (URLs and argv may use
// {{ .Target.Vars.url }} and friends).
func (v *validator) tmpl(key, s string) {
	if _, err := template.New(key).Option("missingkey=error").Parse(s); err != nil {
		v.add(key, "bad template: %v", err)
	}
}

// storeURL checks store.url: a PostgreSQL URL without a password (the
// problem never repeats the URL, which might hold one).
func (v *validator) storeURL(raw string) {
	if raw == "" {
		return
	}
	if !strings.HasPrefix(raw, "postgres://") && !strings.HasPrefix(raw, "postgresql://") {
		v.add("store.url", "want a PostgreSQL URL (postgres://user@host:5432/dbname); for SQLite set store.path")
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		v.add("store.url", "not a URL (postgres://user@host:5432/dbname)")
		return
	}
	_, hasPW := u.User.Password()
	if hasPW || u.Query().Has("password") {
		v.add("store.url", "must not contain a password: set DAYTWO_DB_PASSWORD (or PGPASSWORD) or store.password_file")
	}
}

func validate(c *Config, origins []unitOrigin) []Problem {
	v := &validator{}
	if c.Store.Path == "" {
		v.add("store.path", "must not be empty")
	}
	v.storeURL(c.Store.URL)
	v.serviceNow(c.ServiceNow)
	if c.Console.Theme != "" {
		v.oneOf("console.theme", c.Console.Theme, "auto", "dark", "light", "none")
	}
	if c.Sync.Interval < time.Second {
		v.add("sync.interval", "%s is too short: at least 1s", c.Sync.Interval)
	}
	if c.Sync.LeaseTTL < time.Second {
		v.add("sync.lease_ttl", "%s is too short: at least 1s", c.Sync.LeaseTTL)
	}
	if _, _, err := net.SplitHostPort(c.Sync.Listen); c.Sync.Listen != "" && err != nil {
		v.add("sync.listen", "%q is not host:port", c.Sync.Listen)
	}

	envs := map[string]int{}
	for i, e := range c.Stages {
		key := fmt.Sprintf("environments[%d]", i)
		switch {
		case e.Name == "":
			v.add(key+".name", "must not be empty")
		case !validName(e.Name):
			v.add(key+".name", "%q: use lower-case letters, digits, - and _", e.Name)
		default:
			if j, dup := envs[e.Name]; dup {
				v.add(key+".name", "%q is already the name of environments[%d]", e.Name, j)
			}
			envs[e.Name] = i
		}
	}
	if len(c.Services) == 0 {
		for i, e := range c.Environments {
			v.environment(fmt.Sprintf("environments[%d]", i), e, envs)
		}
	} else {
		v.validateServices(c, envs)
		for i, st := range c.Stages {
			v.gating(fmt.Sprintf("environments[%d]", i), st, envs)
		}
		units := map[string]int{}
		for i, u := range c.Environments {
			units[u.Name] = i
		}
		seen := map[Problem]bool{}
		for _, p := range v.probs {
			seen[p] = true
		}
		for i, u := range c.Environments {
			sub := &validator{}
			sub.environment("", u, units)
			for _, p := range sub.probs {
				p.Key = unitKeyOf(c.merged, origins[i], p.Key)
				if !seen[p] {
					seen[p] = true
					v.probs = append(v.probs, p)
				}
			}
		}
	}
	v.promotionCycles(c.Stages)
	refs := maps.Clone(envs) // freezes and policies name stages or pairs
	services := map[string]int{}
	for i, u := range c.Environments {
		refs[u.Name] = i
		services[u.Service] = i
	}
	for i, f := range c.Freezes {
		v.freeze(fmt.Sprintf("freezes[%d]", i), f, refs)
		v.serviceRefs(fmt.Sprintf("freezes[%d].services", i), f.Services, services)
	}
	celEnv, err := policy.NewEnv()
	if err != nil {
		v.add("policies", "cannot build the CEL environment: %v", err)
	}
	names := map[string]bool{}
	for i, p := range c.Policies {
		key := fmt.Sprintf("policies[%d]", i)
		if p.Name == "" {
			v.add(key+".name", "must not be empty")
		} else if names[p.Name] {
			v.add(key+".name", "%q is used by another policy", p.Name)
		}
		names[p.Name] = true
		v.envRefs(key+".environments", p.Environments, refs)
		v.serviceRefs(key+".services", p.Services, services)
		v.oneOf(key+".action", string(p.Action), string(ops.PolicyBlock), string(ops.PolicyWarn))
		switch {
		case strings.TrimSpace(p.Expr) == "":
			v.add(key+".expr", "must not be empty")
		case celEnv != nil:
			if _, err := policy.Compile(celEnv, p.Expr); err != nil {
				v.add(key+".expr", "policy %q: %v", p.Name, err)
			}
		}
	}
	return v.probs
}

func (v *validator) serviceNow(sn ServiceNow) {
	if sn.Instance != "" {
		u, err := url.Parse(sn.Instance)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			v.add("servicenow.instance", "%q is not a URL such as https://example.service-now.com", sn.Instance)
		case u.Scheme == "http" && !isLoopback(u.Hostname()):
			v.add("servicenow.instance", "%q: plain http is allowed only on loopback (the simulator); use https", sn.Instance)
		case u.User != nil:
			v.add("servicenow.instance", "credentials do not belong in the URL; use servicenow.auth")
		}
	}
	a := sn.Auth
	v.oneOf("servicenow.auth.method", a.Method, "basic", "oauth")
	if a.Method == "oauth" {
		v.oneOf("servicenow.auth.grant", a.Grant, "password", "client_credentials")
		if a.ClientID == "" {
			v.add("servicenow.auth.client_id", "oauth needs a client_id (or DAYTWO_SN_CLIENT_ID)")
		}
	}
	if sn.Timeout <= 0 {
		v.add("servicenow.timeout", "must be positive")
	}
	if sn.PageSize < 1 || sn.PageSize > 10000 {
		v.add("servicenow.page_size", "%d is out of range 1..10000", sn.PageSize)
	}
	if sn.CorrelationPrefix == "" || strings.ContainsAny(sn.CorrelationPrefix, ":^=") {
		v.add("servicenow.correlation_prefix", "%q: must be non-empty without ':', '^' or '='", sn.CorrelationPrefix)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (v *validator) envRefs(key string, names []string, envs map[string]int) {
	for j, n := range names {
		if _, ok := envs[n]; !ok {
			v.add(fmt.Sprintf("%s[%d]", key, j), "no environment is named %q", n)
		}
	}
}

func (v *validator) serviceRefs(key string, names []string, services map[string]int) {
	for j, n := range names {
		if _, ok := services[n]; !ok {
			v.add(fmt.Sprintf("%s[%d]", key, j), "no service is named %q", n)
		}
	}
}

func (v *validator) environment(key string, e ops.Environment, envs map[string]int) {
	v.gating(key, e, envs)
	v.deployment(key, e)
	// In the services form a service's verify block serves gated and
	// ungated stages alike, and after_close only applies where gated; an
	// environment of its own says what it means.
	if e.Verify != nil && e.Verify.AfterClose && !e.RequiresChange {
		v.add(key+".verify.after_close", "only applies on a gated environment (requires_change: true): without a change there is nothing to close before the window")
	}
}

// gating checks what an environment decides about updates: promotion and
// the change request.
func (v *validator) gating(key string, e ops.Environment, envs map[string]int) {
	if e.PromoteFrom != "" {
		if _, ok := envs[e.PromoteFrom]; !ok {
			v.add(key+".promote_from", "no environment is named %q", e.PromoteFrom)
		} else if e.PromoteFrom == e.Name {
			v.add(key+".promote_from", "an environment cannot promote from itself")
		}
	}
	if e.RequiresChange {
		c := e.Change
		v.oneOf(key+".change.type", string(c.Type), "normal", "standard", "emergency")
		if c.Type == "standard" && c.Template == "" {
			v.add(key+".change.template", "a standard change needs the name of its template")
		}
		if c.Risk != "" {
			v.oneOf(key+".change.risk", strings.ToLower(c.Risk), "low", "moderate", "high", "very high")
		}
		if c.Impact != "" {
			v.oneOf(key+".change.impact", strings.ToLower(c.Impact), "low", "medium", "high")
		}
	}
}

// deployment checks how an environment's release is put in place: its
// targets, commands, probes, health checks and strategy.
func (v *validator) deployment(key string, e ops.Environment) {
	if len(e.Targets) == 0 {
		v.add(key+".targets", "an environment needs at least one target")
	}
	seen := map[string]bool{}
	for j, t := range e.Targets {
		tk := fmt.Sprintf("%s.targets[%d].name", key, j)
		switch {
		case t.Name == "":
			v.add(tk, "must not be empty")
		case ops.ValidateVersion(t.Name) != nil: // the version rule: names are data that reach paths, argv and evidence
			// Target names reach file paths, argv, environment variables,
			// run-log lines and work notes: a '/', '$(', or a newline that
			// forges a log line must never get there.
			v.add(tk, "%q: use letters, digits, '.', '_', '+' and '-', starting with a letter or digit (at most 128), as for versions", t.Name)
		case seen[t.Name]:
			v.add(tk, "%q appears twice", t.Name)
		}
		seen[t.Name] = true
	}
	v.targetVarRefs(key, e)
	v.argSizes(key, e)
	v.executors(key, e)
	for j, a := range e.Deploy.Command {
		v.tmpl(fmt.Sprintf("%s.deploy.command[%d]", key, j), a)
	}
	for j, a := range e.Deploy.Rollback {
		v.tmpl(fmt.Sprintf("%s.deploy.rollback[%d]", key, j), a)
	}
	p := e.VersionProbe
	if p.HTTP != nil && len(p.Command) > 0 {
		v.add(key+".version_probe", "set http or command, not both")
	}
	if p.HTTP != nil {
		v.url(key+".version_probe.http.url", p.HTTP.URL)
	}
	for j, h := range e.Health {
		hk := fmt.Sprintf("%s.health[%d]", key, j)
		kinds := 0
		if h.HTTP != nil {
			kinds++
			v.url(hk+".http.url", h.HTTP.URL)
			if h.HTTP.ExpectStatus < 100 || h.HTTP.ExpectStatus > 599 {
				v.add(hk+".http.expect_status", "%d is not an HTTP status", h.HTTP.ExpectStatus)
			}
			if h.HTTP.Method != "" {
				v.oneOf(hk+".http.method", h.HTTP.Method, "GET", "HEAD", "POST")
			}
			for k, val := range h.HTTP.ExpectJSON {
				v.tmpl(hk+".http.expect_json."+k, val)
			}
		}
		if h.TCP != nil {
			kinds++
			if h.TCP.Address == "" {
				v.add(hk+".tcp.address", "must not be empty")
			}
			v.tmpl(hk+".tcp.address", h.TCP.Address)
		}
		if len(h.Command) > 0 {
			kinds++
		}
		if a := h.Ansible; a != nil {
			kinds++
			if a.Playbook == "" {
				v.add(hk+".ansible.playbook", "must name the playbook the check runs")
			}
			if a.Inventory == "" {
				v.add(hk+".ansible.inventory", "must name an inventory file or directory")
			}
		}
		if h.Metrics != nil || h.Prometheus != nil {
			kinds++
			if h.Metrics != nil && h.Prometheus != nil {
				kinds++
			}
			v.metricCheck(hk, h, e)
		}
		if kinds != 1 {
			v.add(hk, "set exactly one of http, tcp, command, ansible, metrics or prometheus")
		}
		if h.Retries < 0 {
			v.add(hk+".retries", "cannot be negative")
		}
	}
	if vw := e.Verify; vw != nil {
		if vw.Window <= 0 {
			v.add(key+".verify.window", "must be a positive duration such as 30m")
		}
		if vw.OnFailure != "" {
			v.oneOf(key+".verify.on_failure", vw.OnFailure, "rollback", "incident", "alert")
		}
		if len(e.Health) == 0 {
			v.add(key+".verify", "a verification window needs health checks to run")
		}
	}
	s := e.Strategy
	if s.MaxParallel < 0 {
		v.add(key+".strategy.max_parallel", "cannot be negative")
	}
	if s.MaxFailures < 0 {
		v.add(key+".strategy.max_failures", "cannot be negative")
	}
	for k := range e.Config {
		if !configKeyRE.MatchString(k) {
			v.add(key+".config."+k, "config keys become DAYTWO_CFG_<KEY> variables: use letters, digits and _")
		}
	}
}

// metricCheck parses a metrics or prometheus check as the engine will,
// so that a bad expression or setting fails `config check` with the
// check's key and field, and requires the bake the check runs in.
func (v *validator) metricCheck(hk string, h ops.HealthCheck, e ops.Environment) {
	if e.Strategy.Bake <= 0 && (e.Verify == nil || e.Verify.Window <= 0) {
		kind := "metrics"
		if h.Prometheus != nil {
			kind = "prometheus"
		}
		v.add(hk+"."+kind, "metric checks run during each batch's bake and the verification window: set strategy.bake (e.g. 30s) or verify.window")
	}
	if h.Metrics != nil && h.Prometheus != nil {
		return // reported as two kinds
	}
	if err := exec.ValidateMetricCheck(hk, h); err != nil {
		key, msg, ok := strings.Cut(err.Error(), ": ")
		if !ok {
			key, msg = hk, err.Error()
		}
		v.add(key, "%s", msg)
	}
}

var configKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// templates lists every templated string of an environment with its key.
func templates(key string, e ops.Environment) [][2]string {
	var out [][2]string
	add := func(k, s string) { out = append(out, [2]string{k, s}) }
	for j, a := range e.Deploy.Command {
		add(fmt.Sprintf("%s.deploy.command[%d]", key, j), a)
	}
	for j, a := range e.Deploy.Rollback {
		add(fmt.Sprintf("%s.deploy.rollback[%d]", key, j), a)
	}
	if ss := e.Deploy.SSH; ss != nil {
		add(key+".deploy.ssh.host", ss.Host)
		for j, a := range ss.Command {
			add(fmt.Sprintf("%s.deploy.ssh.command[%d]", key, j), a)
		}
		for j, a := range ss.Rollback {
			add(fmt.Sprintf("%s.deploy.ssh.rollback[%d]", key, j), a)
		}
	}
	if p := e.VersionProbe; p.HTTP != nil {
		add(key+".version_probe.http.url", p.HTTP.URL)
	}
	for j, a := range e.VersionProbe.Command {
		add(fmt.Sprintf("%s.version_probe.command[%d]", key, j), a)
	}
	for j, h := range e.Health {
		hk := fmt.Sprintf("%s.health[%d]", key, j)
		if h.HTTP != nil {
			add(hk+".http.url", h.HTTP.URL)
			add(hk+".http.expect_body", h.HTTP.ExpectBody)
			for _, k := range slices.Sorted(maps.Keys(h.HTTP.ExpectJSON)) {
				add(hk+".http.expect_json."+k, h.HTTP.ExpectJSON[k])
			}
		}
		if h.TCP != nil {
			add(hk+".tcp.address", h.TCP.Address)
		}
		for k, a := range h.Command {
			add(fmt.Sprintf("%s.command[%d]", hk, k), a)
		}
		if h.Metrics != nil {
			add(hk+".metrics.url", h.Metrics.URL)
		}
		if h.Prometheus != nil {
			add(hk+".prometheus.query", h.Prometheus.Query)
		}
	}
	return out
}

// targetVarRefs reports a template that uses a target var (.Target.Vars.x
// or index .Target.Vars "x") some target does not set: templates fail on a
// missing key, so that target's step would fail mid-rollout.
func (v *validator) targetVarRefs(key string, e ops.Environment) {
	for _, tk := range templates(key, e) {
		for _, name := range varRefs(tk[1]) {
			var missing []string
			for j, t := range e.Targets {
				if _, ok := t.Vars[name]; !ok {
					missing = append(missing, fmt.Sprintf("%q (%s.targets[%d])", t.Name, key, j))
				}
			}
			if len(missing) > 0 {
				v.add(tk[0], "uses .Target.Vars.%s, which target %s does not set", name, strings.Join(missing, ", "))
			}
		}
	}
}

// varRefs returns the target vars a template refers to, in order, once each.
func varRefs(s string) []string {
	t, err := template.New("").Parse(s)
	if err != nil || t.Tree == nil {
		return nil // a parse error is reported by tmpl
	}
	var refs []string
	ref := func(name string) {
		if !slices.Contains(refs, name) {
			refs = append(refs, name)
		}
	}
	isVars := func(n parse.Node) bool {
		f, ok := n.(*parse.FieldNode)
		return ok && len(f.Ident) == 2 && f.Ident[0] == "Target" && f.Ident[1] == "Vars"
	}
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					walk(c)
				}
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n != nil {
				for _, c := range n.Cmds {
					walk(c)
				}
			}
		case *parse.CommandNode:
			if len(n.Args) == 3 {
				if id, ok := n.Args[0].(*parse.IdentifierNode); ok && id.Ident == "index" && isVars(n.Args[1]) {
					if str, ok := n.Args[2].(*parse.StringNode); ok {
						ref(str.Text)
					}
				}
			}
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.FieldNode:
			if len(n.Ident) >= 3 && n.Ident[0] == "Target" && n.Ident[1] == "Vars" {
				ref(n.Ident[2])
			}
		case *parse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walk(n.Pipe) // the body's dot is another value
		case *parse.RangeNode:
			walk(n.Pipe)
		case *parse.TemplateNode:
			walk(n.Pipe)
		}
	}
	walk(t.Root)
	return refs
}

// Limits of a program's arguments and environment (Linux): one string at
// most MAX_ARG_STRLEN (32 pages), all of them together at most ARG_MAX
// (2 MiB by default, shared with the inherited environment, of which
// daytwo leaves half to the process's own).
const (
	maxArgString = 131072 - 1 // bytes, without the terminating NUL
	maxStepAdded = 1 << 20
)

// argSizes reports config values and target vars too large to pass to a
// step: each becomes an environment variable (DAYTWO_CFG_<KEY>,
// DAYTWO_TARGET_<VAR>) and may be rendered into argv, and the exec of the
// step would fail with "argument list too long" on every target.
func (v *validator) argSizes(key string, e ops.Environment) {
	cfgBytes := 0
	for _, k := range slices.Sorted(maps.Keys(e.Config)) {
		n := len("DAYTWO_CFG_") + len(k) + 1 + len(e.Config[k])
		cfgBytes += n + 1
		if n > maxArgString {
			v.add(key+".config."+k, "the value is %d bytes: a step's argument or environment variable holds at most %d (Linux MAX_ARG_STRLEN); ship it as a file and pass its path", len(e.Config[k]), maxArgString)
		}
	}
	for _, val := range e.Deploy.Env {
		cfgBytes += len(val) + 32
	}
	for j, t := range e.Targets {
		total := cfgBytes
		for _, k := range slices.Sorted(maps.Keys(t.Vars)) {
			n := len("DAYTWO_TARGET_") + len(k) + 1 + len(t.Vars[k])
			total += n + 1
			if n > maxArgString {
				v.add(fmt.Sprintf("%s.targets[%d].vars.%s", key, j, k), "target %q: the value is %d bytes: a step's argument or environment variable holds at most %d (Linux MAX_ARG_STRLEN)", t.Name, len(t.Vars[k]), maxArgString)
			}
		}
		if total > maxStepAdded {
			v.add(fmt.Sprintf("%s.targets[%d]", key, j), "target %q: config, deploy.env and vars add %d bytes to each step's environment; at most %d fit beside the inherited environment (ARG_MAX)", t.Name, total, maxStepAdded)
		}
	}
}

func (v *validator) url(key, s string) {
	if s == "" {
		v.add(key, "must not be empty")
		return
	}
	v.tmpl(key, s)
}

// promotionCycles reports promote_from chains that loop.
func (v *validator) promotionCycles(envs []ops.Environment) {
	from := map[string]string{}
	for _, e := range envs {
		from[e.Name] = e.PromoteFrom
	}
	for i, e := range envs {
		seen := map[string]bool{e.Name: true}
		for cur := e.PromoteFrom; cur != "" && cur != e.Name; cur = from[cur] {
			if seen[cur] {
				break
			}
			seen[cur] = true
			if from[cur] == e.Name {
				v.add(fmt.Sprintf("environments[%d].promote_from", i), "promotion loops back to %q", e.Name)
				break
			}
		}
	}
}

func (v *validator) freeze(key string, f ops.Freeze, envs map[string]int) {
	if f.Name == "" {
		v.add(key+".name", "must not be empty")
	}
	v.envRefs(key+".environments", f.Environments, envs)
	oneOff := !f.Start.IsZero() || !f.End.IsZero()
	recurring := f.Cron != ""
	switch {
	case oneOff && recurring:
		v.add(key, "set start/end (one-off) or cron/duration (recurring), not both")
	case oneOff:
		if f.Start.IsZero() || f.End.IsZero() {
			v.add(key, "a one-off freeze needs both start and end (RFC 3339, e.g. 2026-12-20T00:00:00Z)")
		} else if !f.End.After(f.Start) {
			v.add(key+".end", "must be after start")
		}
	case recurring:
		if _, err := cronParser.Parse(f.Cron); err != nil {
			v.add(key+".cron", "%q: %v", f.Cron, err)
		}
		if f.Duration <= 0 {
			v.add(key+".duration", "a recurring freeze needs a positive duration")
		}
	default:
		v.add(key, "set start/end (one-off) or cron/duration (recurring)")
	}
	if f.Timezone != "" {
		if _, err := time.LoadLocation(f.Timezone); err != nil {
			v.add(key+".timezone", "%q is not a known time zone", f.Timezone)
		}
	}
}
