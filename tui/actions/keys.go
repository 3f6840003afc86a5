package actions

import (
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/common"
)

// UpdateKeys are the keys that act on one update; the updates list and the
// detail screen share them.
type UpdateKeys struct {
	Approve key.Binding
	Reject  key.Binding
	Run     key.Binding
	Cancel  key.Binding
}

// DefaultUpdateKeys returns A, R, X and C, each marked dangerous.
func DefaultUpdateKeys() UpdateKeys {
	return UpdateKeys{
		Approve: key.NewBinding(key.WithKeys("A"), key.WithHelp("A", "approve ⚠")),
		Reject:  key.NewBinding(key.WithKeys("R"), key.WithHelp("R", "reject ⚠")),
		Run:     key.NewBinding(key.WithKeys("X"), key.WithHelp("X", "run ⚠")),
		Cancel:  key.NewBinding(key.WithKeys("C"), key.WithHelp("C", "cancel ⚠")),
	}
}

// Enable switches on the keys that apply to u (ok: an update is shown) in
// a console that may write (rw): a decision while the change awaits one, a
// run while the gate is open, a cancel while the update may be canceled.
func (k *UpdateKeys) Enable(rw bool, u ops.UpdateStatus, ok bool) {
	decidable := ok && u.Change != nil && (u.Change.State == ops.ChangeAssess || u.Change.State == ops.ChangeAuthorize)
	k.Approve.SetEnabled(rw && decidable)
	k.Reject.SetEnabled(rw && decidable)
	k.Run.SetEnabled(rw && ok && u.Gate.Open)
	k.Cancel.SetEnabled(rw && ok && u.Update.State.CanTransition(ops.UpdateCanceled))
}

// Action is the action msg asks for on u, if msg is one of the keys. gated
// says u's environment requires a change; progress receives a run's
// events.
func (k UpdateKeys) Action(msg tea.KeyMsg, svc Service, u ops.Update, gated bool, progress func(ops.RunEvent)) (common.Action, bool) {
	switch {
	case key.Matches(msg, k.Approve):
		return Decide(svc, u.ChangeNumber, true), true
	case key.Matches(msg, k.Reject):
		return Decide(svc, u.ChangeNumber, false), true
	case key.Matches(msg, k.Run):
		return Run(svc, u, gated, progress), true
	case key.Matches(msg, k.Cancel):
		return Cancel(svc, u, gated), true
	}
	return common.Action{}, false
}
