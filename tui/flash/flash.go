// Package flash is the console's flash line (k9s's model/flash.go): the
// latest info, warning or error, cleared by a timer after a while. An
// error too long for one line wraps onto up to three.
package flash

import (
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/daytwo/daytwo/tui/common"
)

// ClearMsg clears the flash it was armed for (a newer flash outlives it).
type ClearMsg struct{ id int }

// Model is the flash line.
type Model struct {
	common common.Common
	dur    time.Duration
	text   string
	level  common.Level
	id     int
}

// New builds a flash line whose messages stay for d.
func New(c common.Common, d time.Duration) Model { return Model{common: c, dur: d} }

// Set shows text at level l and returns the timer that clears it.
func (m *Model) Set(l common.Level, text string) tea.Cmd {
	m.id++
	m.text, m.level = text, l
	id := m.id
	if l == common.LevelError {
		m.common.Logger.Debug("flash", "text", text)
	}
	return tea.Tick(m.dur, func(time.Time) tea.Msg { return ClearMsg{id: id} })
}

// Clear empties the line now.
func (m *Model) Clear() { m.text = "" }

// Text is what the line shows ("" when empty).
func (m Model) Text() string { return m.text }

// Update handles common.FlashMsg and the clearing timer.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case common.FlashMsg:
		return m, m.Set(msg.Level, msg.Text)
	case ClearMsg:
		if msg.id == m.id {
			m.text = ""
		}
	}
	return m, nil
}

// View renders the text in its level's style ("" when empty).
func (m Model) View() string {
	if m.text == "" {
		return ""
	}
	s := m.common.Styles.Flash
	st := s.Info
	switch m.level {
	case common.LevelWarn:
		st = s.Warn
	case common.LevelError:
		st = s.Error
	}
	return st.Render(m.text)
}

// Wrapped is an error too wide for w, wrapped onto up to three lines each
// w wide: an error the operator must read whole. It is nil for anything
// that fits on one line, and for infos and warnings.
func (m Model) Wrapped(w int) []string {
	if m.text == "" || m.level != common.LevelError || lipgloss.Width(m.text) <= w || w < 20 {
		return nil
	}
	var lines []string
	line := ""
	for _, word := range strings.Fields(m.text) {
		if line != "" && lipgloss.Width(line)+1+lipgloss.Width(word) > w {
			lines, line = append(lines, line), word
			continue
		}
		line = strings.TrimSpace(line + " " + word)
	}
	lines = append(lines, line)
	if len(lines) > 3 {
		lines = append(lines[:2], common.Truncate(strings.Join(lines[2:], " "), w))
	}
	st := m.common.Styles.Flash.Error
	for i, l := range lines {
		lines[i] = common.PadRight(st.Render(l), w)
	}
	return lines
}
