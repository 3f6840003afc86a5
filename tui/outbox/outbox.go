// Package outbox is the connection screen: whether ServiceNow answers, when
// the mirror last synced, and the outbox of writes waiting for ServiceNow
// (depth, failures, last errors). In offline mode it says so plainly:
// reads come from the mirror, writes wait here, nothing unapproved runs.
package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/actions"
	"github.com/daytwo/daytwo/tui/common"
)

// Source is what the screen reads; *ops.Service implements it.
type Source interface {
	Outbox(ctx context.Context, f ops.OutboxFilter) ([]ops.OutboxItem, error)
	actions.Discarder
}

// KeyMap is the screen's keys.
type KeyMap struct {
	common.NavKeys
	Ping    key.Binding
	Retry   key.Binding
	Discard key.Binding
	All     key.Binding
	Open    key.Binding
	Copy    key.Binding
}

// DefaultKeyMap returns the screen's keys.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		NavKeys: common.UpDownOnly(),
		Ping:    key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "ping ServiceNow")),
		Retry:   key.NewBinding(key.WithKeys("T"), key.WithHelp("T", "retry failed ⚠")),
		// Discard gives the selected write up so the ones behind it go on.
		Discard: key.NewBinding(key.WithKeys("D"), key.WithHelp("D", "discard ⚠")),
		All:     key.NewBinding(key.WithKeys("d"), key.WithHelp("d", "show delivered")),
		Open:    key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "whole item")),
		Copy:    common.CopyKey(),
	}
}

type loadedMsg struct {
	gen   int
	items []ops.OutboxItem
	err   error
}

func (loadedMsg) Target() common.Page { return common.PageOutbox }

// Model is the outbox screen.
type Model struct {
	common    common.Common
	src       Source
	acts      actions.Service
	keys      KeyMap
	conn      ops.ConnectionStatus
	connKnown bool
	connErr   error
	items     []ops.OutboxItem
	delivered bool
	cursor    int
	load      common.Loader
	loaded    bool
	err       error
}

// New builds the screen.
func New(c common.Common, src Source, acts actions.Service) Model {
	m := Model{common: c, src: src, acts: acts, keys: DefaultKeyMap()}
	m.updateKeys()
	return m
}

// Init does nothing: the root loads the screen when shown.
func (m Model) Init() tea.Cmd { return nil }

// Load re-reads the outbox.
func (m *Model) Load() tea.Cmd {
	src := m.src
	f := ops.OutboxFilter{States: []ops.OutboxState{ops.OutboxPending, ops.OutboxFailed}, Limit: 500}
	if m.delivered {
		f.States = append(f.States, ops.OutboxDelivered, ops.OutboxDiscarded, ops.OutboxSuperseded)
	}
	return m.load.Load(m.common, func(ctx context.Context, gen int) tea.Msg {
		items, err := src.Outbox(ctx, f)
		return loadedMsg{gen: gen, items: items, err: err}
	})
}

// SetSize sets the screen's size.
func (m *Model) SetSize(w, h int) { m.common.Width, m.common.Height = w, h }

// Title names the screen.
func (m *Model) Title() string { return "Outbox" }

// InputFocused reports false: the screen has no text input.
func (m *Model) InputFocused() bool { return false }

func (m *Model) updateKeys() {
	m.keys.Retry.SetEnabled(!m.common.ReadOnly && m.conn.Failed > 0)
	m.keys.Ping.SetEnabled(m.conn.Configured || !m.connKnown)
	m.keys.Open.SetEnabled(m.cursor < len(m.items))
	m.keys.Copy.SetEnabled(m.cursor < len(m.items))
	m.keys.Discard.SetEnabled(!m.common.ReadOnly && m.cursor < len(m.items) &&
		(m.items[m.cursor].State == ops.OutboxFailed || m.items[m.cursor].State == ops.OutboxPending))
}

