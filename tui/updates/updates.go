// Package updates is the screen listing every update with its change
// number, change state and approval, planned window and gate in words
// ("blocked: outside the change window, opens …"), filterable by
// environment and by a fuzzy "/" filter.
package updates

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
	UpdateStatuses(ctx context.Context, f ops.UpdateFilter) ([]ops.UpdateStatus, error)
}

// KeyMap is the screen's keys.
type KeyMap struct {
	Up      key.Binding
	Down    key.Binding
	Top     key.Binding
	Bottom  key.Binding
	Open    key.Binding
	AllEnvs key.Binding
	Approve key.Binding
	Reject  key.Binding
	Run     key.Binding
	Cancel  key.Binding
}

// DefaultKeyMap returns the screen's default keys.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Up:      key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:    key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		Top:     key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("g", "top")),
		Bottom:  key.NewBinding(key.WithKeys("end", "G"), key.WithHelp("G", "bottom")),
		Open:    key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "detail")),
		AllEnvs: key.NewBinding(key.WithKeys("e"), key.WithHelp("e", "all environments")),
		Approve: key.NewBinding(key.WithKeys("A"), key.WithHelp("A", "approve ⚠")),
		Reject:  key.NewBinding(key.WithKeys("R"), key.WithHelp("R", "reject ⚠")),
		Run:     key.NewBinding(key.WithKeys("X"), key.WithHelp("X", "run ⚠")),
		Cancel:  key.NewBinding(key.WithKeys("C"), key.WithHelp("C", "cancel ⚠")),
	}
}

type loadedMsg struct {
	gen int
	ups []ops.UpdateStatus
	err error
}

// Model is the updates screen.
type Model struct {
	common   common.Common
	src      Source
	acts     actions.Service
	envs     map[string]ops.Environment
	progress func(ops.RunEvent)
	keys     KeyMap
	filter   common.Filter
	env      string
	all      []ops.UpdateStatus
	visible  []ops.UpdateStatus
	cursor   int
	offset   int
	gen      int
	loading  bool
	err      error
}

// New builds the screen. progress receives the events of runs started
// here (the run monitor's sink).
func New(c common.Common, src Source, acts actions.Service, envs []ops.Environment, progress func(ops.RunEvent)) Model {
	m := Model{common: c, src: src, acts: acts, progress: progress, keys: DefaultKeyMap(), filter: common.NewFilter(c),
		envs: map[string]ops.Environment{}}
	for _, e := range envs {
		m.envs[e.Name] = e
	}
	m.updateKeys()
	return m
}

// Init does nothing: the root loads the screen when it is shown.
func (m Model) Init() tea.Cmd { return nil }

// SetEnvironment restricts the list to one environment ("" for all) and
// reloads.
func (m *Model) SetEnvironment(env string) tea.Cmd {
	if env == m.env && len(m.all) > 0 {
		return m.Load()
	}
	m.env = env
	m.cursor, m.offset = 0, 0
	m.loading = false
	return m.Load()
}

// Load starts a (re)load unless one is in flight.
func (m *Model) Load() tea.Cmd {
	if m.loading {
		return nil
	}
	m.loading = true
	m.gen++
	c, src, gen, env := m.common, m.src, m.gen, m.env
	return func() tea.Msg {
		ctx, cancel := c.Context()
		defer cancel()
		ups, err := src.UpdateStatuses(ctx, ops.UpdateFilter{Environment: env, Limit: 1000})
		return loadedMsg{gen: gen, ups: ups, err: err}
	}
}

// SetSize sets the screen's size.
func (m *Model) SetSize(w, h int) { m.common.Width, m.common.Height = w, h }

// Title names the screen.
func (m *Model) Title() string {
	if m.env != "" {
		return "Updates: " + m.env
	}
	return "Updates"
}

// InputFocused reports whether the filter is being typed.
func (m *Model) InputFocused() bool { return m.filter.Active() }

// Selected returns the update under the cursor.
func (m Model) Selected() (ops.UpdateStatus, bool) {
	if m.cursor < 0 || m.cursor >= len(m.visible) {
		return ops.UpdateStatus{}, false
	}
	return m.visible[m.cursor], true
}

func (m *Model) applyFilter() {
	q := m.filter.Value()
	m.visible = m.visible[:0:0]
	for _, u := range m.all {
		if common.FuzzyMatch(q, searchText(u)) {
			m.visible = append(m.visible, u)
		}
	}
	m.cursor = common.Clamp(m.cursor, 0, len(m.visible)-1)
}

