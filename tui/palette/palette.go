// Package palette is the console's command line (":"): a text input that,
// once open, takes every key; enter submits the line as a SubmitMsg, esc
// closes it. The root owns the commands.
package palette

import (
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/tui/common"
)

// SubmitMsg carries the line typed into the palette.
type SubmitMsg struct{ Line string }

// KeyMap is the palette's keys while it is open.
type KeyMap struct {
	Run   key.Binding
	Close key.Binding
}

// DefaultKeyMap returns enter to run and esc to close.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Run:   key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "run")),
		Close: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "close")),
	}
}

// Model is the palette.
type Model struct {
	keys  KeyMap
	input common.Input
	open  bool
}

// New builds a closed palette whose empty line shows placeholder.
func New(c common.Common, placeholder string) Model {
	return Model{keys: DefaultKeyMap(), input: common.NewInput(c, ":", placeholder)}
}

// Open gives the palette the keyboard.
func (m *Model) Open() {
	m.open = true
	m.input.Focus()
}

// Active reports whether the palette is open (it then takes every key).
func (m Model) Active() bool { return m.open }

func (m *Model) close() {
	m.open = false
	m.input.Blur()
}

// Update handles a key while open.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok || !m.open {
		return m, nil
	}
	switch {
	case key.Matches(km, m.keys.Close):
		m.close()
		return m, nil
	case key.Matches(km, m.keys.Run):
		m.close()
		line := m.input.Value()
		m.input.SetValue("")
		return m, func() tea.Msg { return SubmitMsg{Line: line} }
	}
	m.input, _ = m.input.Update(msg)
	return m, nil
}

// View renders the prompt and the line.
func (m Model) View() string { return m.input.View() }

// ShortHelp is the keys of the open palette, for the footer.
func (m Model) ShortHelp() []key.Binding { return []key.Binding{m.keys.Run, m.keys.Close} }
