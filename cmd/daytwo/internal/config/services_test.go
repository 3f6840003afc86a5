package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func loadText(t *testing.T, text string) (*Config, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "daytwo.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv, environ := noEnv()
	return Load(Source{File: p, Getenv: getenv, Environ: environ})
}

// TestServicesExpandIntoPairs: each service's entry becomes one (service,
// environment) pair keyed service/stage, built from the stage's gating, the
// service's process and the entry's differences; promotion follows the
// stage's promote_from within the service.
func TestServicesExpandIntoPairs(t *testing.T) {
	getenv, environ := noEnv()
	cfg, err := Load(Source{File: fixture("services.yaml"), Getenv: getenv, Environ: environ})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, u := range cfg.Environments {
		keys = append(keys, u.Name)
	}
	want := "checkout/dev checkout/staging checkout/production payments/staging payments/production search/production"
	if got := strings.Join(keys, " "); got != want {
		t.Fatalf("pairs = %s\nwant    %s", got, want)
	}
	if len(cfg.Stages) != 3 || cfg.Stages[2].Name != "production" || len(cfg.Stages[2].Targets) != 0 {
		t.Fatalf("stages = %+v", cfg.Stages)
	}
	prod, ok := cfg.Environment("checkout/production")
	if !ok {
		t.Fatal("no checkout/production")
	}
	switch {
	case prod.Service != "checkout" || prod.Stage != "production" || prod.StageName() != "production" || prod.Tier != "production":
		t.Fatalf("identity = %q %q tier %q", prod.Service, prod.Stage, prod.Tier)
	case !prod.RequiresChange || prod.Change.Type != "normal" || prod.Change.AssignmentGroup != "Platform Ops" || prod.Change.Window != 2*time.Hour:
		t.Fatalf("gating not from the stage: %+v", prod.Change)
	case prod.Change.CmdbCI != "checkout-prod":
		t.Fatalf("cmdb_ci = %q, want the entry's override", prod.Change.CmdbCI)
	case prod.PromoteFrom != "checkout/staging":
		t.Fatalf("promote_from = %q", prod.PromoteFrom)
	case prod.Config["log_level"] != "info" || prod.Config["replicas"] != "3":
		t.Fatalf("config = %v, want the service's merged with the entry's", prod.Config)
	case prod.Strategy.Bake != 10*time.Second || len(prod.Targets) != 2:
		t.Fatalf("strategy/targets = %+v %+v", prod.Strategy, prod.Targets)
	case len(prod.Health) != 1 || prod.Health[0].Retries != 3 || prod.Health[0].HTTP.ExpectStatus != 200:
		t.Fatalf("health (with defaults) = %+v", prod.Health)
	case prod.Deploy.Command[0] != filepath.Join(filepath.Dir(fixture("services.yaml")), "deploy.sh"):
		t.Fatalf("deploy path not resolved against the file: %q", prod.Deploy.Command[0])
	}
	stg, _ := cfg.Environment("checkout/staging")
	if stg.Change.CmdbCI != "checkout-app" || stg.PromoteFrom != "checkout/dev" || stg.Strategy.BatchSize.String() != "1" {
		t.Fatalf("checkout/staging = ci %q from %q batch %v", stg.Change.CmdbCI, stg.PromoteFrom, stg.Strategy.BatchSize)
	}
	pay, _ := cfg.Environment("payments/staging")
	if pay.PromoteFrom != "" {
		t.Fatalf("payments does not run in dev: promote_from = %q", pay.PromoteFrom)
	}
	if _, ok := cfg.Environment("search/staging"); ok {
		t.Fatal("search does not run in staging")
	}
}