func searchText(u ops.UpdateStatus) string {
	s := u.Update.ID + " " + u.Update.Environment + " " + u.Update.Version + " " + string(u.Update.State) + " " + u.Update.ChangeNumber + " " + u.GateText
	if u.Change != nil {
		s += " " + u.Change.State.String() + " " + string(u.Change.Approval)
	}
	return s
}

func (m *Model) updateKeys() {
	u, ok := m.Selected()
	rw := !m.common.ReadOnly
	decidable := ok && u.Change != nil && (u.Change.State == ops.ChangeAssess || u.Change.State == ops.ChangeAuthorize)
	m.keys.Open.SetEnabled(ok && !m.filter.Active())
	m.keys.AllEnvs.SetEnabled(m.env != "")
	m.keys.Approve.SetEnabled(rw && decidable)
	m.keys.Reject.SetEnabled(rw && decidable)
	m.keys.Run.SetEnabled(rw && ok && u.Gate.Open)
	m.keys.Cancel.SetEnabled(rw && ok && u.Update.State.CanTransition(ops.UpdateCanceled))
}

// Update handles messages.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case common.RefreshMsg:
		return m, m.Load()
	case loadedMsg:
		if msg.gen != m.gen {
			return m, nil
		}
		m.loading = false
		m.err = msg.err
		if msg.err == nil {
			sel, had := m.Selected()
			m.all = msg.ups
			m.applyFilter()
			if had { // keep the cursor on the same update as rows move
				for i, u := range m.visible {
					if u.Update.ID == sel.Update.ID {
						m.cursor = i
					}
				}
			}
		}
		m.updateKeys()
		return m, nil
	case tea.KeyMsg:
		var handled, changed bool
		var cmd tea.Cmd
		m.filter, handled, changed, cmd = m.filter.Update(msg)
		if changed {
			m.applyFilter()
		}
		if handled {
			m.updateKeys()
			return m, cmd
		}
		m, cmd = m.handleKey(msg)
		m.updateKeys()
		return m, cmd
	}
	return m, nil
}

func (m Model) handleKey(msg tea.KeyMsg) (Model, tea.Cmd) {
	u, ok := m.Selected()
	act := func(a common.Action) tea.Cmd { return func() tea.Msg { return common.ActionMsg{Action: a} } }
	switch {
	case key.Matches(msg, m.keys.Up):
		m.cursor = common.Clamp(m.cursor-1, 0, len(m.visible)-1)
	case key.Matches(msg, m.keys.Down):
		m.cursor = common.Clamp(m.cursor+1, 0, len(m.visible)-1)
	case key.Matches(msg, m.keys.Top):
		m.cursor = 0
	case key.Matches(msg, m.keys.Bottom):
		m.cursor = max(len(m.visible)-1, 0)
	case key.Matches(msg, m.keys.AllEnvs):
		return m, m.SetEnvironment("")
	case !ok:
	case key.Matches(msg, m.keys.Open):
		return m, common.Navigate(common.PageDetail, u.Update.ID)
	case key.Matches(msg, m.keys.Approve):
		return m, act(actions.Decide(m.acts, u.Update.ChangeNumber, true))
	case key.Matches(msg, m.keys.Reject):
		return m, act(actions.Decide(m.acts, u.Update.ChangeNumber, false))
	case key.Matches(msg, m.keys.Run):
		return m, act(actions.Run(m.acts, u.Update, m.envs[u.Update.Environment].RequiresChange, m.progress))
	case key.Matches(msg, m.keys.Cancel):
		return m, act(actions.Cancel(m.acts, u.Update, m.envs[u.Update.Environment].RequiresChange))
	}
	return m, nil
}

var columns = []common.Column{
	{Title: "UPDATE", Width: 8},
	{Title: "ENV", Width: 10},
	{Title: "VERSION", Width: 10},
	{Title: "STATE", Width: 11},
	{Title: "CHANGE", Width: 10},
	{Title: "GATE"},
}

