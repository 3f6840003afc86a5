// Package environments is the console's home screen: every environment
// with its current release, health, drift and promotion badges, lease
// holder, pending updates and policy alerts.
package environments

import (
	"context"
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/actions"
	"github.com/daytwo/daytwo/tui/common"
)

// Source is what the screen reads; *ops.Service implements it.
type Source interface {
	EnvironmentStatuses(ctx context.Context) ([]ops.EnvironmentStatus, error)
}

// KeyMap is the screen's keys.
type KeyMap struct {
	common.NavKeys
	Open     key.Binding
	Monitor  key.Binding
	Propose  key.Binding
	Rollback key.Binding
}

// DefaultKeyMap returns the screen's default keys.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		NavKeys:  common.UpDownOnly(),
		Open:     key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "updates")),
		Monitor:  key.NewBinding(key.WithKeys("m"), key.WithHelp("m", "monitor run")),
		Propose:  key.NewBinding(key.WithKeys("P"), key.WithHelp("P", "propose ⚠")),
		Rollback: key.NewBinding(key.WithKeys("B"), key.WithHelp("B", "roll back ⚠")),
	}
}

type loadedMsg struct {
	gen  int
	envs []ops.EnvironmentStatus
	err  error
}

func (loadedMsg) Target() common.Page { return common.PageEnvironments }

// Model is the environments screen.
type Model struct {
	common common.Common
	src    Source
	acts   actions.Service
	keys   KeyMap
	envs   []ops.EnvironmentStatus
	cursor int
	load   common.Loader
	err    error
}

// New builds the screen.
func New(c common.Common, src Source, acts actions.Service) Model {
	m := Model{common: c, src: src, acts: acts, keys: DefaultKeyMap()}
	m.updateKeys()
	return m
}

// Init loads the environments.
func (m Model) Init() tea.Cmd { return nil }

// Load starts a (re)load unless one is in flight.
func (m *Model) Load() tea.Cmd {
	src := m.src
	return m.load.Load(m.common, func(ctx context.Context, gen int) tea.Msg {
		envs, err := src.EnvironmentStatuses(ctx)
		return loadedMsg{gen: gen, envs: envs, err: err}
	})
}

// SetSize sets the screen's size.
func (m *Model) SetSize(w, h int) { m.common.Width, m.common.Height = w, h }

// Title names the screen.
func (m *Model) Title() string { return "Environments" }

// InputFocused reports whether a text input has focus.
func (m *Model) InputFocused() bool { return false }

// Selected returns the environment under the cursor.
func (m Model) Selected() (ops.EnvironmentStatus, bool) {
	if m.cursor < 0 || m.cursor >= len(m.envs) {
		return ops.EnvironmentStatus{}, false
	}
	return m.envs[m.cursor], true
}

// Select moves the cursor to the environment whose name starts with name.
func (m *Model) Select(name string) bool {
	for i, e := range m.envs {
		if strings.HasPrefix(e.Environment.Name, name) {
			m.cursor = i
			m.updateKeys()
			return true
		}
	}
	return false
}

func (m *Model) updateKeys() {
	st, ok := m.Selected()
	m.keys.Open.SetEnabled(ok)
	m.keys.Propose.SetEnabled(ok && !m.common.ReadOnly)
	m.keys.Rollback.SetEnabled(ok && !m.common.ReadOnly && st.Current.Version != "")
	m.keys.Monitor.SetEnabled(ok && st.Running != nil)
}

// Update handles messages.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case common.RefreshMsg:
		return m, m.Load()
	case loadedMsg:
		if !m.load.Done(msg.gen) {
			return m, nil // stale
		}
		m.err = msg.err
		if msg.err == nil {
			m.envs = msg.envs
			m.cursor = common.Clamp(m.cursor, 0, len(m.envs)-1)
		}
		m.updateKeys()
		return m, nil
	case tea.KeyMsg:
		return m.handleKey(msg)
	}
	return m, nil
}

func (m Model) handleKey(msg tea.KeyMsg) (Model, tea.Cmd) {
	if to, ok := m.keys.Move(msg, m.cursor, len(m.envs), 0); ok {
		m.cursor = to
		m.updateKeys()
		return m, nil
	}
	switch {
	case key.Matches(msg, m.keys.Open):
		st, _ := m.Selected()
		return m, common.Navigate(common.PageUpdates, st.Environment.Name)
	case key.Matches(msg, m.keys.Monitor):
		st, _ := m.Selected()
		return m, common.Navigate(common.PageMonitor, st.Running.ID)
	case key.Matches(msg, m.keys.Propose):
		st, _ := m.Selected()
		a := actions.Propose(m.acts, st.Environment, "", nil)
		return m, common.Act(a)
	case key.Matches(msg, m.keys.Rollback):
		st, _ := m.Selected()
		a := actions.Rollback(m.acts, st.Environment, "")
		return m, common.Act(a)
	}
	m.updateKeys()
	return m, nil
}

