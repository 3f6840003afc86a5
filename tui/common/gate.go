package common

import "github.com/daytwo/daytwo/ops"

// GateStyle renders an update's gate in words (u.GateText), coloured by
// the typed verdict: the update's state once it has left the gate, else
// the gate result's Open and Pending flags.
func GateStyle(c Common, u ops.UpdateStatus) string {
	s := c.Styles.Status
	text := u.GateText
	switch u.Update.State {
	case ops.UpdateSucceeded:
		return s.OK.Render(text)
	case ops.UpdateRunning:
		return s.Pending.Render(text)
	case ops.UpdateFailed, ops.UpdateRolledBack, ops.UpdateStopped, ops.UpdateRejected, ops.UpdateBlocked:
		return s.Bad.Render(text)
	case ops.UpdateCanceled:
		return s.Muted.Render(text)
	}
	g := u.Gate
	switch {
	case g.Open:
		return s.OK.Render(text)
	case g.Pending:
		return s.Pending.Render(text)
	case len(g.Reasons) > 0:
		return s.Bad.Render(text)
	default: // not evaluated (the environment is no longer configured)
		return s.Muted.Render(text)
	}
}
