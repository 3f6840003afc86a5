package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daytwo/daytwo/itsm/snowsim"
)

// newServicesWorld is an engine world whose fleet also has the targets of
// two more services, payments and search; its configuration starts in
// today's single-service form (the engine world's).
func newServicesWorld(t *testing.T) *engineWorld {
	t.Helper()
	return newEngineWorldOn(t, "0s", snowsim.Options{}, "stg-1", "stg-2", "prd-1", "prd-2", "prd-3", "pay-stg-1", "pay-prd-1", "srch-prd-1")
}

// writeServicesConfig rewrites the world's configuration in the services
// form: checkout (inheriting the single-service history) on staging and
// production, payments on both, search on production only.
func (w *engineWorld) writeServicesConfig(t *testing.T) {
	t.Helper()
	urls := w.fleet.URLs()
	targets := func(names ...string) string {
		var parts []string
		for _, n := range names {
			parts = append(parts, fmt.Sprintf("{name: %s, vars: {url: %q}}", n, urls[n]))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	cfg := fmt.Sprintf(`
store: {path: d.db}
servicenow:
  instance: %s
  auth: {username: daytwo}
  assignment_group: Platform Ops
sync: {interval: 1s}
environments:
  - name: staging
    strategy: {batch_size: 1}
  - name: production
    promote_from: staging
    requires_change: true
    change: {type: normal, risk: moderate}
    strategy: {batch_size: 1}
services:
  - name: checkout
    cmdb_ci: checkout-service
    inherit_history: true
    deploy: {command: [%[2]q, fleet, deploy, --state-dir, %[3]q], timeout: 30s}
    version_probe: {http: {url: "{{ .Target.Vars.url }}/version"}}
    health:
      - http: {url: "{{ .Target.Vars.url }}/healthz", expect_status: 200}
        retries: 5
        interval: 100ms
    environments:
      - {name: staging, targets: %[4]s}
      - {name: production, targets: %[5]s}
  - name: payments
    cmdb_ci: payments-service
    deploy: {command: [%[2]q, fleet, deploy, --state-dir, %[3]q], timeout: 30s}
    version_probe: {http: {url: "{{ .Target.Vars.url }}/version"}}
    environments:
      - {name: staging, targets: %[6]s}
      - {name: production, targets: %[7]s}
  - name: search
    cmdb_ci: search-service
    deploy: {command: [%[2]q, fleet, deploy, --state-dir, %[3]q], timeout: 30s}
    version_probe: {http: {url: "{{ .Target.Vars.url }}/version"}}
    environments:
      - {name: production, targets: %[8]s}
`, w.sim.URL(), daytwoBin, w.stateDir, targets("stg-1", "stg-2"), targets("prd-1", "prd-2", "prd-3"),
		targets("pay-stg-1"), targets("pay-prd-1"), targets("srch-prd-1"))
	if err := os.WriteFile(w.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServicesKeepHistoryAndRunIndependently: a database made by the
// single-service configuration keeps its history when the file moves to
// services (the service that inherits it shows its release and runs); two
// services are then proposed and run independently in the same stage, the
// CLI lists services and pairs, and names resolve (or are refused in
// words) by service and stage.
func TestServicesKeepHistoryAndRunIndependently(t *testing.T) {
	w := newServicesWorld(t)
	if r := daytwo(t, w.env, "config", "check"); r.code != 0 || !strings.Contains(r.stdout, "one service, checkout-service (named after its CI, or default): to run several services") {
		t.Fatalf("config check of the single-service form should explain the services form: %+v", r)
	}
	u := w.propose(t, "staging", "1.1.0")
	if r := daytwo(t, w.env, "run", u.ID); r.code != 0 {
		t.Fatalf("run staging (single-service form): %+v", r)
	}

	w.writeServicesConfig(t)
	if r := daytwo(t, w.env, "config", "check"); r.code != 0 || !strings.Contains(r.stdout, "3 services (checkout, payments, search) over these environments: 5 (service, environment) pairs") {
		t.Fatalf("config check of the services form: %+v", r)
	}
	r := daytwo(t, w.env, "env", "list", "-o", "json")
	var envs []envRow
	if err := json.Unmarshal([]byte(r.stdout), &envs); err != nil || r.code != 0 {
		t.Fatalf("env list: %+v (%v)", r, err)
	}
	got := map[string]envRow{}
	var keys []string
	for _, e := range envs {
		got[e.Name] = e
		keys = append(keys, e.Name)
	}
	if strings.Join(keys, " ") != "staging production payments/staging payments/production search/production" {
		t.Fatalf("pairs = %v", keys)
	}
	if e := got["staging"]; e.Service != "checkout" || e.Stage != "staging" || e.Version != "1.1.0" {
		t.Fatalf("checkout's staging lost its history: %+v", e)
	}
	if e := got["payments/staging"]; e.Service != "payments" || e.Stage != "staging" || e.Version != "" {
		t.Fatalf("payments/staging = %+v", e)
	}

	// Two services in the same stage: each proposed and run on its own,
	// checkout's history untouched by payments' run.
	pay := w.propose(t, "payments/staging", "3.0.1")
	chk := w.propose(t, "staging", "1.2.0", "--service", "checkout")
	for _, id := range []string{pay.ID, chk.ID} {
		if r := daytwo(t, w.env, "run", id); r.code != 0 {
			t.Fatalf("run %s: %+v", id, r)
		}
	}
	if v := w.versions(t, "pay-stg-1", "stg-1", "stg-2", "srch-prd-1"); v != "3.0.1,1.2.0,1.2.0,1.0.0" {
		t.Fatalf("fleet = %s", v)
	}

	r = daytwo(t, w.env, "service", "list", "-o", "json")
	var svcs []serviceRow
	if err := json.Unmarshal([]byte(r.stdout), &svcs); err != nil || r.code != 0 || len(svcs) != 3 {
		t.Fatalf("service list: %+v (%v)", r, err)
	}
	if s := svcs[1]; s.Name != "payments" || s.CI != "payments-service" || len(s.Environments) != 2 ||
		s.Environments[0].Version != "3.0.1" || s.Environments[0].Health != "healthy" || s.Environments[1].Health != "not deployed" {
		t.Fatalf("payments = %+v", s)
	}
	if s := svcs[0]; s.Environments[1].Stage != "production" || len(s.Environments[1].Behind) == 0 {
		t.Fatalf("checkout production should show it is behind staging: %+v", s.Environments[1])
	}
	r = daytwo(t, w.env, "service", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "staging 3.0.1 (healthy)") || !strings.Contains(r.stdout, "production - (not deployed, ↑") {
		t.Fatalf("service list (table): %+v", r)
	}
	r = daytwo(t, w.env, "service", "show", "search")
	if r.code != 0 || !strings.Contains(r.stdout, "search/production") || !strings.Contains(r.stdout, "search-service") {
		t.Fatalf("service show search: %+v", r)
	}
	if r := daytwo(t, w.env, "service", "show", "billing"); r.code != exitUsage || !strings.Contains(r.stderr, `no service named "billing" (configured: checkout, payments, search)`) {
		t.Fatalf("service show billing: %+v", r)
	}

	// Filters and names by service.
	r = daytwo(t, w.env, "update", "list", "--all", "--service", "payments", "-o", "json")
	var ups []struct {
		Update struct{ ID, Environment string } `json:"update"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &ups); err != nil || r.code != 0 || len(ups) != 1 || ups[0].Update.ID != pay.ID {
		t.Fatalf("update list --service payments: %+v (%v)", r, err)
	}
	r = daytwo(t, w.env, "update", "list", "--all", "--service", "checkout", "--env", "staging", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &ups); err != nil || r.code != 0 || len(ups) != 2 {
		t.Fatalf("update list --service checkout --env staging: %+v (%v)", r, err)
	}
	r = daytwo(t, w.env, "drift", "--service", "payments", "-o", "json")
	var reps []struct{ Environment string }
	if err := json.Unmarshal([]byte(r.stdout), &reps); err != nil || len(reps) != 2 || reps[0].Environment != "payments/staging" {
		t.Fatalf("drift --service payments: %+v (%v)", r, err)
	}
	// checkout inherits the plain names: "production" is its pair.
	r = daytwo(t, w.env, "drift", "production")
	if r.code != exitDrifted || !strings.HasPrefix(r.stdout, "production: 3 of 3 target(s) drifted") {
		t.Fatalf("drift production (checkout's): %+v", r)
	}
	// Without a service inheriting them, a stage run by several services
	// must be named with one.
	env := []string{"DAYTWO_CONFIG=" + fixture(t, "config", "services.yaml"), "DAYTWO_DB=" + filepath.Join(t.TempDir(), "s.db")}
	r = daytwo(t, env, "env", "show", "production")
	if r.code != exitUsage || !strings.Contains(r.stderr, `3 services run in "production" (checkout, payments, search): name one, e.g. checkout/production or --service checkout`) {
		t.Fatalf("env show production (ambiguous): %+v", r)
	}
	if r := daytwo(t, env, "env", "show", "staging", "--service", "payments"); r.code != 0 || !strings.Contains(r.stdout, "payments/staging") {
		t.Fatalf("env show staging --service payments: %+v", r)
	}
	r = daytwo(t, w.env, "env", "diff", "--service", "checkout", "staging", "production")
	if r.code != 0 || !strings.Contains(r.stdout, "1.2.0") {
		t.Fatalf("env diff --service checkout: %+v", r)
	}
	r = daytwo(t, w.env, "env", "show", "--service", "search", "staging")
	if r.code != exitUsage || !strings.Contains(r.stderr, `service search does not run in "staging" (it runs in: production)`) {
		t.Fatalf("env show --service search staging: %+v", r)
	}
	if r := daytwo(t, w.env, "audit", "verify"); r.code != 0 {
		t.Fatalf("audit verify after the move to services: %+v", r)
	}
}
