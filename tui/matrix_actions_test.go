package tui

import (
	"fmt"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/common"
)

// TestMatrixRollbackNamesBothVersions: B on a matrix cell reads the
// pair's release history and names the version it rolls back to and the
// current one; confirming proposes exactly that version. A pair with one
// release says it has nothing to roll back to instead of a dialog.
func TestMatrixRollbackNamesBothVersions(t *testing.T) {
	f := servicesWorld(t)
	m := newModel(t, f, modelOptions())
	press(m, "l") // checkout/staging: 1.4.2, then 1.5.0
	if st, ok := m.matrix.Selected(); !ok || st.Environment.Name != "checkout/staging" {
		t.Fatalf("selected %q, want checkout/staging", st.Environment.Name)
	}
	press(m, "B")
	v := m.View()
	for _, s := range []string{"Roll back checkout/staging to 1.4.2", "checkout/staging 1.5.0 → 1.4.2"} {
		if !strings.Contains(v, s) {
			t.Errorf("the rollback dialog does not say %q:\n%s", s, v)
		}
	}
	if strings.Contains(v, "previous release") {
		t.Errorf("the rollback dialog does not name the version:\n%s", v)
	}
	press(m, "enter")
	f.svc.Wait()
	if !strings.Contains(m.flash.Text(), "checkout/staging back to 1.4.2") {
		t.Fatalf("flash %q, want the rollback to 1.4.2 proposed", m.flash.Text())
	}
	if u, ok := m.updates.Selected(); m.active() != common.PageUpdates || !ok || u.Update.Version != "1.4.2" || !u.Update.Rollback {
		t.Fatalf("on %s, selected %+v: want the new rollback update to 1.4.2", m.active(), u.Update)
	}

	// checkout/production ran only 1.4.2: nothing earlier to return to.
	press(m, "1", "l")
	press(m, "B")
	if m.dialog != nil || !strings.Contains(m.flash.Text(), "checkout/production has no earlier release than 1.4.2") {
		t.Fatalf("B on a pair with one release: dialog %v, flash %q", m.dialog != nil, m.flash.Text())
	}

	// The palette's rollback without a version reads the history the same
	// way.
	press(m, ":", "rollback checkout/dev", "enter")
	if v := m.View(); m.dialog == nil || !strings.Contains(v, "Roll back checkout/dev to 1.4.2") || !strings.Contains(v, "1.5.0 → 1.4.2") {
		t.Fatalf("the palette's rollback does not name its versions:\n%s", v)
	}
}

// manyStages is a path through twelve stages: more than 80 columns hold
// and more than 120 do.
var manyStages = []string{"dev", "test", "qa", "uat", "perf", "staging", "preprod", "canary", "production", "dr", "eu-west", "us-east"}

