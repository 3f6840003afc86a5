package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/daytwo/daytwo/ops"
)

func fixture(name string) string {
	p, _ := filepath.Abs(filepath.Join("..", "..", "..", "..", "fixtures", "config", name))
	return p
}

func noEnv(vars ...string) (func(string) string, func() []string) {
	m := map[string]string{}
	for i := 0; i+1 < len(vars); i += 2 {
		m[vars[i]] = vars[i+1]
	}
	return func(k string) string { return m[k] }, func() []string {
		var out []string
		for k, v := range m {
			out = append(out, k+"="+v)
		}
		return out
	}
}

func TestExampleConfigLoads(t *testing.T) {
	getenv, environ := noEnv()
	cfg, err := Load(Source{File: fixture("daytwo.example.yaml"), Getenv: getenv, Environ: environ})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Environments) != 2 || cfg.Environments[1].Name != "production" {
		t.Fatalf("environments = %+v", cfg.Environments)
	}
	prod := cfg.Environments[1]
	if !prod.RequiresChange || prod.Change.Type != "normal" || prod.Change.Window != 2*time.Hour || prod.PromoteFrom != "staging" {
		t.Fatalf("production = %+v", prod)
	}
	if got := cfg.Environments[0].Strategy.Bake; got != 5*time.Second {
		t.Fatalf("staging bake = %s", got)
	}
	if h := prod.Health[0]; h.Retries != 3 || h.Interval != time.Second || h.HTTP.ExpectStatus != 200 {
		t.Fatalf("health defaults = %+v", h)
	}
	wantCmd := filepath.Join(filepath.Dir(fixture("daytwo.example.yaml")), "deploy.sh")
	if got := prod.Deploy.Command[0]; got != wantCmd {
		t.Fatalf("deploy command = %q, want %q (relative to the file)", got, wantCmd)
	}
	if got := cfg.Store.Path; got != filepath.Join(filepath.Dir(fixture("daytwo.example.yaml")), "daytwo.db") {
		t.Fatalf("store.path = %q", got)
	}
	if len(cfg.Freezes) != 2 || cfg.Freezes[0].End.Year() != 2027 || cfg.Freezes[1].Duration != 60*time.Hour {
		t.Fatalf("freezes = %+v", cfg.Freezes)
	}
	if len(cfg.Policies) != 2 || cfg.Policies[1].Action != ops.PolicyWarn {
		t.Fatalf("policies = %+v", cfg.Policies)
	}
	if cfg.Environments[1].Config["feature_x"] != "off" {
		t.Fatalf("config map = %v", cfg.Environments[1].Config)
	}
}

func TestBrokenConfigReportsEveryProblem(t *testing.T) {
	getenv, environ := noEnv()
	_, err := Load(Source{File: fixture("broken.yaml"), Getenv: getenv, Environ: environ})
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *config.Error", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"broken.yaml",
		"servicenow.auth.password: secrets are not read from the file",
		"sync.intervall: unknown key (did you mean \"interval\"?)",
		"servicenow.timeout:",
		"environments[0].strategy.max_parallel:",
		"environments[0].strategy.batch_size",
		"servicenow.auth.method: \"kerberos\" is not one of basic, oauth",
		"environments[1].promote_from: no environment is named \"stagin\"",
		"freezes[0].timezone:",
		"policies[0].expr: policy \"broken-cel\": invalid CEL",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("error text leaks the secret:\n%s", msg)
	}
}

