package tui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/common"
)

var stages = []string{"dev", "staging", "production"}

// unitEnvironments is a configuration with services as the loader expands
// it: one ops.Environment per (service, stage) a service runs in, named
// ops.UnitKey(service, stage); staging promotes from dev and production
// (gated, the service's CI) from staging within each service. skip names
// the units that do not exist ("search/staging"). Each unit has targets
// targets; a version containing "slow" waits for $FLEET/go before it
// deploys, one containing "broken" fails its health check.
func unitEnvironments(dir string, services []string, targets int, skip ...string) []ops.Environment {
	return unitEnvironmentsOn(dir, services, stages, targets, skip...)
}

// unitEnvironmentsOn is unitEnvironments over the stages given (in
// order, each promoting from the one before; "production" gated).
func unitEnvironmentsOn(dir string, services, stages []string, targets int, skip ...string) []ops.Environment {
	deploy := ops.DeploySpec{
		Command: []string{"sh", "-c", `case {{ .Version }} in *slow*) while [ ! -f "$FLEET/go" ]; do sleep 0.05; done;; esac; ` +
			`echo {{ .Version }} > "$FLEET/{{ .Target.Name }}"`},
		Rollback: []string{"sh", "-c", `echo {{ .Version }} > "$FLEET/{{ .Target.Name }}"`},
		Env:      map[string]string{"FLEET": dir},
		Timeout:  time.Minute,
	}
	health := []ops.HealthCheck{{
		Name: "version", Command: []string{"sh", "-c", "case {{ .Version }} in *broken*) echo unhealthy; exit 1;; esac; echo healthy"},
		Timeout: 5 * time.Second, Interval: 10 * time.Millisecond,
	}}
	var out []ops.Environment
	for _, svc := range services {
		prev := ""
		for _, stage := range stages {
			key := ops.UnitKey(svc, stage)
			if slices.Contains(skip, key) {
				continue
			}
			e := ops.Environment{
				Name: key, Service: svc, Stage: stage, PromoteFrom: prev, Deploy: deploy, Health: health,
				Strategy: ops.Strategy{BatchSize: ops.BatchSize{Count: max(targets, 1)}, MaxParallel: max(targets, 1)},
			}
			for i := range targets {
				e.Targets = append(e.Targets, ops.Target{Name: fmt.Sprintf("%s-%s-%d", svc, stage, i+1)})
			}
			if stage == "production" {
				e.RequiresChange = true
				e.Change = ops.ChangeDefaults{Type: "normal", CmdbCI: ciOf(svc), AssignmentGroup: "Platform Ops", Risk: "low", Window: 4 * time.Hour}
			}
			out = append(out, e)
			prev = key
		}
	}
	return out
}

// ciOf is a service's CI among the simulator's (fixtures/servicenow).
func ciOf(svc string) string {
	switch svc {
	case "checkout":
		return "checkout-service"
	case "payments":
		return "payments-api"
	}
	return "web-frontend"
}

// servicesWorld: checkout, payments and search across dev, staging and
// production (search does not run in staging), in mixed states:
//
//	checkout   dev 1.5.0 healthy · staging 1.5.0 healthy · production 1.4.2, one behind staging
//	payments   dev 3.1.0 · staging rolled back (3.1.0-broken failed health) · production 3.0.1 with 3.0.2 awaiting approval
//	search     dev 0.9.0 drifted · (no staging) · production never deployed, one behind dev
func servicesWorld(t testing.TB) *fixture {
	t.Helper()
	return servicesWorldWith(t, fixtureOptions{})
}

// servicesWorldWith is servicesWorld with options (its environments are
// servicesWorld's).
func servicesWorldWith(t testing.TB, o fixtureOptions) *fixture {
	t.Helper()
	o.environments = func(dir string) []ops.Environment {
		return unitEnvironments(dir, []string{"checkout", "payments", "search"}, 2, "search/staging")
	}
	f := newFixture(t, o)
	for _, r := range [][2]string{
		{"checkout/dev", "1.4.2"},
		{"checkout/staging", "1.4.2"},
		{"checkout/production", "1.4.2"},
		{"checkout/dev", "1.5.0"},
		{"checkout/staging", "1.5.0"},
		{"payments/dev", "3.0.1"},
		{"payments/staging", "3.0.1"},
		{"payments/production", "3.0.1"},
		{"payments/dev", "3.1.0"},
		{"payments/staging", "3.1.0-broken"},
		{"search/dev", "0.9.0"},
	} {
		f.release(t, r[0], r[1])
	}
	ctx := context.Background()
	if _, err := f.svc.Propose(ctx, proposeReq("payments/production", "3.0.2")); err != nil {
		t.Fatal(err)
	}
	f.sync(t) // its change is raised: awaiting approval
	// One search/dev target reports another version (what a drift check
	// records).
	if _, err := f.db.DriftSeen(ctx, "search/dev", "search-dev-1", "0.9.0", "0.8.9"); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	return f
}