// Update handles messages.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case common.RefreshMsg:
		return m, m.Load()
	case common.ConnectionMsg:
		// The root's connection monitor checked; the keys follow at the
		// next load or key.
		m.conn, m.connErr, m.connKnown = msg.Status, msg.Err, msg.Err == nil
		return m, nil
	case loadedMsg:
		if !m.load.Done(msg.gen) {
			return m, nil
		}
		m.err = msg.err
		if msg.err == nil {
			m.loaded = true
			m.items = msg.items
			m.cursor = common.Clamp(m.cursor, 0, len(m.items)-1)
		}
	case tea.KeyMsg:
		if to, ok := m.keys.Move(msg, m.cursor, len(m.items), 0); ok {
			m.cursor = to
			break
		}
		switch {
		case key.Matches(msg, m.keys.All):
			m.delivered = !m.delivered
			m.load.Supersede()
			return m, m.Load()
		case key.Matches(msg, m.keys.Ping):
			return m, func() tea.Msg { return common.PingMsg{} }
		case key.Matches(msg, m.keys.Retry):
			id := int64(0)
			if m.cursor < len(m.items) && m.items[m.cursor].State == ops.OutboxFailed {
				id = m.items[m.cursor].ID
			}
			a := actions.RetryOutbox(m.acts, id)
			return m, common.Act(a)
		case key.Matches(msg, m.keys.Discard):
			a := actions.DiscardOutbox(m.src, m.items[m.cursor])
			return m, common.Act(a)
		case key.Matches(msg, m.keys.Open) && m.cursor < len(m.items):
			return m, common.ShowRecord(Record(m.items[m.cursor]))
		case key.Matches(msg, m.keys.Copy) && m.cursor < len(m.items):
			return m, common.Copy(fmt.Sprint(m.items[m.cursor].ID))
		}
	}
	m.updateKeys()
	return m, nil
}

// View renders the screen.
func (m Model) View() string {
	s := m.common.Styles
	w, h := m.common.Width, m.common.Height
	c := m.conn
	kv := func(k, v string) string {
		return common.Truncate(s.Section.Label.Render(fmt.Sprintf("%-12s", k))+" "+v, w)
	}
	var lines []string
	switch {
	case !m.connKnown && m.connErr != nil:
		lines = append(lines, s.Status.Bad.Render("cannot read the connection status: "+m.connErr.Error()))
	case !m.connKnown:
		lines = append(lines, s.Table.Empty.Render("checking ServiceNow…"))
	case c.Offline():
		lines = append(lines, s.App.Offline.Render("OFFLINE: reads come from the local mirror; writes wait in the outbox"))
	case c.Checked && c.Reachable:
		lines = append(lines, s.App.Online.Render("ONLINE: ServiceNow answers"))
	default:
		lines = append(lines, s.Status.Muted.Render("not checked yet"))
	}
	reach := "not checked"
	switch {
	case !c.Configured:
		reach = s.Status.Bad.Render("not configured")
	case c.Checked && c.Reachable:
		reach = s.Status.OK.Render("reachable")
	case c.Checked:
		reach = s.Status.Bad.Render("unreachable")
	}
	lines = append(lines,
		kv("instance", common.Or(c.Instance, "—")),
		kv("servicenow", reach),
	)
	if c.Error != "" && (!c.Reachable || !c.Configured) {
		// the whole error, wrapped under itself (at most three lines)
		for i, l := range common.Wrap(c.Error, max(w-13, 20)) {
			if i == 3 {
				break
			}
			k := ""
			if i == 0 {
				k = "error"
			}
			lines = append(lines, kv(k, s.Status.Bad.Render(l)))
		}
	}
	lines = append(lines,
		kv("last sync", common.Timestamp(c.LastSync)+" (newest mirrored change)"),
		kv("outbox", fmt.Sprintf("%d pending, %d failed", c.Pending, c.Failed)),
	)
	// The demo's banner, whole: paths and the CLI hint are wrapped, never
	// cut (the alternate screen hides what the demo printed).
	first := true
	for _, l := range strings.Split(strings.TrimSpace(m.common.Banner), "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		for _, part := range strings.Split(ansi.Wrap(l, max(w-13, 20), ""), "\n") {
			k := ""
			if first {
				k, first = "demo", false
			}
			lines = append(lines, kv(k, part))
		}
	}
	lines = append(lines, "")
	top := len(lines) + 1
	// The selected item's whole error and claim, under the list: a
	// refusal says what to do, and that does not fit in a column.
	var detail []string
	if m.cursor < len(m.items) {
		it := m.items[m.cursor]
		if it.ClaimedBy != "" && it.ClaimHolderGone() {
			detail = append(detail, s.Status.Bad.Render(fmt.Sprintf("#%d claimed by %s: process gone, the next delivery takes it", it.ID, it.ClaimHolder())))
		} else if it.ClaimedBy != "" && it.State == ops.OutboxPending {
			detail = append(detail, s.Status.Muted.Render(fmt.Sprintf("#%d being sent by %s", it.ID, it.ClaimHolder())))
		}
		if it.State == ops.OutboxFailed && it.LastError != "" {
			for _, l := range common.Wrap(fmt.Sprintf("#%d refused: %s", it.ID, it.LastError), max(w, 20)) {
				detail = append(detail, s.Status.Bad.Render(l))
			}
		}
		detail = detail[:min(len(detail), max(h-top-2, 0))]
	}
	listH := max(h-top-len(detail), 1)
	if m.loaded && len(m.items) == 0 {
		listH = 0
	}
	off := common.Window(0, m.cursor, listH, len(m.items))
	var shown [][]string
	for i := off; i < len(m.items) && i < off+listH; i++ {
		it := m.items[i]
		st := string(it.State)
		switch it.State {
		case ops.OutboxFailed:
			st = s.Status.Bad.Render(st)
		case ops.OutboxDiscarded, ops.OutboxSuperseded:
			st = s.Status.Muted.Render(st)
		case ops.OutboxPending:
			st = s.Status.Pending.Render(st)
		case ops.OutboxDelivered:
			st = s.Status.OK.Render(st)
		}
		shown = append(shown, []string{fmt.Sprint(it.ID), string(it.Kind), it.Key, st, fmt.Sprint(it.Attempts), oneLine(it.LastError)})
	}
	cols := common.Fitted([]common.Column{
		{Title: "ID", Keep: 9},
		{Title: "KIND", Keep: 5, Min: 8},
		{Title: "KEY", Keep: 8},
		{Title: "STATE", Keep: 6},
		{Title: "TRIES", Keep: 3},
		{Title: "LAST ERROR", Grow: true, Min: 10},
	}, shown, w)
	lines = append(lines, s.Table.Header.Render(common.Header(cols)))
	if m.loaded && len(m.items) == 0 {
		lines = append(lines, s.Table.Empty.Render("the outbox is empty: everything reached ServiceNow"))
	}
	lines = append(lines, m.common.Rows(off, m.cursor, len(m.items), listH, func(i int) string {
		return common.Row(cols, shown[i-off])
	})...)
	if len(detail) > 0 {
		for len(lines) < h-len(detail) {
			lines = append(lines, "")
		}
		lines = append(lines, detail...)
	}
	return common.Fit(strings.Join(lines, "\n"), w, h)
}

