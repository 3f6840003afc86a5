package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/ops/policy"
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

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

func validate(c *Config) []Problem {
	v := &validator{}
	if c.Store.Path == "" {
		v.add("store.path", "must not be empty")
	}
	v.serviceNow(c.ServiceNow)
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
	for i, e := range c.Environments {
		key := fmt.Sprintf("environments[%d]", i)
		switch {
		case e.Name == "":
			v.add(key+".name", "must not be empty")
		case !nameRE.MatchString(e.Name):
			v.add(key+".name", "%q: use lower-case letters, digits, - and _", e.Name)
		default:
			if j, dup := envs[e.Name]; dup {
				v.add(key+".name", "%q is already the name of environments[%d]", e.Name, j)
			}
			envs[e.Name] = i
		}
	}
	for i, e := range c.Environments {
		v.environment(fmt.Sprintf("environments[%d]", i), e, envs)
	}
	v.promotionCycles(c.Environments)
	for i, f := range c.Freezes {
		v.freeze(fmt.Sprintf("freezes[%d]", i), f, envs)
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
		v.envRefs(key+".environments", p.Environments, envs)
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

func (v *validator) environment(key string, e ops.Environment, envs map[string]int) {
	if e.PromoteFrom != "" {
		if _, ok := envs[e.PromoteFrom]; !ok {
			v.add(key+".promote_from", "no environment is named %q", e.PromoteFrom)
		} else if e.PromoteFrom == e.Name {
			v.add(key+".promote_from", "an environment cannot promote from itself")
		}
	}
	if e.RequiresChange {
		c := e.Change
		v.oneOf(key+".change.type", c.Type, "normal", "standard", "emergency")
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
	if len(e.Targets) == 0 {
		v.add(key+".targets", "an environment needs at least one target")
	}
	seen := map[string]bool{}
	for j, t := range e.Targets {
		tk := fmt.Sprintf("%s.targets[%d].name", key, j)
		if t.Name == "" {
			v.add(tk, "must not be empty")
		} else if seen[t.Name] {
			v.add(tk, "%q appears twice", t.Name)
		}
		seen[t.Name] = true
	}
	if len(e.Deploy.Command) == 0 {
		v.add(key+".deploy.command", "must name the program to run (argv list, no shell)")
	}
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
		if kinds != 1 {
			v.add(hk, "set exactly one of http, tcp or command")
		}
		if h.Retries < 0 {
			v.add(hk+".retries", "cannot be negative")
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

var configKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

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
