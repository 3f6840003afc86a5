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
	common.NavKeys
	Open    key.Binding
	AllEnvs key.Binding
	Copy    key.Binding
	actions.UpdateKeys
}

// DefaultKeyMap returns the screen's default keys.
func DefaultKeyMap() KeyMap {
	nav := common.DefaultNavKeys()
	nav.PageUp.SetEnabled(false)
	nav.PageDown.SetEnabled(false)
	return KeyMap{
		NavKeys:    nav,
		Open:       key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "detail")),
		AllEnvs:    key.NewBinding(key.WithKeys("e"), key.WithHelp("e", "all environments")),
		Copy:       common.CopyKey(),
		UpdateKeys: actions.DefaultUpdateKeys(),
	}
}

type loadedMsg struct {
	gen int
	ups []ops.UpdateStatus
	err error
}

func (loadedMsg) Target() common.Page { return common.PageUpdates }

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
	load     common.Loader
	err      error
	// want is the update the cursor lands on once it is loaded (the one
	// an action just created).
	want string
}

// New builds the screen. progress receives the events of runs started
// here (the run monitor's sink).
func New(c common.Common, src Source, acts actions.Service, envs []ops.Environment, progress func(ops.RunEvent)) Model {
	m := Model{
		common: c, src: src, acts: acts, progress: progress, keys: DefaultKeyMap(), filter: common.NewFilter(c),
		envs: map[string]ops.Environment{},
	}
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
	m.load.Supersede()
	return m.Load()
}

// SelectWhenLoaded puts the cursor on update id as soon as a load shows
// it ("" keeps the cursor where it is).
func (m *Model) SelectWhenLoaded(id string) {
	if id != "" {
		m.want = id
		m.filter = common.NewFilter(m.common) // a filter must not hide it
	}
}

// Load starts a (re)load unless one is in flight.
func (m *Model) Load() tea.Cmd {
	src, env := m.src, m.env
	return m.load.Load(m.common, func(ctx context.Context, gen int) tea.Msg {
		ups, err := src.UpdateStatuses(ctx, ops.UpdateFilter{Environment: env, Limit: 1000})
		return loadedMsg{gen: gen, ups: ups, err: err}
	})
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
	m.visible = m.visible[:0:0]
	for _, i := range common.FuzzyRank(m.filter.Value(), len(m.all), func(i int) string { return searchText(m.all[i]) }) {
		m.visible = append(m.visible, m.all[i])
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
	m.keys.Open.SetEnabled(ok && !m.filter.Active())
	m.keys.AllEnvs.SetEnabled(m.env != "")
	m.keys.Copy.SetEnabled(ok)
	m.keys.Enable(!m.common.ReadOnly, u, ok)
}

// Update handles messages.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case common.RefreshMsg:
		return m, m.Load()
	case loadedMsg:
		if !m.load.Done(msg.gen) {
			return m, nil
		}
		m.err = msg.err
		if msg.err == nil {
			sel, had := m.Selected()
			m.all = msg.ups
			m.applyFilter()
			if m.want != "" { // the row an action created
				sel, had = ops.UpdateStatus{Update: ops.Update{ID: m.want}}, true
				for _, u := range m.visible {
					if u.Update.ID == m.want {
						m.want = ""
					}
				}
			}
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
	if to, ok := m.keys.Move(msg, m.cursor, len(m.visible), 0); ok {
		m.cursor = to
		return m, nil
	}
	switch {
	case key.Matches(msg, m.keys.AllEnvs):
		return m, m.SetEnvironment("")
	case !ok:
		return m, nil
	case key.Matches(msg, m.keys.Open):
		return m, common.Navigate(common.PageDetail, u.Update.ID)
	case key.Matches(msg, m.keys.Copy):
		return m, common.Copy(u.Update.ID)
	}
	if a, ok := m.keys.Action(msg, m.acts, u.Update, m.envs[u.Update.Environment].RequiresChange, m.progress); ok {
		return m, common.Act(a)
	}
	return m, nil
}

var columns = []common.Column{
	{Title: "UPDATE", Keep: 9},
	{Title: "ENV", Keep: 5, Min: 5},
	{Title: "VERSION", Keep: 8},
	{Title: "STATE", Keep: 6},
	{Title: "CHANGE", Keep: 7},
	{Title: "GATE", Grow: true, Min: 8},
}

// View renders the screen.
func (m Model) View() string {
	s := m.common.Styles
	w, h := m.common.Width, m.common.Height
	preview := m.preview()
	top := 1
	if m.filter.View() != "" {
		top++
	}
	listH := max(h-top-len(preview)-1, 1)
	off := common.Window(m.offset, m.cursor, listH, len(m.visible))
	var shown [][]string
	for i := off; i < len(m.visible) && i < off+listH; i++ {
		shown = append(shown, m.cells(m.visible[i]))
	}
	cols := common.Fitted(columns, shown, w)
	lines := []string{s.Table.Header.Render(common.Header(cols))}
	if f := m.filter.View(); f != "" {
		lines = append(lines, f)
	}
	switch {
	case m.err != nil && len(m.all) == 0:
		lines = append(lines, s.Status.Bad.Render("cannot read updates: "+m.err.Error()))
	case len(m.all) == 0 && m.load.Loading():
		lines = append(lines, s.Table.Empty.Render("loading…"))
	case len(m.visible) == 0 && len(m.all) > 0:
		lines = append(lines, s.Table.Empty.Render("nothing matches the filter"))
	case len(m.visible) == 0:
		lines = append(lines, s.Table.Empty.Render("no updates yet — propose one with P on an environment or :propose ENV VERSION"))
	}
	lines = append(lines, m.common.Rows(off, m.cursor, len(m.visible), listH, func(i int) string {
		return common.Row(cols, shown[i-off])
	})...)
	for len(lines) < h-len(preview) {
		lines = append(lines, "")
	}
	lines = append(lines, preview...)
	return common.Fit(strings.Join(lines, "\n"), w, h)
}

func (m Model) cells(u ops.UpdateStatus) []string {
	return []string{
		u.Update.ID, u.Update.Environment, u.Update.Version, string(u.Update.State),
		common.Or(u.Update.ChangeNumber, "—"), common.GateStyle(m.common, u),
	}
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
	out = append(out, label("gate", common.GateStyle(m.common, u)))
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
		{m.keys.Up, m.keys.Down, m.keys.Top, m.keys.Bottom, m.keys.Open, m.keys.Copy},
		{m.filter.Keys.Start, m.filter.Keys.Accept, m.filter.Keys.Clear, m.keys.AllEnvs},
		{m.keys.Approve, m.keys.Reject, m.keys.Run, m.keys.Cancel},
	}
}

// FilterValue is the filter text; esc clears it before going back.
func (m *Model) FilterValue() string { return m.filter.Value() }

// Abandon forgets the load in flight: its result will be ignored and the
// next Load starts a new one (the program stopped before it reported).
func (m *Model) Abandon() { m.load.Supersede() }
