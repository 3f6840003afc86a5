// Package confirm is the dialog every dangerous or input-taking action goes
// through: it shows what will happen, asks for the action's inputs (a
// version, a comment) and, on a gated environment, for the change number or
// environment name typed out before OK enables (k9s's confirm dialog with
// gh's "type the repository name" safety).
package confirm

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/daytwo/daytwo/tui/common"
)

// SubmitMsg reports that the operator confirmed, with the inputs' values.
type SubmitMsg struct{ Values []string }

// CancelMsg reports that the operator backed out.
type CancelMsg struct{}

// KeyMap is the dialog's keys.
type KeyMap struct {
	Next   key.Binding
	Prev   key.Binding
	Submit key.Binding
	Cancel key.Binding
}

// DefaultKeyMap returns the dialog's keys.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Next:   key.NewBinding(key.WithKeys("tab", "down"), key.WithHelp("tab", "next field")),
		Prev:   key.NewBinding(key.WithKeys("shift+tab", "up"), key.WithHelp("shift+tab", "previous field")),
		Submit: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "OK")),
		Cancel: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel")),
	}
}

// Model is the dialog.
type Model struct {
	common common.Common
	keys   KeyMap
	action common.Action
	fields []common.Input
	// confirmIdx is the index of the typed confirmation in fields, or -1.
	confirmIdx int
	focus      int
	// missing is what enter found missing ("comment required"), shown
	// until the next key.
	missing string
}

// New builds the dialog for an action.
func New(c common.Common, a common.Action) Model {
	m := Model{common: c, keys: DefaultKeyMap(), action: a, confirmIdx: -1}
	for _, f := range a.Inputs {
		in := common.NewInput(c, f.Label+": ", f.Placeholder)
		in.SetValue(f.Value)
		m.fields = append(m.fields, in)
	}
	if a.Confirm != "" {
		m.confirmIdx = len(m.fields)
		m.fields = append(m.fields, common.NewInput(c, "Type "+a.Confirm+" to confirm: ", ""))
	}
	if len(m.fields) > 0 {
		m.fields[0].Focus()
	}
	m.updateKeys()
	return m
}

// Action is the action being confirmed.
func (m Model) Action() common.Action { return m.action }

// SetSize sets the area the dialog is centred in.
func (m *Model) SetSize(w, h int) { m.common.Width, m.common.Height = w, h }

// Valid reports whether OK is enabled: required inputs are filled and the
// confirmation matches exactly.
func (m Model) Valid() bool {
	for i, f := range m.action.Inputs {
		if f.Required && strings.TrimSpace(m.fields[i].Value()) == "" {
			return false
		}
	}
	return m.confirmIdx < 0 || m.fields[m.confirmIdx].Value() == m.action.Confirm
}

// Missing says what keeps OK disabled ("comment required", "type
// production to confirm") and the field to fill; "" when OK is enabled.
func (m Model) Missing() (string, int) {
	for i, f := range m.action.Inputs {
		if f.Required && strings.TrimSpace(m.fields[i].Value()) == "" {
			return strings.ToLower(f.Label) + " required", i
		}
	}
	if m.confirmIdx >= 0 && m.fields[m.confirmIdx].Value() != m.action.Confirm {
		return "type " + m.action.Confirm + " exactly to confirm", m.confirmIdx
	}
	return "", -1
}

func (m *Model) updateKeys() {
	m.keys.Next.SetEnabled(len(m.fields) > 1)
	m.keys.Prev.SetEnabled(len(m.fields) > 1)
	m.keys.Submit.SetEnabled(m.Valid())
}

func (m *Model) setFocus(i int) {
	if len(m.fields) == 0 {
		return
	}
	m.fields[m.focus].Blur()
	m.focus = (i + len(m.fields)) % len(m.fields)
	m.fields[m.focus].Focus()
}

// Update handles keys.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	switch {
	case key.Matches(km, m.keys.Cancel):
		return m, func() tea.Msg { return CancelMsg{} }
	case km.Type == tea.KeyEnter:
		if m.Valid() {
			values := make([]string, len(m.action.Inputs))
			for i := range values {
				values[i] = m.fields[i].Value()
			}
			return m, func() tea.Msg { return SubmitMsg{Values: values} }
		}
		// Say what is missing and go to it, rather than silently moving on.
		var at int
		m.missing, at = m.Missing()
		if at >= 0 {
			m.setFocus(at)
		}
		m.updateKeys()
		return m, nil
	case key.Matches(km, m.keys.Next):
		m.setFocus(m.focus + 1)
	case key.Matches(km, m.keys.Prev):
		m.setFocus(m.focus - 1)
	case len(m.fields) > 0:
		m.fields[m.focus], _ = m.fields[m.focus].Update(msg)
	}
	m.missing = ""
	m.updateKeys()
	return m, nil
}

// View renders the dialog centred in its area.
func (m Model) View() string {
	s := m.common.Styles
	w := min(max(m.common.Width-4, 20), 72)
	inner := w - 4
	var lines []string
	lines = append(lines, s.Dialog.Title.Render(common.Truncate(m.action.Title, inner)))
	if m.action.Dangerous {
		lines = append(lines, s.Dialog.Danger.Render("⚠ dangerous: changes ServiceNow or an environment"))
	}
	if m.action.Description != "" {
		lines = append(lines, common.Wrap(m.action.Description, inner)...)
	}
	lines = append(lines, "")
	for i, f := range m.fields {
		if i == m.confirmIdx {
			lines = append(lines, "")
		}
		lines = append(lines, common.Truncate(f.View(), inner))
	}
	ok := s.Dialog.NotOK.Render("[ OK ]")
	if m.Valid() {
		ok = s.Dialog.OK.Render("[ OK ]")
	}
	lines = append(lines, "", ok+"  "+s.Dialog.Hint.Render("enter OK · esc cancel"))
	if m.missing != "" {
		lines = append(lines, s.Dialog.Danger.Render(common.Truncate("✗ "+m.missing, inner)))
	}
	box := s.Dialog.Box.Width(inner + 2).Render(strings.Join(lines, "\n"))
	return lipgloss.Place(m.common.Width, m.common.Height, lipgloss.Center, lipgloss.Center, box)
}

// ShortHelp implements help.KeyMap.
func (m Model) ShortHelp() []key.Binding {
	return []key.Binding{m.keys.Submit, m.keys.Next, m.keys.Cancel}
}

// FullHelp implements help.KeyMap.
func (m Model) FullHelp() [][]key.Binding {
	return [][]key.Binding{{m.keys.Submit, m.keys.Next, m.keys.Prev, m.keys.Cancel}}
}
