// Package alerts is the screen listing the alerts Alertmanager sent
// (POST /alertmanager, recorded in the audit log): firing ones first, then
// recently resolved, each with its (service, environment), since when it
// fires, its summary and the incident it opened
// (alertmanager.open_incidents); the selected one in full under the list.
package alerts

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/common"
)

// Source is what the screen reads; *ops.Service implements it.
type Source interface {
	Alerts(ctx context.Context, prev ops.AlertBoard) (ops.AlertBoard, error)
}

var _ Source = (*ops.Service)(nil)

// KeyMap is the screen's keys.
type KeyMap struct {
	common.NavKeys
	Open    key.Binding
	Cell    key.Binding
	AllEnvs key.Binding
	Copy    key.Binding
}

// DefaultKeyMap returns the screen's keys.
func DefaultKeyMap() KeyMap {
	nav := common.DefaultNavKeys()
	nav.PageUp.SetEnabled(false)
	nav.PageDown.SetEnabled(false)
	return KeyMap{
		NavKeys: nav,
		Open:    key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "whole alert")),
		Cell:    key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "its matrix cell")),
		AllEnvs: key.NewBinding(key.WithKeys("e"), key.WithHelp("e", "all environments")),
		Copy:    common.CopyKey(),
	}
}

// loadedMsg carries the board Load read.
type loadedMsg struct {
	gen   int
	board ops.AlertBoard
	err   error
}

// Target implements common.Addressed.
func (loadedMsg) Target() common.Page { return common.PageAlerts }

// Model is the alerts screen.
type Model struct {
	common  common.Common
	src     Source
	keys    KeyMap
	board   ops.AlertBoard
	env     string // "" for every environment
	visible []ops.AlertStatus
	cursor  int
	offset  int
	load    common.Loader
	loaded  bool
	err     error
}

// New builds the screen.
func New(c common.Common, src Source) Model {
	m := Model{common: c, src: src, keys: DefaultKeyMap()}
	m.updateKeys()
	return m
}

// Init does nothing: the root loads the screen when shown.
func (m Model) Init() tea.Cmd { return nil }

// Load reads what was recorded since the last load.
func (m *Model) Load() tea.Cmd {
	src, prev := m.src, m.board
	return m.load.Load(m.common, func(ctx context.Context, gen int) tea.Msg {
		b, err := src.Alerts(ctx, prev)
		return loadedMsg{gen: gen, board: b, err: err}
	})
}

// SetEnvironment shows one (service, environment) pair's alerts ("" for
// all) and reloads.
func (m *Model) SetEnvironment(env string) tea.Cmd {
	if env != m.env {
		m.env = env
		m.cursor, m.offset = 0, 0
		m.apply()
	}
	return m.Load()
}

// SetSize sets the screen's size.
func (m *Model) SetSize(w, h int) { m.common.Width, m.common.Height = w, h }

// Title names the screen.
func (m *Model) Title() string {
	if m.env != "" {
		return "Alerts: " + m.env
	}
	return "Alerts"
}

// InputFocused reports whether a text input has focus.
func (m *Model) InputFocused() bool { return false }

// Selected is the alert under the cursor.
func (m Model) Selected() (ops.AlertStatus, bool) {
	if m.cursor < 0 || m.cursor >= len(m.visible) {
		return ops.AlertStatus{}, false
	}
	return m.visible[m.cursor], true
}

func (m *Model) apply() {
	sel, had := m.Selected()
	m.visible = m.visible[:0:0]
	for _, a := range m.board.Alerts {
		if m.env == "" || a.Environment == m.env {
			m.visible = append(m.visible, a)
		}
	}
	if had { // keep the cursor on the same alert as rows move
		if i := slices.IndexFunc(m.visible, func(a ops.AlertStatus) bool { return same(a, sel) }); i >= 0 {
			m.cursor = i
		}
	}
	m.cursor = common.Clamp(m.cursor, 0, len(m.visible)-1)
	m.updateKeys()
}

func same(a, b ops.AlertStatus) bool {
	return a.Environment == b.Environment && a.Name == b.Name && a.Fingerprint == b.Fingerprint
}