// TestWithoutServicesOneImplicitService: today's schema loads unchanged, as
// one service named after its CI, whose pairs keep the plain names.
func TestWithoutServicesOneImplicitService(t *testing.T) {
	getenv, environ := noEnv()
	cfg, err := Load(Source{File: fixture("daytwo.example.yaml"), Getenv: getenv, Environ: environ})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range cfg.Environments {
		if e.Service != "checkout-service" || e.Stage != e.Name || strings.Contains(e.Name, "/") {
			t.Fatalf("%s: service %q stage %q", e.Name, e.Service, e.Stage)
		}
	}
	if len(cfg.Stages) != len(cfg.Environments) {
		t.Fatalf("stages = %d, environments = %d", len(cfg.Stages), len(cfg.Environments))
	}
	cfg, err = loadText(t, "environments:\n  - {name: dev, targets: [{name: a}], deploy: {command: [\"true\"]}}\n")
	if err != nil {
		t.Fatal(err)
	}
	if e := cfg.Environments[0]; e.Service != DefaultService || e.Name != "dev" {
		t.Fatalf("no CI: service %q name %q", e.Service, e.Name)
	}
}

// TestInheritHistoryKeepsPlainNames: the service that inherits the history
// of a single-service database keeps plain environment names as keys.
func TestInheritHistoryKeepsPlainNames(t *testing.T) {
	cfg, err := loadText(t, `
environments: [{name: staging}, {name: production, promote_from: staging}]
services:
  - name: checkout
    inherit_history: true
    deploy: {command: ["true"]}
    environments: [{name: staging, targets: [{name: a}]}, {name: production, targets: [{name: b}]}]
  - name: payments
    deploy: {command: ["true"]}
    environments: [{name: production, targets: [{name: c}]}]
`)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, u := range cfg.Environments {
		keys = append(keys, u.Name+"<"+u.PromoteFrom)
	}
	if got := strings.Join(keys, " "); got != "staging< production<staging payments/production<" {
		t.Fatalf("keys = %s", got)
	}
}

// TestServiceProblemsNameTheKeyWritten: a problem in a pair is reported at
// the key the user wrote — the service, its entry or the shared stage.
func TestServiceProblemsNameTheKeyWritten(t *testing.T) {
	_, err := loadText(t, `
environments:
  - {name: staging, targets: [{name: x}]}
  - {name: production, requires_change: true, change: {type: sometimes}}
services:
  - name: checkout
    deploy: {command: ["{{ .Nope"]}
    environments:
      - {name: staging}
      - {name: prod, targets: [{name: a}]}
      - {name: staging, targets: [{name: b}]}
  - name: Checkout
    deploy: {command: ["true"]}
    environments: [{name: production, targets: [{name: c}], health: [{tcp: {address: ""}}]}]
  - name: payments
    inherit_history: true
    deploy: {command: ["true"]}
    environments: []
  - name: search
    inherit_history: true
    environments: [{name: production, targets: [{name: d}], deployy: {}}]
`)
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("err = %v", err)
	}
	got := map[string]string{}
	for _, p := range cerr.Problems {
		got[p.Key] = p.Message
	}
	for key, want := range map[string]string{
		"environments[0].targets":                           "belong to each service's entry",
		"environments[1].change.type":                       "sometimes",
		"services[0].deploy.command[0]":                     "",
		"services[0].environments[0].targets":               "at least one target",
		"services[0].environments[1].name":                  `no environment is named "prod"`,
		"services[0].environments[2].name":                  "appears twice",
		"services[1].name":                                  "lower-case",
		"services[1].environments[0].health[0].tcp.address": "must not be empty",
		"services[2].environments":                          "at least one environment",
		"services[3].inherit_history":                       "only one service",
		"services[3].environments[0].deployy":               "",
	} {
		msg, ok := got[key]
		if !ok || !strings.Contains(msg, want) {
			t.Errorf("%s: got %q (present %v), want it to mention %q\nall: %v", key, msg, ok, want, cerr.Problems)
		}
	}
	if _, dup := got["services[0].environments[2].deploy.command[0]"]; dup {
		t.Errorf("the service's bad template is reported at each pair: %v", cerr.Problems)
	}
}
