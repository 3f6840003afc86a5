// Package environments is the console's list of environments (every
// (service, stage) unit; the home screen is the services matrix, whose tab
// opens this one): each with its current release and since when, the last run's outcome, the
// open update with its change and state, drift, the next gate opening,
// promotion badges, lease holder and policy alerts.
package environments

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/actions"
	"github.com/daytwo/daytwo/tui/common"
)

// Source is what the screen reads; *ops.Service implements it.
type Source = common.StatusSource

// recent bounds how many of the newest updates the screen reads to find
// each environment's last run, history and current release's origin.
const recent = 100

// KeyMap is the screen's keys.
type KeyMap struct {
	common.NavKeys
	Open     key.Binding
	Monitor  key.Binding
	Propose  key.Binding
	Rollback key.Binding
	Copy     key.Binding
}

// DefaultKeyMap returns the screen's default keys.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		NavKeys:  common.UpDownOnly(),
		Open:     key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "updates")),
		Monitor:  key.NewBinding(key.WithKeys("m"), key.WithHelp("m", "monitor run")),
		Propose:  key.NewBinding(key.WithKeys("P"), key.WithHelp("P", "propose ⚠")),
		Rollback: key.NewBinding(key.WithKeys("B"), key.WithHelp("B", "roll back ⚠")),
		Copy:     common.CopyKey(),
	}
}

type loadedMsg struct {
	gen  int
	envs []ops.EnvironmentStatus
	ups  []ops.UpdateStatus
	err  error
}

// facts is what the screen knows of one environment beyond its status,
// from its newest updates.
type facts struct {
	open    *ops.UpdateStatus  // the newest open update
	lastRun *ops.Run           // the newest run
	origin  *ops.Update        // the update that made the current release
	recent  []ops.UpdateStatus // its newest updates, newest first
}

// history is how many of an environment's newest updates the screen lists
// under the selected one when there is room.
const history = 10

func (loadedMsg) Target() common.Page { return common.PageEnvironments }

// Model is the environments screen.
type Model struct {
	common common.Common
	src    Source
	acts   actions.Service
	keys   KeyMap
	envs   []ops.EnvironmentStatus
	facts  map[string]facts
	cursor int
	load   common.Loader
	err    error
	// want is the environment to select once loaded (SelectWhenLoaded).
	want string
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
		// Every open update (one per environment at most), then the newest
		// few of each environment for its last run and history.
		envs, open, err := common.ReadStatuses(ctx, src)
		if err != nil {
			return loadedMsg{gen: gen, err: err}
		}
		ups, err := src.UpdateStatuses(ctx, ops.UpdateFilter{Limit: min(history*max(len(envs), 1), recent)})
		return loadedMsg{gen: gen, envs: envs, ups: append(open, ups...), err: err}
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

// SelectWhenLoaded selects name (Select) now if the screen has loaded,
// else once it has (the home screen is the services matrix: this one may
// not have loaded yet). It reports false when the screen has loaded and
// nothing matches.
func (m *Model) SelectWhenLoaded(name string) bool {
	if name == "" {
		return true
	}
	if len(m.envs) == 0 {
		m.want = name
		return true
	}
	return m.Select(name)
}

// Select moves the cursor to the environment named name, else to the first
// whose name starts with name.
func (m *Model) Select(name string) bool {
	if i := slices.IndexFunc(m.envs, func(e ops.EnvironmentStatus) bool { return e.Environment.Name == name }); i >= 0 {
		m.cursor = i
		m.updateKeys()
		return true
	}
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
		var cmd tea.Cmd
		if msg.err == nil {
			m.envs = msg.envs
			m.facts = gather(msg.envs, msg.ups)
			m.cursor = common.Clamp(m.cursor, 0, len(m.envs)-1)
			if want := m.want; want != "" {
				m.want = ""
				if !m.Select(want) {
					cmd = common.Flash(common.LevelWarn, "no environment matches "+want)
				}
			}
		}
		m.updateKeys()
		return m, cmd
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
		a := actions.Propose(m.acts, st.Environment, "", m.Candidate(st.Environment.Name), nil)
		return m, common.Act(a)
	case key.Matches(msg, m.keys.Rollback):
		st, _ := m.Selected()
		a := actions.Rollback(m.acts, st.Environment, m.RollbackTarget(st.Environment.Name), st.Current.Version)
		return m, common.Act(a)
	case key.Matches(msg, m.keys.Copy):
		st, _ := m.Selected()
		return m, common.Copy(st.Environment.Name)
	}
	m.updateKeys()
	return m, nil
}