// TestMatrixScrollsSideways: with more stages than the terminal holds the
// matrix shows a run of them beside the service column, which stays, and
// says how many are off screen on either side ("‹ 2 more", "3 more ›");
// → and ← move the column cursor and scroll, every cell stays whole, and
// the frame stays filled. Goldens at 80×24 and 120×40 mid-way.
func TestMatrixScrollsSideways(t *testing.T) {
	f := newFixture(t, fixtureOptions{environments: func(dir string) []ops.Environment {
		return unitEnvironmentsOn(dir, []string{"checkout", "payments"}, manyStages, 1)
	}})
	for _, r := range [][2]string{
		{"checkout/dev", "1.5.0"},
		{"checkout/test", "1.5.0"},
		{"checkout/qa", "1.4.9"},
		{"checkout/uat", "1.4.8"},
		{"checkout/perf", "1.4.8"},
		{"checkout/staging", "1.4.7"},
		{"checkout/preprod", "1.4.7"},
		{"checkout/canary", "1.4.6"},
		{"checkout/dr", "1.4.5"},
		{"checkout/eu-west", "1.4.5"},
		{"checkout/us-east", "1.4.4"},
		{"payments/dev", "3.1.0"},
		{"payments/us-east", "3.0.0"},
	} {
		f.release(t, r[0], r[1])
	}
	m := newModel(t, f, modelOptions())
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			m.Update(tea.WindowSizeMsg{Width: sz.w, Height: sz.h})
			press(m, "1") // home: the first stage
			for m.matrix.Column() > 0 {
				press(m, "h")
			}
			header := func() string { return strings.Split(m.View(), "\n")[1] }
			if h := header(); !strings.HasPrefix(h, "SERVICE") || strings.Contains(h, "‹") || !strings.Contains(h, "more ›") || !strings.Contains(h, "dev") {
				t.Fatalf("the first stages with the rest said on the right: %q", h)
			}
			// Every step right and back keeps the selected cell whole on
			// screen, the service column first and the frame filled.
			for i := range 2 * (len(manyStages) - 1) {
				k, col := "l", i+1
				if i >= len(manyStages)-1 {
					k, col = "h", 2*(len(manyStages)-1)-i-1
				}
				press(m, k)
				v := m.View()
				checkFills(t, v, sz.w, sz.h)
				st, ok := m.matrix.Selected()
				if !ok || st.Environment.Name != "checkout/"+manyStages[col] {
					t.Fatalf("after %d keys selected %q, want checkout/%s", i+1, st.Environment.Name, manyStages[col])
				}
				h, row := header(), strings.Split(v, "\n")[2]
				cell := "[" + glyphOf(st) + " " + common.Or(st.Current.Version, "—") // then "]" or " ↑N]"
				if !strings.HasPrefix(h, "SERVICE") || !strings.Contains(h, " "+manyStages[col]+" ") && !strings.HasSuffix(strings.TrimRight(h, " "), " "+manyStages[col]) ||
					!strings.HasPrefix(row, "▸ checkout") || !strings.Contains(row, cell) || strings.Contains(row, "…") {
					t.Fatalf("after %d keys the selected %s is not whole on screen:\n%s", i+1, cell, v)
				}
				if left := col > 0 && !strings.Contains(h, manyStages[0]+" "); left != strings.Contains(h, "‹ ") {
					t.Fatalf("after %d keys the header does not say the stages off screen on the left: %q", i+1, h)
				}
			}
			// Mid-way: stages off screen on both sides.
			both := func(h string) bool { return strings.Contains(h, "‹ ") && strings.Contains(h, " more ›") }
			for range len(manyStages) {
				if both(header()) {
					break
				}
				press(m, "l")
			}
			v := m.View()
			if h := strings.Split(v, "\n")[1]; !both(h) {
				t.Fatalf("mid-way the header does not say both sides: %q", h)
			}
			teatest.RequireEqualOutput(t, f.stable([]byte(v)))
		})
	}
}

// TestMatrixScrollsSidewaysWhenNothingFits: on a terminal narrower than
// the service column and one stage, the selected stage is still the one
// shown (cut) and every frame fills the terminal.
func TestMatrixScrollsSidewaysWhenNothingFits(t *testing.T) {
	f := newFixture(t, fixtureOptions{environments: func(dir string) []ops.Environment {
		return unitEnvironmentsOn(dir, []string{"checkout-with-a-long-name"}, manyStages, 1)
	}})
	f.release(t, "checkout-with-a-long-name/dev", "1.5.0-rc.1+build.20261127")
	m := newModel(t, f, modelOptions())
	m.Update(tea.WindowSizeMsg{Width: 30, Height: 12})
	for i := range len(manyStages) {
		v := m.View()
		checkFills(t, v, 30, 12)
		if h := strings.Split(v, "\n")[1]; !strings.Contains(h, manyStages[i][:min(len(manyStages[i]), 3)]) {
			t.Fatalf("stage %s is not the one shown: %q", manyStages[i], h)
		}
		press(m, "l")
	}
}

// glyphOf is a cell's state glyph as the matrix shows it.
func glyphOf(st ops.EnvironmentStatus) string {
	return map[ops.Health]string{ops.HealthOK: "✓", ops.HealthNever: "○", ops.HealthPending: "◷", ops.HealthDrifted: "≠"}[st.Health()]
}