// View renders the screen.
func (m Model) View() string {
	s := m.common.Styles
	w, h := m.common.Width, m.common.Height
	cols := common.Layout(columns, w)
	lines := []string{s.Table.Header.Render(common.Header(cols))}
	if f := m.filter.View(); f != "" {
		lines = append(lines, f)
	}
	preview := m.preview()
	listH := max(h-len(lines)-len(preview)-1, 1)
	switch {
	case m.err != nil && len(m.all) == 0:
		lines = append(lines, s.Status.Bad.Render("cannot read updates: "+m.err.Error()))
	case len(m.all) == 0 && m.loading:
		lines = append(lines, s.Table.Empty.Render("loading…"))
	case len(m.visible) == 0 && len(m.all) > 0:
		lines = append(lines, s.Table.Empty.Render("nothing matches the filter"))
	case len(m.visible) == 0:
		lines = append(lines, s.Table.Empty.Render("no updates yet — propose one with P on an environment or :propose ENV VERSION"))
	}
	off := common.Window(m.offset, m.cursor, listH, len(m.visible))
	for i := off; i < len(m.visible) && i < off+listH; i++ {
		row := common.Row(cols, m.cells(m.visible[i]))
		if i == m.cursor {
			row = s.Table.Selected.Render(common.PadRight(row, w))
		}
		lines = append(lines, row)
	}
	for len(lines) < h-len(preview) {
		lines = append(lines, "")
	}
	lines = append(lines, preview...)
	return common.Fit(strings.Join(lines, "\n"), w, h)
}

// GateStyle colours a gate text by its verdict.
func GateStyle(c common.Common, text string) string {
	s := c.Styles
	switch {
	case strings.HasPrefix(text, "open"), strings.HasPrefix(text, string(ops.UpdateSucceeded)):
		return s.Status.OK.Render(text)
	case strings.HasPrefix(text, "pending"), strings.HasPrefix(text, string(ops.UpdateRunning)):
		return s.Status.Pending.Render(text)
	case strings.HasPrefix(text, "blocked"), strings.HasPrefix(text, string(ops.UpdateFailed)),
		strings.HasPrefix(text, string(ops.UpdateRolledBack)), strings.HasPrefix(text, string(ops.UpdateRejected)):
		return s.Status.Bad.Render(text)
	default:
		return s.Status.Muted.Render(text)
	}
}

func (m Model) cells(u ops.UpdateStatus) []string {
	return []string{u.Update.ID, u.Update.Environment, u.Update.Version, string(u.Update.State),
		common.Or(u.Update.ChangeNumber, "—"), GateStyle(m.common, u.GateText)}
}

func (m Model) preview() []string {
	u, ok := m.Selected()
	if !ok {
		return nil
	}
	s := m.common.Styles
	w := m.common.Width
	label := func(l, v string) string {
		return common.Truncate(s.Section.Label.Render(l+": ")+v, w)
	}
	from := common.Or(u.Update.FromVersion, "(nothing)")
	out := []string{s.Section.Title.Render(fmt.Sprintf("%s  %s %s → %s", u.Update.ID, u.Update.Environment, from, u.Update.Version))}
	if u.Change != nil {
		c := u.Change
		out = append(out, label("change", fmt.Sprintf("%s · %s · approval %s · window %s – %s", c.Number, c.State, common.Or(string(c.Approval), "—"),
			common.Timestamp(c.StartDate), common.Timestamp(c.EndDate))))
	} else if u.Update.ChangeNumber == "" && m.envs[u.Update.Environment].RequiresChange {
		out = append(out, label("change", "not raised yet (queued for ServiceNow)"))
	}
	out = append(out, label("gate", GateStyle(m.common, u.GateText)))
	return out
}

// ShortHelp implements help.KeyMap.
func (m Model) ShortHelp() []key.Binding {
	if m.filter.Active() {
		return []key.Binding{m.filter.Keys.Accept, m.filter.Keys.Clear}
	}
	return []key.Binding{m.keys.Open, m.filter.Keys.Start, m.keys.Approve, m.keys.Reject, m.keys.Run, m.keys.Cancel}
}

// FullHelp implements help.KeyMap.
func (m Model) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{m.keys.Up, m.keys.Down, m.keys.Top, m.keys.Bottom, m.keys.Open},
		{m.filter.Keys.Start, m.filter.Keys.Accept, m.filter.Keys.Clear, m.keys.AllEnvs},
		{m.keys.Approve, m.keys.Reject, m.keys.Run, m.keys.Cancel},
	}
}

// FilterValue is the filter text; esc clears it before going back.
func (m *Model) FilterValue() string { return m.filter.Value() }