var columns = []common.Column{
	{Title: "ENVIRONMENT", Width: 12},
	{Title: "RELEASE", Width: 12},
	{Title: "STATE", Width: 13},
	{Title: "PENDING", Width: 7},
	{Title: "BADGES"},
}

// View renders the screen.
func (m Model) View() string {
	s := m.common.Styles
	w, h := m.common.Width, m.common.Height
	cols := common.Layout(columns, w)
	var b strings.Builder
	b.WriteString(s.Table.Header.Render(common.Header(cols)))
	lines := 1
	switch {
	case m.err != nil && len(m.envs) == 0:
		b.WriteString("\n" + s.Status.Bad.Render("cannot read environments: "+m.err.Error()))
		lines++
	case len(m.envs) == 0 && m.load.Loading():
		b.WriteString("\n" + s.Table.Empty.Render("loading…"))
		lines++
	case len(m.envs) == 0:
		b.WriteString("\n" + s.Table.Empty.Render("no environments configured"))
		lines++
	}
	preview := m.preview()
	listH := max(h-1-len(preview)-1, 1)
	for _, row := range m.common.Rows(0, m.cursor, len(m.envs), listH, func(i int) string { return common.Row(cols, m.cells(m.envs[i])) }) {
		b.WriteString("\n" + row)
		lines++
	}
	for ; lines < h-len(preview); lines++ {
		b.WriteString("\n")
	}
	for _, p := range preview {
		b.WriteString("\n" + p)
	}
	return common.Fit(b.String(), w, h)
}

func (m Model) cells(e ops.EnvironmentStatus) []string {
	s := m.common.Styles
	state := s.Status.Muted.Render("idle")
	switch {
	case e.Running != nil:
		state = s.Badge.Running.Render("● running")
	case e.LastResult == ops.RunSucceeded:
		state = s.Status.OK.Render("✓ healthy")
	case e.LastResult == ops.RunRolledBack:
		state = s.Status.Bad.Render("↺ rolled back")
	case e.LastResult == ops.RunFailed:
		state = s.Status.Bad.Render("✗ failed")
	case e.LastResult != "":
		state = s.Status.Warn.Render(string(e.LastResult))
	}
	var badges []string
	if e.Environment.RequiresChange {
		badges = append(badges, s.Badge.Gated.Render("gated"))
	}
	if e.Drifted > 0 {
		badges = append(badges, s.Badge.Drift.Render(fmt.Sprintf("drift %d", e.Drifted)))
	}
	if len(e.Behind) > 0 {
		badges = append(badges, s.Badge.Behind.Render(fmt.Sprintf("behind %s", e.Behind[0])))
	}
	if e.Lease != nil {
		badges = append(badges, s.Badge.Lease.Render("lease "+e.Lease.Holder))
	}
	if len(e.Alerts) > 0 {
		badges = append(badges, s.Badge.Alert.Render(fmt.Sprintf("%d alert(s)", len(e.Alerts))))
	}
	pending := "0"
	if e.Pending > 0 {
		pending = s.Status.Pending.Render(fmt.Sprint(e.Pending))
	}
	return []string{e.Environment.Name, common.Or(e.Current.Version, "—"), state, pending, strings.Join(badges, " ")}
}

// preview describes the selected environment in a few lines.
func (m Model) preview() []string {
	e, ok := m.Selected()
	if !ok {
		return nil
	}
	s := m.common.Styles
	w := m.common.Width
	label := func(l, v string) string {
		return common.Truncate(s.Section.Label.Render(l+": ")+s.Section.Value.Render(v), w)
	}
	gate := "no change needed"
	if e.Environment.RequiresChange {
		gate = "every update needs an approved ServiceNow change"
	}
	out := []string{s.Section.Title.Render(e.Environment.Name), label("gate", gate)}
	if e.Environment.PromoteFrom != "" {
		behind := "up to date with " + e.Environment.PromoteFrom
		if len(e.Behind) > 0 {
			behind = e.Environment.PromoteFrom + " has newer: " + strings.Join(e.Behind, ", ")
		}
		out = append(out, label("promotion", behind))
	}
	lease := "free"
	if e.Lease != nil {
		lease = e.Lease.Holder
		if e.Lease.RunID != "" {
			lease += " (run " + e.Lease.RunID + ")"
		}
	}
	out = append(out, label("lease", lease))
	for _, a := range e.Alerts {
		msg := common.Or(a.Message, a.Error)
		out = append(out, common.Truncate(s.Badge.Alert.Render("alert ")+a.Policy+": "+msg, w))
	}
	return out
}

// ShortHelp implements help.KeyMap.
func (m Model) ShortHelp() []key.Binding {
	return []key.Binding{m.keys.Up, m.keys.Down, m.keys.Open, m.keys.Monitor, m.keys.Propose, m.keys.Rollback}
}

// FullHelp implements help.KeyMap.
func (m Model) FullHelp() [][]key.Binding {
	return [][]key.Binding{{m.keys.Up, m.keys.Down, m.keys.Open, m.keys.Monitor}, {m.keys.Propose, m.keys.Rollback}}
}