// startRolling starts a run of checkout/dev 1.6.0-slow that deploys once
// $FLEET/go exists, waits until the store shows it running, and returns
// a function that lets it finish and waits for it.
func startRolling(t *testing.T, f *fixture) func() {
	t.Helper()
	ctx := context.Background()
	p, err := f.svc.Propose(ctx, proposeReq("checkout/dev", "1.6.0-slow"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := f.svc.Run(ctx, ops.RunRequest{Update: p.Update.ID})
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		sts, err := f.svc.EnvironmentStatuses(ctx)
		if err != nil {
			t.Fatal(err)
		}
		running := false
		for _, st := range sts {
			running = running || (st.Environment.Name == "checkout/dev" && st.Running != nil)
		}
		if running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the checkout/dev run never showed as running")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return func() {
		if err := os.WriteFile(filepath.Join(f.dir, "go"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil && !errors.Is(err, ops.ErrRunFailed) {
			t.Fatal(err)
		}
	}
}

// checkFills fails unless v is exactly w×h.
func checkFills(t *testing.T, v string, w, h int) {
	t.Helper()
	lines := strings.Split(v, "\n")
	if len(lines) != h {
		t.Errorf("%d lines, want %d:\n%s", len(lines), h, v)
	}
	for i, l := range lines {
		if lw := lipgloss.Width(l); lw != w {
			t.Errorf("line %d is %d wide, want %d: %q", i, lw, w, l)
		}
	}
}

// TestMatrixShowsEveryStateAtAGlance: 3 services × 3 stages in mixed
// states; each cell shows its version and a glyph (a word where there is
// room) for healthy, rolling out, rolled back, drifted, pending change
// and never deployed, and the promotion lag; a service that does not run
// in a stage is an empty cell. Goldens at 80×24 (compact cells) and
// 120×40 (with words).
func TestMatrixShowsEveryStateAtAGlance(t *testing.T) {
	f := servicesWorld(t)
	finishRun := startRolling(t, f)
	defer finishRun()
	m := newModel(t, f, modelOptions())
	if m.active() != common.PageMatrix {
		t.Fatalf("the console opens on %s, want the services matrix", m.active())
	}
	want := map[[2]int][]string{
		{80, 24}: {
			"checkout", "payments", "search", "dev", "staging", "production",
			"● 1.5.0→1.6.0-slow", "✓ 1.5.0", "✓ 1.4.2 ↑1", // rolling out; healthy; one behind staging
			"✓ 3.1.0", "↺ 3.0.1", "◷ 3.0.1→3.0.2", // rolled back; pending change
			"≠ 0.9.0", "○ — ↑1", // drifted; never deployed, one behind dev
		},
		{120, 40}: {
			"● 1.5.0→1.6.0-slow rolling out", "✓ 1.4.2 healthy ↑1 1.5.0 ready", "↺ 3.0.1 rolled back",
			"◷ 3.0.1→3.0.2 awaiting approval", "≠ 0.9.0 drifted (1)", "○ — not deployed ↑1 0.9.0 ready",
			"checkout/dev  ● rolling out", "m to monitor",
		},
	}
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			m.Update(tea.WindowSizeMsg{Width: sz.w, Height: sz.h})
			v := m.View()
			checkFills(t, v, sz.w, sz.h)
			for _, s := range want[[2]int{sz.w, sz.h}] {
				if !strings.Contains(v, s) {
					t.Errorf("the matrix does not show %q:\n%s", s, v)
				}
			}
			// search does not run in staging: its row has nothing between
			// dev and production.
			for _, l := range strings.Split(v, "\n") {
				if strings.Contains(l, "search") && strings.Contains(l, "staging") {
					t.Errorf("search has a staging cell: %q", l)
				}
			}
			teatest.RequireEqualOutput(t, f.stable([]byte(v)))
		})
	}
}

