package main

import (
	"strings"
	"testing"
)

// TestTmuxConsoleOpensOnTheServicesMatrix: the real binary on a services
// configuration (the loader's expansion, the real store) opens the console
// on the services × environments matrix: a row per service, a column per
// stage, search's missing staging an empty cell, each cell's version and
// state, checkout's production one behind staging; / filters services and
// enter opens the cell's history.
func TestTmuxConsoleOpensOnTheServicesMatrix(t *testing.T) {
	w := newServicesWorld(t)
	w.writeServicesConfig(t)
	for _, u := range []proposeResult{w.propose(t, "staging", "1.1.0", "--service", "checkout"), w.propose(t, "payments/staging", "3.0.1")} {
		if r := daytwo(t, w.env, "run", u.ID); r.code != 0 {
			t.Fatalf("run %s: %+v", u.ID, r)
		}
	}
	c := startTmux(t, 100, 30, append([]string{"DAYTWO_ACTOR=e2e", "TERM=xterm-256color"}, w.env...), "tui")
	s := c.waitFor("SERVICE", "staging", "production", "checkout", "payments", "search")
	lines := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "▸"))
		if len(f) == 0 {
			continue
		}
		if _, seen := lines[f[0]]; !seen { // the row, not the summary under it
			lines[f[0]] = l
		}
	}
	for svc, want := range map[string][]string{
		"checkout": {"✓ 1.1.0 healthy", "not deployed ↑1 1.1.0 ready"}, // production: nothing released, behind staging
		"payments": {"✓ 3.0.1 healthy", "not deployed ↑1 3.0.1 ready"},
		"search":   {"not deployed"},
	} {
		for _, x := range want {
			if !strings.Contains(lines[svc], x) {
				t.Errorf("%s's row does not show %q:\n%s", svc, x, s)
			}
		}
	}
	if strings.Count(lines["search"], "not deployed") != 1 || strings.Contains(lines["search"], "healthy") {
		t.Errorf("search runs only in production: one cell, staging empty:\n%s", s)
	}
	c.keys("/", "pay", "Enter")
	s = c.waitFor("▸ payments")
	if strings.Contains(s, "checkout") {
		t.Errorf("the filter kept checkout:\n%s", s)
	}
	c.keys("Enter") // the staging cell
	c.waitFor("Updates: payments/staging", "3.0.1", "succeeded")
}