// gather finds, per environment, its newest open update, newest run and
// the update its current release came from (ups is newest first).
func gather(envs []ops.EnvironmentStatus, ups []ops.UpdateStatus) map[string]facts {
	origin := map[string]string{}
	for _, e := range envs {
		origin[e.Environment.Name] = e.Current.UpdateID
	}
	out := map[string]facts{}
	for i := range ups {
		u := &ups[i]
		env := u.Update.Environment
		f := out[env]
		if f.open == nil && slices.Contains(ops.OpenUpdateStates(), u.Update.State) {
			f.open = u
		}
		if r := u.LastRun; r != nil && (f.lastRun == nil || r.StartedAt.After(f.lastRun.StartedAt)) {
			f.lastRun = r
		}
		if f.origin == nil && u.Update.ID != "" && u.Update.ID == origin[env] {
			f.origin = &u.Update
		}
		if len(f.recent) < history && !slices.ContainsFunc(f.recent, func(r ops.UpdateStatus) bool { return r.Update.ID == u.Update.ID }) {
			f.recent = append(f.recent, *u)
		}
		out[env] = f
	}
	for env, f := range out { // open ones were read first: newest first again
		slices.SortStableFunc(f.recent, func(a, b ops.UpdateStatus) int { return b.Update.CreatedAt.Compare(a.Update.CreatedAt) })
		out[env] = f
	}
	return out
}

// Candidate is the version a proposal for env suggests: what the
// environment it promotes from runs now ("" when it promotes from none).
func (m Model) Candidate(env string) string { return common.Candidate(m.envs, env) }

// RollbackTarget is the version a rollback of env returns to: the one
// the current release replaced ("" when the screen does not know it).
func (m Model) RollbackTarget(env string) string {
	if f, ok := m.facts[env]; ok && f.origin != nil && f.origin.FromVersion != "" {
		return f.origin.FromVersion
	}
	return ""
}

var columns = []common.Column{
	{Title: "ENVIRONMENT", Keep: 9, Min: 8},
	{Title: "RELEASE", Keep: 8},
	{Title: "SINCE", Keep: 3, Min: 5},
	{Title: "LAST RUN", Keep: 6, Min: 8},
	{Title: "OPEN UPDATE", Keep: 2, Min: 10},
	{Title: "DRIFT", Keep: 4, Min: 5},
	{Title: "NEXT GATE", Keep: 5, Min: 9},
	{Title: "FLAGS", Keep: 1, Grow: true, Min: 5},
}

// View renders the screen.
func (m Model) View() string {
	s := m.common.Styles
	w, h := m.common.Width, m.common.Height
	now := m.common.Now()
	shown := make([][]string, len(m.envs))
	for i, e := range m.envs {
		shown[i] = m.cells(e, now)
	}
	cols := common.Fitted(columns, shown, w)
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
	preview := m.preview(max(h-1-len(m.envs)-1, 0))
	listH := max(h-1-len(preview)-1, 1)
	for _, row := range m.common.Rows(0, m.cursor, len(m.envs), listH, func(i int) string { return common.Row(cols, shown[i]) }) {
		b.WriteString("\n" + row)
		lines++
	}
	// The selected environment in words under the list, then its recent
	// updates in what room is left.
	b.WriteString("\n")
	lines++
	for _, p := range preview {
		b.WriteString("\n" + p)
		lines++
	}
	if room := h - lines; room > 3 {
		for _, l := range m.recent(room) {
			b.WriteString("\n" + l)
		}
	}
	return common.Fit(b.String(), w, h)
}

// since renders when a release began: how long ago (the preview has the
// time).
func since(t, now time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return common.Duration(now.Sub(t)) + " ago"
}

func (m Model) runOutcome(e ops.EnvironmentStatus) string {
	s := m.common.Styles
	switch {
	case e.Running != nil:
		return s.Badge.Running.Render("● running")
	case e.LastResult == ops.RunSucceeded:
		return s.Status.OK.Render("✓ succeeded")
	case e.LastResult == ops.RunRolledBack:
		return s.Status.Bad.Render("↺ rolled back")
	case e.LastResult == ops.RunFailed:
		return s.Status.Bad.Render("✗ failed")
	case e.LastResult != "":
		return s.Status.Warn.Render(string(e.LastResult))
	}
	return s.Status.Muted.Render("never run")
}

func (m Model) cells(e ops.EnvironmentStatus, now time.Time) []string {
	s := m.common.Styles
	f := m.facts[e.Environment.Name]
	open, gate := "—", "—"
	if u := f.open; u != nil {
		open = common.Or(u.Update.ChangeNumber, u.Update.ID) + " → " + u.Update.Version
		switch {
		case u.Gate.Open:
			gate = s.Status.OK.Render("open")
		case !u.Gate.NextOpen.IsZero():
			gate = s.Status.Warn.Render(u.Gate.NextOpen.UTC().Format("01-02 15:04"))
		case u.Gate.Pending:
			gate = s.Status.Pending.Render("approval")
		default:
			gate = s.Status.Bad.Render("blocked")
		}
	}
	drift := s.Status.OK.Render("none")
	if e.Drifted > 0 {
		drift = s.Badge.Drift.Render(fmt.Sprintf("%d target(s)", e.Drifted))
	}
	var badges []string
	if e.Environment.RequiresChange {
		badges = append(badges, s.Badge.Gated.Render("gated"))
	}
	if len(e.Behind) > 0 {
		badges = append(badges, s.Badge.Behind.Render(fmt.Sprintf("behind %s", e.Behind[0])))
	}
	if e.Pending > 1 {
		badges = append(badges, s.Status.Pending.Render(fmt.Sprintf("%d pending", e.Pending)))
	}
	if e.Lease != nil {
		badges = append(badges, s.Badge.Lease.Render("lease "+e.Lease.Holder))
	}
	if len(e.Alerts) > 0 {
		badges = append(badges, s.Badge.Alert.Render(fmt.Sprintf("%d alert(s)", len(e.Alerts))))
	}
	return []string{
		e.Environment.Name, common.Or(e.Current.Version, "—"), since(e.Current.CreatedAt, now), m.runOutcome(e), open, drift, gate,
		strings.Join(badges, " "),
	}
}

