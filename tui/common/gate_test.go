package common

import (
	"testing"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/styles"
)

// TestGateStyleColoursTheTypedVerdict: the colour comes from the update's
// state and the gate's Open/Pending flags, never from the words, so a text
// that reads "open" on a closed gate is still coloured blocked.
func TestGateStyleColoursTheTypedVerdict(t *testing.T) {
	lipgloss.SetColorProfile(termenv.TrueColor)
	t.Cleanup(func() { lipgloss.SetColorProfile(termenv.Ascii) })
	c := Common{Styles: styles.Default()}
	st := c.Styles.Status
	blocked := ops.GateResult{Reasons: []ops.GateReason{{Code: "window", Message: "outside the change window"}}}
	pending := ops.GateResult{Pending: true, Reasons: []ops.GateReason{{Code: "approval", Message: "approval requested", Queued: true}}}
	const text = "open: words that do not decide the colour"
	seen := map[string]bool{}
	for _, s := range []lipgloss.Style{st.OK, st.Pending, st.Bad, st.Muted} {
		seen[s.Render(text)] = true
	}
	if len(seen) != 4 {
		t.Fatal("the four status styles render alike: the test could not tell them apart")
	}
	for _, tc := range []struct {
		name  string
		state ops.UpdateState
		gate  ops.GateResult
		want  lipgloss.Style
	}{
		{"open gate", ops.UpdateApproved, ops.GateResult{Open: true}, st.OK},
		{"pending gate", ops.UpdateAwaitingApproval, pending, st.Pending},
		{"blocked gate", ops.UpdateApproved, blocked, st.Bad},
		{"gate not evaluated", ops.UpdateProposed, ops.GateResult{}, st.Muted},
		{"succeeded", ops.UpdateSucceeded, ops.GateResult{}, st.OK},
		{"running", ops.UpdateRunning, ops.GateResult{}, st.Pending},
		{"failed", ops.UpdateFailed, ops.GateResult{}, st.Bad},
		{"rolled back", ops.UpdateRolledBack, ops.GateResult{}, st.Bad},
		{"rejected", ops.UpdateRejected, ops.GateResult{}, st.Bad},
		{"blocked by policy", ops.UpdateBlocked, ops.GateResult{}, st.Bad},
		{"canceled", ops.UpdateCanceled, ops.GateResult{}, st.Muted},
	} {
		u := ops.UpdateStatus{Update: ops.Update{State: tc.state}, Gate: tc.gate, GateText: text}
		if got, want := GateStyle(c, u), tc.want.Render(text); got != want {
			t.Errorf("%s: %q, want %q", tc.name, got, want)
		}
	}
}
