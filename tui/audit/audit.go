// Package audit is the screen showing the hash-chained audit log, newest
// first, with the chain's verification status.
package audit

import (
	"context"
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/common"
)

// Source is what the screen reads; *ops.Service implements it.
type Source interface {
	AuditEvents(ctx context.Context, f ops.EventFilter) ([]ops.Event, error)
	VerifyAudit(ctx context.Context) (ops.AuditVerification, error)
}

// limit is how many of the newest events the screen holds.
const limit = 2000

// KeyMap is the screen's keys.
type KeyMap struct {
	common.NavKeys
	Open key.Binding
}

// DefaultKeyMap returns the screen's keys.
func DefaultKeyMap() KeyMap {
	nav := common.DefaultNavKeys()
	nav.PageUp.SetEnabled(false)
	nav.PageDown.SetEnabled(false)
	nav.Top.SetHelp("g", "newest")
	nav.Bottom.SetHelp("G", "oldest")
	return KeyMap{NavKeys: nav, Open: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "update detail"))}
}

type loadedMsg struct {
	gen    int
	events []ops.Event
	verify ops.AuditVerification
	err    error
}

func (loadedMsg) Target() common.Page { return common.PageAudit }

// Model is the audit screen.
type Model struct {
	common  common.Common
	src     Source
	keys    KeyMap
	filter  common.Filter
	events  []ops.Event // newest first
	visible []ops.Event
	verify  ops.AuditVerification
	cursor  int
	offset  int
	load    common.Loader
	loaded  bool
	err     error
}

// New builds the screen.
func New(c common.Common, src Source) Model {
	return Model{common: c, src: src, keys: DefaultKeyMap(), filter: common.NewFilter(c)}
}

// Init does nothing: the root loads the screen when shown.
func (m Model) Init() tea.Cmd { return nil }

// Load re-reads the events and re-verifies the chain.
func (m *Model) Load() tea.Cmd {
	src := m.src
	return m.load.Load(m.common, func(ctx context.Context, gen int) tea.Msg {
		evs, err := src.AuditEvents(ctx, ops.EventFilter{Limit: limit})
		if err != nil {
			return loadedMsg{gen: gen, err: err}
		}
		v, err := src.VerifyAudit(ctx)
		return loadedMsg{gen: gen, events: evs, verify: v, err: err}
	})
}

// SetSize sets the screen's size.
func (m *Model) SetSize(w, h int) { m.common.Width, m.common.Height = w, h }

// Title names the screen.
func (m *Model) Title() string { return "Audit" }

// InputFocused reports whether the filter is being typed.
func (m *Model) InputFocused() bool { return m.filter.Active() }

func (m *Model) applyFilter() {
	q := m.filter.Value()
	m.visible = m.visible[:0:0]
	for _, e := range m.events {
		if common.FuzzyMatch(q, fmt.Sprint(e.Seq, " ", e.Actor, " ", e.Action, " ", e.Subject, " ", e.Environment, " ", e.ChangeNumber, " ", e.Result)) {
			m.visible = append(m.visible, e)
		}
	}
	m.cursor = common.Clamp(m.cursor, 0, len(m.visible)-1)
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
			m.events = make([]ops.Event, len(msg.events))
			for i, e := range msg.events {
				m.events[len(msg.events)-1-i] = e
			}
			m.verify = msg.verify
			m.applyFilter()
		}
		return m, nil
	case tea.KeyMsg:
		var handled, changed bool
		var cmd tea.Cmd
		m.filter, handled, changed, cmd = m.filter.Update(msg)
		if changed {
			m.applyFilter()
		}
		if handled {
			return m, cmd
		}
		if to, ok := m.keys.Move(msg, m.cursor, len(m.visible), 0); ok {
			m.cursor = to
		} else if key.Matches(msg, m.keys.Open) {
			if m.cursor < len(m.visible) && m.visible[m.cursor].UpdateID != "" {
				return m, common.Navigate(common.PageDetail, m.visible[m.cursor].UpdateID)
			}
		}
		m.offset = common.Window(m.offset, m.cursor, m.listHeight(), len(m.visible))
	}
	return m, nil
}

func (m Model) listHeight() int { return max(m.common.Height-4, 1) }

var columns = []common.Column{
	{Title: "SEQ", Width: 5},
	{Title: "TIME (UTC)", Width: 11},
	{Title: "ACTOR", Width: 8},
	{Title: "ACTION", Width: 17},
	{Title: "SUBJECT", Width: 10},
	{Title: "CHANGE", Width: 10},
	{Title: "RESULT"},
}

// View renders the screen.
func (m Model) View() string {
	s := m.common.Styles
	w, h := m.common.Width, m.common.Height
	var status string
	switch {
	case m.err != nil:
		status = s.Status.Bad.Render("cannot read the audit log: " + m.err.Error())
	case !m.loaded:
		status = s.Table.Empty.Render("verifying the chain…")
	case m.verify.OK:
		head := m.verify.HeadHash
		if len(head) > 12 {
			head = head[:12]
		}
		status = s.Status.OK.Render(fmt.Sprintf("✓ chain verified: %d events, head %s", m.verify.Events, common.Or(head, "—")))
	default:
		status = s.Status.Bad.Render(fmt.Sprintf("✗ CHAIN BROKEN at seq %d: %s", m.verify.BadSeq, m.verify.Problem))
	}
	cols := common.Layout(columns, w)
	lines := []string{common.Truncate(status, w), s.Table.Header.Render(common.Header(cols))}
	off := common.Window(m.offset, m.cursor, m.listHeight(), len(m.visible))
	lines = append(lines, m.common.Rows(off, m.cursor, len(m.visible), m.listHeight(), func(i int) string {
		e := m.visible[i]
		res := e.Result
		switch res {
		case "ok":
			res = s.Status.OK.Render(res)
		case "failed", "rolled_back", "blocked":
			res = s.Status.Bad.Render(res)
		}
		return common.Row(cols, []string{fmt.Sprint(e.Seq), e.Time.UTC().Format("01-02 15:04"), e.Actor, e.Action,
			common.Or(e.Subject, e.Environment), e.ChangeNumber, res})
	})...)
	if m.loaded && len(m.visible) == 0 {
		lines = append(lines, s.Table.Empty.Render("no events"))
	}
	for len(lines) < h-1 {
		lines = append(lines, "")
	}
	lines = append(lines, m.filter.View())
	return common.Fit(strings.Join(lines, "\n"), w, h)
}

// ShortHelp implements help.KeyMap.
func (m Model) ShortHelp() []key.Binding {
	if m.filter.Active() {
		return []key.Binding{m.filter.Keys.Accept, m.filter.Keys.Clear}
	}
	return []key.Binding{m.keys.Down, m.keys.Up, m.keys.Open, m.filter.Keys.Start}
}

// FullHelp implements help.KeyMap.
func (m Model) FullHelp() [][]key.Binding {
	return [][]key.Binding{{m.keys.Up, m.keys.Down, m.keys.Top, m.keys.Bottom, m.keys.Open}, {m.filter.Keys.Start, m.filter.Keys.Clear}}
}

// FilterValue is the filter text; esc clears it before going back.
func (m *Model) FilterValue() string { return m.filter.Value() }
