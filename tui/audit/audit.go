// Package audit is the screen showing the hash-chained audit log, newest
// first, with the chain's verification status.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

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
	Open   key.Binding
	Update key.Binding
	Copy   key.Binding
}

// DefaultKeyMap returns the screen's keys.
func DefaultKeyMap() KeyMap {
	nav := common.DefaultNavKeys()
	nav.PageUp.SetEnabled(false)
	nav.PageDown.SetEnabled(false)
	nav.Top.SetHelp("g", "newest")
	nav.Bottom.SetHelp("G", "oldest")
	return KeyMap{
		NavKeys: nav, Open: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "whole event")),
		Update: key.NewBinding(key.WithKeys("u"), key.WithHelp("u", "update detail")), Copy: common.CopyKey(),
	}
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
	m.visible = m.visible[:0:0]
	for _, i := range common.FuzzyRank(m.filter.Value(), len(m.events), func(i int) string {
		e := m.events[i]
		return fmt.Sprint(e.Seq, " ", e.Actor, " ", e.Action, " ", e.Subject, " ", e.Environment, " ", e.ChangeNumber, " ", e.Result)
	}) {
		m.visible = append(m.visible, m.events[i])
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
		sel := m.cursor < len(m.visible)
		switch to, ok := m.keys.Move(msg, m.cursor, len(m.visible), 0); {
		case ok:
			m.cursor = to
		case sel && key.Matches(msg, m.keys.Open):
			return m, common.ShowRecord(Record(m.visible[m.cursor]))
		case sel && key.Matches(msg, m.keys.Update) && m.visible[m.cursor].UpdateID != "":
			return m, common.Navigate(common.PageDetail, m.visible[m.cursor].UpdateID)
		case sel && key.Matches(msg, m.keys.Copy):
			e := m.visible[m.cursor]
			return m, common.Copy(common.Or(e.ChangeNumber, common.Or(e.UpdateID, common.Or(e.Subject, fmt.Sprint(e.Seq)))))
		}
		m.offset = common.Window(m.offset, m.cursor, m.listHeight(), len(m.visible))
	}
	return m, nil
}

func (m Model) listHeight() int { return max(m.common.Height-4, 1) }

var columns = []common.Column{
	{Title: "SEQ", Keep: 9},
	{Title: "TIME (UTC)", Keep: 5},
	{Title: "ACTOR", Keep: 2, Min: 5},
	{Title: "ACTION", Keep: 8},
	{Title: "SUBJECT", Keep: 6},
	{Title: "CHANGE", Keep: 7},
	{Title: "RESULT", Grow: true, Min: 6},
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
	off := common.Window(m.offset, m.cursor, m.listHeight(), len(m.visible))
	var shown [][]string
	for i := off; i < len(m.visible) && i < off+m.listHeight(); i++ {
		e := m.visible[i]
		res := e.Result
		switch res {
		case "ok":
			res = s.Status.OK.Render(res)
		case "failed", "rolled_back", "blocked":
			res = s.Status.Bad.Render(res)
		}
		shown = append(shown, []string{
			fmt.Sprint(e.Seq), e.Time.UTC().Format("01-02 15:04"), e.Actor, e.Action,
			common.Or(e.Subject, e.Environment), e.ChangeNumber, res,
		})
	}
	cols := common.Fitted(columns, shown, w)
	lines := []string{common.Truncate(status, w), s.Table.Header.Render(common.Header(cols))}
	lines = append(lines, m.common.Rows(off, m.cursor, len(m.visible), m.listHeight(), func(i int) string {
		return common.Row(cols, shown[i-off])
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
	return []key.Binding{m.keys.Open, m.keys.Update, m.filter.Keys.Start, m.keys.Copy}
}

// FullHelp implements help.KeyMap.
func (m Model) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{m.keys.Up, m.keys.Down, m.keys.Top, m.keys.Bottom, m.keys.Open, m.keys.Update, m.keys.Copy},
		{m.filter.Keys.Start, m.filter.Keys.Clear},
	}
}

// Record is an audit event in full, for the record page.
func Record(e ops.Event) common.Record {
	f := []common.RecordField{
		{Label: "seq", Value: fmt.Sprint(e.Seq)},
		{Label: "time", Value: e.Time.UTC().Format(time.RFC3339)},
		{Label: "actor", Value: e.Actor},
		{Label: "action", Value: e.Action},
		{Label: "subject", Value: e.Subject},
		{Label: "environment", Value: e.Environment},
		{Label: "update", Value: e.UpdateID},
		{Label: "change", Value: e.ChangeNumber},
		{Label: "result", Value: e.Result},
	}
	keys := make([]string, 0, len(e.Detail))
	for k := range e.Detail {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := fmt.Sprint(e.Detail[k])
		if b, err := json.Marshal(e.Detail[k]); err == nil && !strings.HasPrefix(string(b), "\"") {
			v = string(b)
		}
		f = append(f, common.RecordField{Label: k, Value: v})
	}
	f = append(f, common.RecordField{Label: "hash", Value: e.Hash}, common.RecordField{Label: "prev hash", Value: e.PrevHash})
	return common.Record{Title: fmt.Sprintf("Audit #%d %s", e.Seq, e.Action), ID: fmt.Sprint(e.Seq), Fields: f}
}

// FilterValue is the filter text; esc clears it before going back.
func (m *Model) FilterValue() string { return m.filter.Value() }

// Abandon forgets the load in flight: its result will be ignored and the
// next Load starts a new one (the program stopped before it reported).
func (m *Model) Abandon() { m.load.Supersede() }