// recent lists the selected environment's newest updates in up to room
// lines (a blank line and a title first).
func (m Model) recent(room int) []string {
	e, ok := m.Selected()
	if !ok || room < 3 {
		return nil
	}
	s := m.common.Styles
	ups := m.facts[e.Environment.Name].recent
	if len(ups) == 0 {
		return nil
	}
	ups = ups[:min(len(ups), room-3)]
	rows := make([][]string, len(ups))
	for i, u := range ups {
		run := "—"
		if u.LastRun != nil {
			run = u.LastRun.ID + " " + string(u.LastRun.State)
		}
		rows[i] = []string{
			u.Update.ID, common.Or(u.Update.FromVersion, "(nothing)") + " → " + u.Update.Version, string(u.Update.State),
			common.Or(u.Update.ChangeNumber, "—"), run, common.Timestamp(u.Update.CreatedAt),
		}
	}
	cols := common.Fitted([]common.Column{
		{Title: "UPDATE", Keep: 9},
		{Title: "VERSIONS", Keep: 8},
		{Title: "STATE", Keep: 6},
		{Title: "CHANGE", Keep: 7},
		{Title: "LAST RUN", Keep: 3},
		{Title: "PROPOSED", Keep: 2, Grow: true},
	}, rows, m.common.Width)
	out := []string{"", s.Section.Title.Render("Recent updates of " + e.Environment.Name), s.Table.Header.Render(common.Header(cols))}
	for _, r := range rows {
		out = append(out, common.Row(cols, r))
	}
	return out
}

// preview describes the selected environment in up to room lines (at
// least the few that always fit): the release, the last run, the open
// update with its change and gate, promotion, lease and alerts.
func (m Model) preview(room int) []string {
	e, ok := m.Selected()
	if !ok {
		return nil
	}
	s := m.common.Styles
	w := m.common.Width
	f := m.facts[e.Environment.Name]
	label := m.common.Fact
	gate := common.GateWords(e.Environment)
	out := []string{s.Section.Title.Render(e.Environment.Name), label("gate", gate)}
	rel := "nothing released yet"
	if e.Current.Version != "" {
		rel = e.Current.Version + " since " + common.Timestamp(e.Current.CreatedAt)
		if f.origin != nil {
			rel += " (" + f.origin.ID + ", from " + common.Or(f.origin.FromVersion, "nothing") + ")"
		}
	}
	out = append(out, label("release", rel))
	if r := f.lastRun; r != nil {
		run := fmt.Sprintf("%s %s %s, started %s", r.ID, r.Kind, r.State, common.Timestamp(r.StartedAt))
		if r.Error != "" {
			run += ": " + r.Error
		}
		out = append(out, label("last run", run))
	}
	if u := f.open; u != nil {
		up := u.Update.ID + " " + common.Or(u.Update.FromVersion, "(nothing)") + " → " + u.Update.Version + " " + string(u.Update.State)
		if c := u.Change; c != nil {
			up += " · " + c.Number + " " + c.State.String() + " · approval " + common.Or(string(c.Approval), "—")
		} else if u.Update.ChangeNumber != "" {
			up += " · " + u.Update.ChangeNumber
		}
		out = append(out, label("open", up), label("next gate", common.GateStyle(m.common, *u)))
		if !u.Gate.NextOpen.IsZero() {
			out = append(out, label("opens", common.Timestamp(u.Gate.NextOpen)))
		}
	} else {
		out = append(out, label("open", "no open update — P to propose"))
	}
	drift := "none: every target runs " + common.Or(e.Current.Version, "its release")
	if e.Drifted > 0 {
		drift = fmt.Sprintf("%d target(s) disagree with %s (daytwo drift)", e.Drifted, common.Or(e.Current.Version, "the release"))
	}
	out = append(out, label("drift", drift))
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
	if len(out) > room {
		out = out[:max(room, 3)]
	}
	return out
}

// ShortHelp implements help.KeyMap.
func (m Model) ShortHelp() []key.Binding {
	return []key.Binding{m.keys.Open, m.keys.Monitor, m.keys.Propose, m.keys.Rollback, m.keys.Copy}
}

// FullHelp implements help.KeyMap.
func (m Model) FullHelp() [][]key.Binding {
	return [][]key.Binding{{m.keys.Up, m.keys.Down, m.keys.Open, m.keys.Monitor}, {m.keys.Propose, m.keys.Rollback, m.keys.Copy}}
}

// Abandon forgets the load in flight: its result will be ignored and the
// next Load starts a new one (the program stopped before it reported).
func (m *Model) Abandon() { m.load.Supersede() }
