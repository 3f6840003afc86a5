package tui

import (
	"strings"
	"testing"

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
