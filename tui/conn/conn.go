// Package conn is the console's connection monitor: it reads the
// connection status (outbox depth, last sync) on every refresh, pings
// ServiceNow every few refreshes, and renders the header's badges and the
// offline banner. The outbox screen gets each result as a
// common.ConnectionMsg.
package conn

import (
	"context"
	"fmt"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/common"
)

// Source is what the monitor reads; *ops.Service implements it.
type Source interface {
	Connection(ctx context.Context, instance string, ping bool) (ops.ConnectionStatus, error)
}

// ResultMsg carries one connection check.
type ResultMsg struct {
	gen    int
	status ops.ConnectionStatus
	err    error
}

// Model is the connection monitor.
type Model struct {
	common   common.Common
	src      Source
	instance string
	// pingEvery is how many refreshes pass between pings (≤ 0: never).
	pingEvery int
	ticks     int
	status    ops.ConnectionStatus
	known     bool
	gen       int
	busy      bool
}

// New builds the monitor for instance.
func New(c common.Common, src Source, instance string, pingEvery int) Model {
	return Model{common: c, src: src, instance: instance, pingEvery: pingEvery}
}

// Check reads the status (and, with ping, asks ServiceNow, bounded by the
// read timeout) unless a check is in flight.
func (m *Model) Check(ping bool) tea.Cmd {
	if m.busy {
		return nil
	}
	m.busy = true
	m.gen++
	c, src, instance, gen := m.common, m.src, m.instance, m.gen
	return func() tea.Msg {
		ctx, cancel := c.Context()
		defer cancel()
		cs, err := src.Connection(ctx, instance, ping)
		return ResultMsg{gen: gen, status: cs, err: err}
	}
}

// First is the first check: a ping when pings are on.
func (m *Model) First() tea.Cmd { return m.Check(m.pingEvery > 0) }

// Refresh is the check of one refresh tick: a ping every pingEvery ticks.
func (m *Model) Refresh() tea.Cmd {
	m.ticks++
	return m.Check(m.pingEvery > 0 && m.ticks%m.pingEvery == 0)
}

// Abandon forgets a check in flight that will never report (the program
// stopped): the next one may start.
func (m *Model) Abandon() { m.busy = false }

// Update takes a check's result (passing it on to the outbox screen) and
// common.PingMsg (check now, with a ping).
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case ResultMsg:
		if msg.gen != m.gen {
			return m, nil
		}
		m.busy = false
		if msg.err == nil {
			st := msg.status
			// A check without ping keeps the last ping's verdict.
			if !st.Checked && m.status.Checked {
				st.Checked, st.Reachable = true, m.status.Reachable
				if !m.status.Reachable {
					st.Error = m.status.Error
				}
			}
			m.status, m.known = st, true
		}
		out := common.ConnectionMsg{Status: m.status, Err: msg.err}
		return m, func() tea.Msg { return out }
	case common.PingMsg:
		m.busy = false
		return m, m.Check(true)
	}
	return m, nil
}

// Offline reports whether the offline banner shows.
func (m Model) Offline() bool { return m.known && m.status.Offline() }

// Badges are the header's connection badges: online or offline once
// known, and the outbox depth when writes wait.
func (m Model) Badges() []string {
	s := m.common.Styles
	var out []string
	switch {
	case !m.known:
	case m.status.Offline():
		out = append(out, s.App.Offline.Render("● offline"))
	case m.status.Checked:
		out = append(out, s.App.Online.Render("● online"))
	}
	if n := m.status.Pending + m.status.Failed; n > 0 {
		out = append(out, s.Status.Warn.Render(fmt.Sprintf("outbox %d", n)))
	}
	return out
}

// SetSize sets the banner's width.
func (m *Model) SetSize(w, h int) { m.common.Width, m.common.Height = w, h }

// View is the offline banner, as wide as the terminal ("" while online).
func (m Model) View() string {
	if !m.Offline() {
		return ""
	}
	why := "ServiceNow unreachable"
	if !m.status.Configured {
		why = "no ServiceNow instance configured"
	}
	return common.PadRight(m.common.Styles.App.Offline.Render(fmt.Sprintf(
		"OFFLINE · %s: reading the local mirror, %d write(s) wait in the outbox; nothing unapproved runs", why, m.status.Pending+m.status.Failed)), m.common.Width)
}