func (m *Model) updateKeys() {
	_, ok := m.Selected()
	m.keys.Open.SetEnabled(ok)
	m.keys.Cell.SetEnabled(ok)
	m.keys.Copy.SetEnabled(ok)
	m.keys.AllEnvs.SetEnabled(m.env != "")
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
			m.loaded = true
			m.board = msg.board
			m.apply()
		}
		return m, nil
	case tea.KeyMsg:
		a, sel := m.Selected()
		switch to, ok := m.keys.Move(msg, m.cursor, len(m.visible), 0); {
		case ok:
			m.cursor = to
		case sel && key.Matches(msg, m.keys.Open):
			return m, common.ShowRecord(Record(a))
		case sel && key.Matches(msg, m.keys.Cell):
			return m, common.Navigate(common.PageMatrix, a.Environment)
		case key.Matches(msg, m.keys.AllEnvs):
			return m, m.SetEnvironment("")
		case sel && key.Matches(msg, m.keys.Copy):
			if a.Incident != nil && a.Incident.Number != "" {
				return m, common.Copy(a.Incident.Number)
			}
			return m, common.Copy(common.Or(a.Fingerprint, a.Name))
		}
		m.offset = common.Window(m.offset, m.cursor, m.listHeight(), len(m.visible))
		m.updateKeys()
	}
	return m, nil
}

// details is how many lines the selected alert takes under the list at
// most.
const details = 9

func (m Model) listHeight() int {
	return max(min(len(m.visible), m.common.Height-2-min(details, m.common.Height/2)), 1)
}

var columns = []common.Column{
	{Title: "STATE", Keep: 9, Min: 5},
	{Title: "ALERT", Keep: 8, Min: 8},
	{Title: "ENVIRONMENT", Keep: 7, Min: 10},
	{Title: "SINCE (UTC)", Keep: 4, Min: 5},
	{Title: "INCIDENT", Keep: 6, Min: 8},
	{Title: "SUMMARY", Grow: true, Keep: 1, Min: 7},
}

// State renders whether an alert fires (the matrix's mark) or was
// resolved.
func State(s common.Common, a ops.AlertStatus) string {
	if a.Firing() {
		return s.Styles.Badge.Alert.Render("⚑ firing")
	}
	return s.Styles.Status.OK.Render("✓ resolved")
}

func since(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("01-02 15:04")
}

// View renders the screen.
func (m Model) View() string {
	s := m.common.Styles
	w, h := m.common.Width, m.common.Height
	firing := 0
	for _, a := range m.visible {
		if a.Firing() {
			firing++
		}
	}
	var status string
	switch {
	case m.err != nil:
		status = s.Status.Bad.Render("cannot read alerts: " + m.err.Error())
	case !m.loaded:
		status = s.Table.Empty.Render("loading…")
	case firing > 0:
		status = s.Badge.Alert.Render(fmt.Sprintf("⚑ %d firing", firing)) + s.Help.Render(fmt.Sprintf(" · %d resolved · from Alertmanager (POST /alertmanager)", len(m.visible)-firing))
	default:
		status = s.Status.OK.Render("no alert firing") + s.Help.Render(fmt.Sprintf(" · %d resolved · from Alertmanager (POST /alertmanager)", len(m.visible)))
	}
	listH := m.listHeight()
	off := common.Window(m.offset, m.cursor, listH, len(m.visible))
	var shown [][]string
	for i := off; i < len(m.visible) && i < off+listH; i++ {
		a := m.visible[i]
		shown = append(shown, []string{State(m.common, a), a.Name, a.Environment, since(a.StartsAt), common.IncidentText(a), a.Summary()})
	}
	cols := common.Fitted(columns, shown, w)
	lines := []string{common.Truncate(status, w), s.Table.Header.Render(common.Header(cols))}
	lines = append(lines, m.common.Rows(off, m.cursor, len(m.visible), listH, func(i int) string {
		return common.Row(cols, shown[i-off])
	})...)
	if m.loaded && len(m.visible) == 0 {
		what := "no alerts recorded"
		if m.env != "" {
			what += " for " + m.env + " (e: all environments)"
		}
		lines = append(lines, s.Table.Empty.Render(what))
	}
	if a, ok := m.Selected(); ok {
		lines = append(lines, "")
		lines = append(lines, m.detail(a, h-len(lines))...)
	}
	return common.Fit(strings.Join(lines, "\n"), w, h)
}