// TestMatrixWideTerminal: a large terminal gets wider cells (the state in
// words, the version that is ready to promote) and the selected cell's
// facts one a line.
func TestMatrixWideTerminal(t *testing.T) {
	f := servicesWorld(t)
	m := newModel(t, f, modelOptions())
	m.Update(tea.WindowSizeMsg{Width: 180, Height: 50})
	press(m, "j", "l", "l") // payments/production
	v := m.View()
	checkFills(t, v, 180, 50)
	for _, s := range []string{
		"◷ 3.0.1→3.0.2 awaiting approval", "payments/production  ◷ pending · 3.0.1 since",
		"open       u-", "3.0.1 → 3.0.2 awaiting_approval · CHG", "promotion  up to date with payments/staging",
		"gate       every update needs an approved ServiceNow change",
	} {
		if !strings.Contains(v, s) {
			t.Errorf("the wide matrix does not show %q:\n%s", s, v)
		}
	}
	teatest.RequireEqualOutput(t, f.stable([]byte(v)))
}

// TestMatrixScrollsTwentyServices: 20 services fill 80×24; moving down
// scrolls, the header stays and the selected row stays visible.
func TestMatrixScrollsTwentyServices(t *testing.T) {
	names := make([]string, 20)
	for i := range names {
		names[i] = fmt.Sprintf("service-%02d", i+1)
	}
	f := newFixture(t, fixtureOptions{environments: func(dir string) []ops.Environment {
		return unitEnvironments(dir, names, 1)
	}})
	f.release(t, "service-01/dev", "1.0.0")
	f.release(t, "service-20/dev", "2.0.0")
	f.release(t, "service-20/staging", "2.0.0")
	tm := startConsole(t, f, testOptions(), 80, 24)
	waitFor(t, tm, "service-16") // the first screenful
	typeKeys(tm, "G")            // the last service
	waitFor(t, tm, "service-20/dev  ✓ healthy · 2.0.0")
	out := finish(t, f, tm)
	lines := strings.Split(string(out), "\n")
	if len(lines) != 24 {
		t.Fatalf("%d lines:\n%s", len(lines), out)
	}
	if !strings.HasPrefix(lines[1], "SERVICE") {
		t.Errorf("the header row scrolled away:\n%s", out)
	}
	if !bytes.Contains(out, []byte("▸ service-20")) || bytes.Contains(out, []byte("service-01 ")) {
		t.Errorf("the matrix did not scroll to the last service:\n%s", out)
	}
	teatest.RequireEqualOutput(t, out)

	// Every step down and back up keeps the selected row and the header on
	// screen, and the frame 80×24.
	m := newModel(t, f, modelOptions())
	for i, k := range append(slices.Repeat([]string{"j"}, 19), slices.Repeat([]string{"k"}, 19)...) {
		press(m, k)
		row := i + 2 // down: 2…20
		if i >= 19 {
			row = 38 - i // back up: 19…1
		}
		v := m.View()
		checkFills(t, v, 80, 24)
		if !strings.Contains(v, fmt.Sprintf("▸ service-%02d", row)) || !strings.HasPrefix(strings.Split(v, "\n")[1], "SERVICE") {
			t.Fatalf("after %d keys the selected service-%02d or the header is off screen:\n%s", i+1, row, v)
		}
	}
}

// TestMatrixFilterAndEnterOpensHistory: / filters the rows by service
// name (fuzzy); enter on a cell opens that unit's updates, its history.
func TestMatrixFilterAndEnterOpensHistory(t *testing.T) {
	f := servicesWorld(t)
	tm := startConsole(t, f, testOptions(), 100, 30)
	waitFor(t, tm, "search")
	typeKeys(tm, "/", "pymt", "enter") // fuzzy: payments
	waitFor(t, tm, "payments/dev  ✓ healthy")
	typeKeys(tm, "l", "l", "enter")
	waitFor(t, tm, "Updates: payments/production", "3.0.2")
	out := finish(t, f, tm)
	for _, s := range []string{"Services ▸ Updates: payments/production", "payments/production 3.0.2 awaiting_approval", "payments/production 3.0.1 succeeded"} {
		if !bytes.Contains(bytes.Join(bytes.Fields(out), []byte(" ")), []byte(s)) {
			t.Errorf("the history does not show %q:\n%s", s, out)
		}
	}
	if bytes.Contains(out, []byte("checkout/")) || bytes.Contains(out, []byte("payments/staging 3.1.0")) {
		t.Errorf("the history shows another unit's updates:\n%s", out)
	}
	teatest.RequireEqualOutput(t, out)
}

