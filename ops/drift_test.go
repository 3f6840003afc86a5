package ops_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store"
)

// promoWorld is two ungated environments, production promoted from
// staging, on one in-memory fleet whose probes can fail.
type promoWorld struct {
	db    *store.DB
	svc   *ops.Service
	fleet *fleet
	clk   *clock
	fail  map[string]bool // probes of these targets fail
	mu    sync.Mutex
	envs  []ops.Environment
}

func (w *promoWorld) Probe(ctx context.Context, env string, t ops.Target) (string, error) {
	w.mu.Lock()
	failing := w.fail[t.Name]
	w.mu.Unlock()
	if failing {
		return "", errors.New("connection refused")
	}
	return w.fleet.Probe(ctx, env, t)
}

func newPromoWorld(t *testing.T, policies ...ops.Policy) *promoWorld {
	t.Helper()
	base := ops.Environment{
		Deploy: ops.DeploySpec{Command: []string{"deploy"}}, VersionProbe: ops.VersionProbe{Command: []string{"probe"}},
		Strategy: ops.Strategy{BatchSize: ops.BatchSize{Count: 2}, MaxParallel: 2},
	}
	staging, prod := base, base
	staging.Name, staging.Targets = "staging", targetsNamed("s1", "s2")
	prod.Name, prod.Targets, prod.PromoteFrom = "production", targetsNamed("p1", "p2", "p3"), "staging"
	envs := []ops.Environment{staging, prod}
	w := &promoWorld{clk: &clock{now: time.Date(2026, 3, 27, 12, 0, 0, 0, time.UTC)}, fail: map[string]bool{}}
	w.fleet = newFleet(append(append([]ops.Target{}, staging.Targets...), prod.Targets...), "")
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "d.db"), store.Options{Clock: w.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.SyncEnvironments(context.Background(), envs, "test"); err != nil {
		t.Fatal(err)
	}
	w.db, w.envs = db, envs
	w.configure(t, policies...)
	return w
}