// ShortHelp implements help.KeyMap.
func (m Model) ShortHelp() []key.Binding {
	return []key.Binding{m.keys.Open, m.keys.Ping, m.keys.Retry, m.keys.Discard, m.keys.All, m.keys.Copy}
}

// FullHelp implements help.KeyMap.
func (m Model) FullHelp() [][]key.Binding {
	return [][]key.Binding{{m.keys.Up, m.keys.Down, m.keys.All, m.keys.Open, m.keys.Copy}, {m.keys.Ping, m.keys.Retry, m.keys.Discard}}
}

// indent pretty-prints JSON (as it is when it is not JSON).
func indent(raw []byte) string {
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		return string(raw)
	}
	return b.String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Record is an outbox item in full, for the record page.
func Record(it ops.OutboxItem) common.Record {
	f := []common.RecordField{
		{Label: "id", Value: fmt.Sprint(it.ID)},
		{Label: "kind", Value: string(it.Kind)},
		{Label: "key", Value: it.Key},
		{Label: "state", Value: string(it.State)},
		{Label: "attempts", Value: fmt.Sprint(it.Attempts)},
		{Label: "created", Value: common.Timestamp(it.CreatedAt)},
	}
	if !it.NextAttempt.IsZero() && it.State != ops.OutboxDelivered {
		f = append(f, common.RecordField{Label: "next try", Value: common.Timestamp(it.NextAttempt)})
	}
	if !it.DeliveredAt.IsZero() {
		f = append(f, common.RecordField{Label: "delivered", Value: common.Timestamp(it.DeliveredAt)})
	}
	if it.ClaimedBy != "" {
		f = append(f, common.RecordField{Label: "claimed by", Value: it.ClaimedBy + " until " + common.Timestamp(it.ClaimedUntil)})
	}
	f = append(f, common.RecordField{Label: "last error", Value: it.LastError},
		common.RecordField{Label: "payload", Value: indent(it.Payload)})
	if len(it.Result) > 0 {
		f = append(f, common.RecordField{Label: "result", Value: indent(it.Result)})
	}
	return common.Record{Title: fmt.Sprintf("Outbox #%d", it.ID), ID: fmt.Sprint(it.ID), Fields: f}
}

// Abandon forgets the load in flight: its result will be ignored and the
// next Load starts a new one (the program stopped before it reported).
func (m *Model) Abandon() { m.load.Supersede() }