// TestMatrixFilterHidesOtherServices: the filter keeps only matching rows
// and esc brings them back.
func TestMatrixFilterHidesOtherServices(t *testing.T) {
	f := servicesWorld(t)
	m := newModel(t, f, modelOptions())
	press(m, "/", "sea", "enter")
	v := m.View()
	if !strings.Contains(v, "▸ search") || strings.Contains(v, "checkout") || strings.Contains(v, "payments") {
		t.Fatalf("the filter did not keep only search:\n%s", v)
	}
	teatest.RequireEqualOutput(t, f.stable([]byte(v)))
	press(m, "esc")
	if v := m.View(); !strings.Contains(v, "checkout") || m.active() != common.PageMatrix {
		t.Fatalf("esc did not clear the filter:\n%s", v)
	}
	press(m, "/", "zzz", "enter")
	if v := m.View(); !strings.Contains(v, "no service matches the filter") {
		t.Fatalf("an empty filter result is not said:\n%s", v)
	}
}

// TestMatrixPaletteOpensAServiceOrCell: ":svc NAME [ENV]" selects the
// service's row (fuzzy) or one of its cells; an unknown one is said.
func TestMatrixPaletteOpensAServiceOrCell(t *testing.T) {
	f := servicesWorld(t)
	m := newModel(t, f, modelOptions())
	press(m, "2") // away from home
	press(m, ":", "svc pay prod", "enter")
	if m.active() != common.PageMatrix {
		t.Fatalf("on %s, want the matrix", m.active())
	}
	if st, ok := m.matrix.Selected(); !ok || st.Environment.Name != "payments/production" {
		t.Fatalf("selected %q, want payments/production", st.Environment.Name)
	}
	press(m, ":", "service srch", "enter")
	if st, ok := m.matrix.Selected(); !ok || st.Environment.Name != "search/production" {
		t.Fatalf("selected %q, want search (same column)", st.Environment.Name)
	}
	press(m, ":", "svc qqqq", "enter")
	if !strings.Contains(m.flash.Text(), "no service matches qqqq") {
		t.Fatalf("flash %q", m.flash.Text())
	}
	// The cell's actions: P proposes for that unit with the version its
	// source runs as the suggestion.
	press(m, ":", "svc checkout production", "enter", "P")
	if v := m.View(); !strings.Contains(v, "Propose checkout/production") || !strings.Contains(v, "Version: 1.5.0") {
		t.Fatalf("P on checkout/production does not propose 1.5.0:\n%s", v)
	}
	press(m, "esc")
	// tab: the environments list on that unit.
	press(m, "tab")
	if m.active() != common.PageEnvironments {
		t.Fatalf("tab: on %s", m.active())
	}
	if st, ok := m.envs.Selected(); !ok || st.Environment.Name != "checkout/production" {
		t.Fatalf("the environments list selected %q, want checkout/production", st.Environment.Name)
	}
}

// TestMatrixWithoutServices: a configuration without services is one row
// (named after its CI), and today's environments screen is one key away.
func TestMatrixWithoutServices(t *testing.T) {
	f := envWorld(t)
	tm := startConsole(t, f, testOptions(), 80, 24)
	waitFor(t, tm, "checkout-service", "staging", "production")
	typeKeys(tm, "tab")
	waitFor(t, tm, "Services ▸ Environments", "NEXT GATE", "Recent updates of staging")
	typeKeys(tm, "esc")
	waitFor(t, tm, "▸ checkout-service")
	out := finish(t, f, tm)
	if !bytes.Contains(out, []byte("✓ 1.4.1→1.4.2")) && !bytes.Contains(out, []byte("◷ 1.4.1→1.4.2")) {
		t.Errorf("production's pending 1.4.2 is not shown:\n%s", out)
	}
	teatest.RequireEqualOutput(t, out)
}