// detail is the selected alert in up to room lines.
func (m Model) detail(a ops.AlertStatus, room int) []string {
	s := m.common.Styles
	w := m.common.Width
	label := m.common.Fact
	out := []string{common.Truncate(s.Section.Title.Render(a.Name+" on "+a.Environment)+"  "+State(m.common, a), w)}
	when := "since " + common.Timestamp(a.StartsAt)
	if !a.Firing() && !a.EndsAt.IsZero() {
		when += ", resolved " + common.Timestamp(a.EndsAt)
	}
	out = append(out, label("when", when+" · last notified "+common.Timestamp(a.LastSeen)))
	if v := a.Summary(); v != "" {
		out = append(out, label("summary", v))
	}
	if v := a.Annotations["description"]; v != "" && v != a.Summary() {
		out = append(out, label("details", v))
	}
	for i, l := range common.Wrap(common.AlertLabels(a.Labels), max(w-11, 20)) {
		if i == 3 {
			break
		}
		out = append(out, label(map[bool]string{true: "labels"}[i == 0], l))
	}
	inc := "none opened"
	if a.Incident != nil {
		inc = common.IncidentText(a)
		if a.Incident.Error != "" {
			inc += ": " + a.Incident.Error
		}
	} else if a.Firing() {
		inc = "none opened (only on a gated environment outside a run, with alertmanager.open_incidents)"
	}
	out = append(out, label("incident", inc))
	if a.Source != "" {
		out = append(out, label("source", a.Source))
	}
	out = append(out, s.Help.Render(common.Truncate("enter: whole alert · s: its matrix cell", w)))
	return out[:min(len(out), max(room, 0))]
}

// ShortHelp implements help.KeyMap.
func (m Model) ShortHelp() []key.Binding {
	return []key.Binding{m.keys.Open, m.keys.Cell, m.keys.AllEnvs, m.keys.Copy}
}

// FullHelp implements help.KeyMap.
func (m Model) FullHelp() [][]key.Binding {
	return [][]key.Binding{{m.keys.Up, m.keys.Down, m.keys.Top, m.keys.Bottom}, {m.keys.Open, m.keys.Cell, m.keys.AllEnvs, m.keys.Copy}}
}

// Record is an alert in full, for the record page.
func Record(a ops.AlertStatus) common.Record {
	f := []common.RecordField{
		{Label: "alert", Value: a.Name},
		{Label: "state", Value: a.Status},
		{Label: "environment", Value: a.Environment},
		{Label: "service", Value: a.Service},
		{Label: "starts at", Value: common.Timestamp(a.StartsAt)},
		{Label: "ends at", Value: common.Timestamp(a.EndsAt)},
		{Label: "first notified", Value: common.Timestamp(a.FirstSeen)},
		{Label: "last notified", Value: common.Timestamp(a.LastSeen)},
		{Label: "labels", Value: common.AlertLabels(a.Labels)},
	}
	keys := make([]string, 0, len(a.Annotations))
	for k := range a.Annotations {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		f = append(f, common.RecordField{Label: k, Value: a.Annotations[k]})
	}
	f = append(f, common.RecordField{Label: "incident", Value: common.IncidentText(a)},
		common.RecordField{Label: "fingerprint", Value: a.Fingerprint}, common.RecordField{Label: "source", Value: a.Source},
		common.RecordField{Label: "audit seq", Value: fmt.Sprint(a.Seq)})
	id := common.Or(a.Fingerprint, a.Name)
	if a.Incident != nil && a.Incident.Number != "" {
		id = a.Incident.Number
	}
	return common.Record{Title: "Alert " + a.Name + " on " + a.Environment, ID: id, Fields: f}
}

// Abandon forgets the load in flight.
func (m *Model) Abandon() { m.load.Supersede() }