// configure replaces the service by one with these policies, over the
// same store and fleet.
func (w *promoWorld) configure(t *testing.T, policies ...ops.Policy) {
	t.Helper()
	svc, err := ops.New(ops.Config{Environments: w.envs, Actor: "test", Policies: policies}, w.db, nil, ops.WithClock(w.clk.Now), ops.WithHolder("host:1"),
		ops.WithExecutors(func(ops.Environment) (ops.Executor, ops.HealthChecker, error) { return w.fleet, w.fleet, nil }),
		ops.WithProbers(func(ops.Environment) (ops.VersionProber, error) { return w, nil }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Wait)
	w.svc = svc
}

func (w *promoWorld) release(t *testing.T, env, version string) {
	t.Helper()
	u := mustPropose(t, w.svc, ops.ProposeRequest{Environment: env, Version: version})
	if res, err := w.svc.Run(context.Background(), ops.RunRequest{Update: u.ID}); err != nil || res.Run.State != ops.RunSucceeded {
		t.Fatalf("run %s %s: %+v, %v", env, version, res.Run, err)
	}
}

func TestDriftAndPromotionLag(t *testing.T) {
	w := newPromoWorld(t)
	w.release(t, "staging", "1.0.0")
	w.release(t, "production", "1.0.0")
	w.release(t, "staging", "1.1.0")
	w.release(t, "staging", "1.2.0")

	reps, err := w.svc.Drift(context.Background())
	if err != nil || len(reps) != 2 {
		t.Fatalf("drift: %+v, %v", reps, err)
	}
	st, prod := reps[0], reps[1]
	if !st.Probed || st.Drifted != 0 || st.Unknown != 0 || st.Summary != "every target reports the recorded release" {
		t.Fatalf("staging %+v", st)
	}
	if strings.Join(prod.Behind, ",") != "1.1.0,1.2.0" || prod.Summary != "every target reports the recorded release; 2 release(s) behind staging" {
		t.Fatalf("production %+v", prod)
	}

	// p2 is changed by hand; p3 stops answering.
	w.fleet.mu.Lock()
	w.fleet.versions["p2"] = "0.9.0-hotfix"
	w.fleet.mu.Unlock()
	w.fail["p3"] = true
	first := w.clk.Now()
	reps, err = w.svc.Drift(context.Background(), "production")
	if err != nil || len(reps) != 1 {
		t.Fatalf("drift production: %+v, %v", reps, err)
	}
	prod = reps[0]
	byName := map[string]ops.TargetDrift{}
	for _, td := range prod.Targets {
		byName[td.Target] = td
	}
	if prod.Drifted != 1 || prod.Unknown != 1 || !byName["p2"].Drifted || byName["p2"].Reported != "0.9.0-hotfix" ||
		!byName["p3"].Unknown || byName["p3"].Error == "" || byName["p1"].Drifted || byName["p1"].Unknown {
		t.Fatalf("production %+v", prod)
	}
	want := "1 of 3 target(s) drifted from 1.0.0 (since 2026-03-27 12:00 UTC); 1 unknown (probe failed); 2 release(s) behind staging"
	if prod.Summary != want {
		t.Fatalf("summary %q, want %q", prod.Summary, want)
	}
	// The first sighting is kept while the drift lasts.
	w.clk.Advance(2 * time.Hour)
	reps, _ = w.svc.Drift(context.Background(), "production")
	for _, td := range reps[0].Targets {
		if td.Target == "p2" && !td.FirstSeen.Equal(first) {
			t.Fatalf("first seen %s, want %s", td.FirstSeen, first)
		}
	}
	// Environment statuses count the drifted target.
	sts, err := w.svc.EnvironmentStatuses(context.Background())
	if err != nil || len(sts) != 2 || sts[1].Drifted != 1 || len(sts[1].Behind) != 2 || sts[1].Current.Version != "1.0.0" || sts[1].LastResult != ops.RunSucceeded {
		t.Fatalf("statuses %+v, %v", sts, err)
	}

	// Repaired and promoted: no drift, no lag; the sighting is forgotten.
	w.fail["p3"] = false
	w.release(t, "production", "1.2.0")
	reps, _ = w.svc.Drift(context.Background(), "production")
	if reps[0].Drifted != 0 || len(reps[0].Behind) != 0 || reps[0].Summary != "every target reports the recorded release; up to date with staging" {
		t.Fatalf("after promotion %+v", reps[0])
	}

	// No target answers: the release is unknown.
	w.fail["s1"], w.fail["s2"] = true, true
	reps, _ = w.svc.Drift(context.Background(), "staging")
	if reps[0].Unknown != 2 || !strings.HasPrefix(reps[0].Summary, "release unknown: no target answered its version probe (2 unknown)") {
		t.Fatalf("all unknown %+v", reps[0])
	}
	w.fail["s2"] = false
	reps, _ = w.svc.Drift(context.Background(), "staging")
	if reps[0].Summary != "1 of 2 target(s) report the recorded release; 1 unknown (probe failed)" {
		t.Fatalf("one unknown %q", reps[0].Summary)
	}
}

func TestDriftWithoutProbe(t *testing.T) {
	w := newRunWorld(t, false)
	svc := w.service(t, "host:1")
	reps, err := svc.Drift(context.Background())
	if err != nil || len(reps) != 1 || reps[0].Probed || reps[0].Summary != "no version probe configured" {
		t.Fatalf("drift %+v, %v", reps, err)
	}
}

// TestComplianceOpensAndClosesAlerts: a policy failing on what an
// environment runs opens one alert (audited once), blocks proposals when
// it says so, and closes when the environment passes again.
func TestComplianceOpensAndClosesAlerts(t *testing.T) {
	pol := ops.Policy{
		Name: "no-1.0", Environments: []string{"production"}, Expr: `env.current_version != "1.0.0"`, Action: ops.PolicyWarn,
		Message: "1.0.0 has a known defect", BlockProposals: true,
	}
	w := newPromoWorld(t, pol)
	w.release(t, "production", "1.0.0")
	for range 2 {
		alerts, err := w.svc.Compliance(context.Background())
		if err != nil || len(alerts) != 1 || alerts[0].Environment != "production" || alerts[0].Policy != "no-1.0" {
			t.Fatalf("alerts %+v, %v", alerts, err)
		}
	}
	evs, _ := w.db.ListEvents(context.Background(), ops.EventFilter{Environment: "production"})
	violated := 0
	for _, e := range evs {
		if e.Action == "policy.violated" {
			violated++
		}
	}
	if violated != 1 {
		t.Fatalf("%d policy.violated events, want 1", violated)
	}
	// block_proposals: a new proposal is refused while it fails.
	_, err := w.svc.Propose(context.Background(), ops.ProposeRequest{Environment: "production", Version: "1.1.0"})
	if !errors.Is(err, ops.ErrBlocked) || !strings.Contains(err.Error(), "policy no-1.0 fails on what production runs now (since 2026-03-27 12:00 UTC)") {
		t.Fatalf("propose while failing: %v", err)
	}
	// Staging is not covered by the policy.
	if _, err := w.svc.Propose(context.Background(), ops.ProposeRequest{Environment: "staging", Version: "1.0.0"}); err != nil {
		t.Fatalf("staging: %v", err)
	}
	reports, err := w.svc.PolicyCheck(context.Background())
	if err != nil || len(reports) != 2 {
		t.Fatalf("policy check %+v, %v", reports, err)
	}
	// Without block_proposals the fix can be rolled out; the alert closes
	// (audited once).
	pol.BlockProposals = false
	w.configure(t, pol)
	w.release(t, "production", "1.1.0")
	for range 2 {
		if alerts, err := w.svc.Compliance(context.Background()); err != nil || len(alerts) != 0 {
			t.Fatalf("alerts after the fix %+v, %v", alerts, err)
		}
	}
	evs, _ = w.db.ListEvents(context.Background(), ops.EventFilter{Environment: "production"})
	resolved := 0
	for _, e := range evs {
		if e.Action == "policy.resolved" {
			resolved++
		}
	}
	if resolved != 1 {
		t.Fatalf("%d policy.resolved events, want 1", resolved)
	}
}

// A promotion policy at the gate reads the source's releases (once per
// pass) and follows what the source ran.
func TestGatePromotionPolicyFollowsTheSource(t *testing.T) {
	w := newPromoWorld(t)
	w.release(t, "staging", "1.0.0")
	u := mustPropose(t, w.svc, ops.ProposeRequest{Environment: "production", Version: "2.0.0"})
	w.configure(t, ops.Policy{
		Name: "promoted-only", Environments: []string{"production"},
		Expr: `update.version in env.promote_from.succeeded_versions`, Action: ops.PolicyBlock,
	})
	gs, err := w.svc.GateAll(context.Background(), []ops.Update{u, u})
	if err != nil || len(gs) != 2 {
		t.Fatalf("gates %v, %v", gs, err)
	}
	for _, g := range gs {
		if r, ok := reasonWith(g, ops.GatePolicy); !ok || !strings.Contains(r.Message, "promoted-only") {
			t.Fatalf("gate %q, want the promotion policy", g.Summary())
		}
	}
	w.release(t, "staging", "2.0.0")
	g, err := w.svc.Gate(context.Background(), u)
	if err != nil || !g.Open {
		t.Fatalf("gate after staging ran 2.0.0: %q, %v", g.Summary(), err)
	}
}

// TestPromotionLagBeyondTheRecentReleases: the lag reads the source's
// newest releases first, and its whole history when the environment's
// version is older than those.
func TestPromotionLagBeyondTheRecentReleases(t *testing.T) {
	w := newPromoWorld(t)
	w.release(t, "staging", "1.0.0")
	w.release(t, "production", "1.0.0")
	var want []string
	for i := 1; i <= 40; i++ {
		v := fmt.Sprintf("1.%d.0", i)
		w.release(t, "staging", v)
		want = append(want, v)
	}
	reps, err := w.svc.Drift(context.Background(), "production")
	if err != nil || len(reps) != 1 {
		t.Fatalf("drift: %+v, %v", reps, err)
	}
	if got := strings.Join(reps[0].Behind, ","); got != strings.Join(want, ",") {
		t.Fatalf("behind = %s, want the 40 staging releases after 1.0.0", got)
	}
	w.release(t, "production", "1.39.0")
	reps, _ = w.svc.Drift(context.Background(), "production")
	if got := strings.Join(reps[0].Behind, ","); got != "1.40.0" {
		t.Fatalf("behind = %s, want 1.40.0", got)
	}
}