func TestSemanticProblemsAllReported(t *testing.T) {
	// The broken fixture minus its type errors: semantic validation runs only
	// on a tree that decoded, so check it on its own.
	dir := t.TempDir()
	path := filepath.Join(dir, "d.yaml")
	body := `
servicenow:
  instance: http://sn.example.com
  auth: {method: kerberos}
  page_size: 0
environments:
  - name: staging
    targets: [{name: stg-1}, {name: stg-1}]
    deploy: {command: ["./deploy.sh", "{{ .Version"]}
  - name: production
    promote_from: stagin
    requires_change: true
    change: {type: urgent}
    targets: []
    deploy: {command: []}
    health:
      - http: {url: "http://127.0.0.1:1/healthz"}
        tcp: {address: "127.0.0.1:1"}
freezes:
  - name: weekend
    environments: [production, qa]
    cron: "0 18 * * FRY"
    duration: 60h
    timezone: Mars/Olympus_Mons
policies:
  - name: broken-cel
    expr: update.version ==
    action: stop
console:
  theme: solarized
`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv, environ := noEnv()
	_, err := Load(Source{File: path, Getenv: getenv, Environ: environ})
	if err == nil {
		t.Fatal("want errors")
	}
	msg := err.Error()
	for _, want := range []string{
		"servicenow.instance: \"http://sn.example.com\": plain http is allowed only on loopback",
		"servicenow.auth.method: \"kerberos\" is not one of basic, oauth",
		"servicenow.page_size: 0 is out of range",
		"environments[0].targets[1].name: \"stg-1\" appears twice",
		"environments[0].deploy.command[1]: bad template",
		"environments[1].promote_from: no environment is named \"stagin\"",
		"environments[1].change.type: \"urgent\" is not one of",
		"environments[1].targets: an environment needs at least one target",
		"environments[1].deploy.command: must name the program",
		"environments[1].health[0]: set exactly one of http, tcp, command, ansible, metrics or prometheus",
		"freezes[0].environments[1]: no environment is named \"qa\"",
		"freezes[0].cron:",
		"freezes[0].timezone: \"Mars/Olympus_Mons\" is not a known time zone",
		"policies[0].action: \"stop\" is not one of block, warn",
		"policies[0].expr: policy \"broken-cel\": invalid CEL",
		"console.theme: \"solarized\" is not one of auto, dark, light, none",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

func TestLayersEnvAndFlagsWin(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "pw")
	if err := os.WriteFile(secret, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "daytwo.yaml")
	body := `
store: {path: state/d.db}
servicenow:
  instance: https://file.service-now.com
  auth: {username: file-user, password_file: pw}
sync: {interval: 10s}
environments:
  - name: dev
    targets: [{name: d1, vars: {port: 8080}}]
    deploy: {command: [deploy]}
    config: {replicas: 3, debug: true}
    health:
      - http:
          url: "http://x/{{ .Target.Vars.port }}"
          expect_json: {build.version: "{{ .Version }}"}
        retries: 0
`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv, environ := noEnv("DAYTWO_SN_INSTANCE", "http://127.0.0.1:8089", "DAYTWO_SN_USER", "daytwo", "DAYTWO_SYNC_INTERVAL", "5s", "DAYTWO_UNRELATED", "x")
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.String("db", "", "")
	fs.Bool("read-only", false, "")
	if err := fs.Parse([]string{"--db", "/tmp/flag.db"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(Source{File: path, Getenv: getenv, Environ: environ, Flags: fs, FlagKeys: map[string]string{"db": "store.path", "read-only": "console.read_only"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store.Path != "/tmp/flag.db" {
		t.Errorf("flag did not win: store.path = %q", cfg.Store.Path)
	}
	if cfg.ServiceNow.Instance != "http://127.0.0.1:8089" || cfg.ServiceNow.Auth.Username != "daytwo" || cfg.Sync.Interval != 5*time.Second {
		t.Errorf("env did not win: %+v %+v", cfg.ServiceNow, cfg.Sync)
	}
	if cfg.Console.ReadOnly {
		t.Error("an unset flag must not override")
	}
	if cfg.Secrets.Password != "from-file" {
		t.Errorf("password_file not read relative to the file")
	}
	e := cfg.Environments[0]
	if e.Config["replicas"] != "3" || e.Config["debug"] != "true" || e.Targets[0].Vars["port"] != "8080" {
		t.Errorf("scalars in string maps: %v %v", e.Config, e.Targets[0].Vars)
	}
	if e.Health[0].Retries != 0 {
		t.Errorf("explicit retries: 0 was overridden: %d", e.Health[0].Retries)
	}
	if e.Health[0].HTTP.ExpectJSON["build.version"] != "{{ .Version }}" {
		t.Errorf("dotted expect_json key lost: %v", e.Health[0].HTTP.ExpectJSON)
	}

	getenv, environ = noEnv("DAYTWO_SN_PASSWORD", "from-env")
	cfg, err = Load(Source{File: path, Getenv: getenv, Environ: environ})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Secrets.Password != "from-env" {
		t.Errorf("DAYTWO_SN_PASSWORD must win over password_file")
	}
	if s := cfg.Secrets.String() + " " + cfg.Secrets.GoString(); strings.Contains(s, "from-env") {
		t.Errorf("secrets print: %s", s)
	}
}

func TestConfigFileResolution(t *testing.T) {
	getenv, environ := noEnv("DAYTWO_CONFIG", "/nonexistent/daytwo.yaml")
	_, err := Load(Source{Getenv: getenv, Environ: environ})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/daytwo.yaml") {
		t.Fatalf("missing $DAYTWO_CONFIG file: err = %v", err)
	}
	t.Chdir(t.TempDir())
	getenv, environ = noEnv()
	cfg, err := Load(Source{Getenv: getenv, Environ: environ})
	if err != nil || cfg.File != "" || len(cfg.Environments) != 0 {
		t.Fatalf("no file at all = %+v, %v; want defaults", cfg, err)
	}
}

func TestKeyOrder(t *testing.T) {
	if !keyLess("environments[2].name", "environments[10].name") || keyLess("b", "a") {
		t.Fatal("keyLess")
	}
}
