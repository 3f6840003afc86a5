// Package record is the page showing one row in full (enter on any row
// whose screen has no richer detail: an outbox item, an audit event, a
// mirrored change): every field, its whole text wrapped to the width,
// scrollable, and y to copy its id.
package record

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/daytwo/daytwo/tui/common"
)

// KeyMap is the page's keys.
type KeyMap struct {
	common.NavKeys
	Copy key.Binding
}

// Model is the record page.
type Model struct {
	common common.Common
	keys   KeyMap
	vp     viewport.Model
	rec    common.Record
}

// New builds the page.
func New(c common.Common) Model {
	nav := common.DefaultNavKeys()
	nav.Up.SetHelp("↑/k", "scroll up")
	nav.Down.SetHelp("↓/j", "scroll down")
	m := Model{common: c, keys: KeyMap{NavKeys: nav, Copy: common.CopyKey()}, vp: viewport.New(c.Width, c.Height)}
	m.vp.KeyMap = viewport.KeyMap{}
	return m
}

// Show switches to r.
func (m *Model) Show(r common.Record) {
	m.rec = r
	m.vp.GotoTop()
	m.render()
}

// SetSize sets the page's size.
func (m *Model) SetSize(w, h int) {
	m.common.Width, m.common.Height = w, h
	m.vp.Width, m.vp.Height = w, h
	m.render()
}

// Title names the page.
func (m *Model) Title() string { return common.Or(m.rec.Title, "Record") }

// InputFocused reports false.
func (m *Model) InputFocused() bool { return false }

func (m *Model) render() {
	s := m.common.Styles
	w := max(m.common.Width, 20)
	label := 0
	for _, f := range m.rec.Fields {
		label = max(label, lipgloss.Width(f.Label))
	}
	label = min(label, w/3)
	var b strings.Builder
	b.WriteString(s.Section.Title.Render(m.rec.Title))
	for _, f := range m.rec.Fields {
		pad := strings.Repeat(" ", max(label-lipgloss.Width(f.Label), 0))
		text := strings.TrimRight(common.Or(f.Value, "—"), "\n")
		// The whole value, wrapped under itself (words, then hard breaks
		// for ids and paths longer than the line).
		body := ansi.Wrap(text, max(w-label-2, 10), " ,/")
		for i, l := range strings.Split(body, "\n") {
			b.WriteString("\n")
			if i == 0 {
				b.WriteString(s.Section.Label.Render(f.Label) + pad + "  ")
			} else {
				b.WriteString(strings.Repeat(" ", label+2))
			}
			b.WriteString(s.Section.Value.Render(l))
		}
	}
	m.vp.SetContent(b.String())
}

// Update handles keys.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	if _, ok := m.keys.Scroll(&m.vp, km); ok {
		return m, nil
	}
	if key.Matches(km, m.keys.Copy) {
		return m, common.Copy(m.rec.ID)
	}
	return m, nil
}

// View renders the page.
func (m Model) View() string { return common.Fit(m.vp.View(), m.common.Width, m.common.Height) }

// ShortHelp implements help.KeyMap.
func (m Model) ShortHelp() []key.Binding { return []key.Binding{m.keys.Down, m.keys.Up, m.keys.Copy} }

// FullHelp implements help.KeyMap.
func (m Model) FullHelp() [][]key.Binding {
	return [][]key.Binding{{m.keys.Up, m.keys.Down, m.keys.PageUp, m.keys.PageDown, m.keys.Top, m.keys.Bottom}, {m.keys.Copy}}
}
