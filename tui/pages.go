package tui

import (
	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/tui/alerts"
	"github.com/daytwo/daytwo/tui/audit"
	"github.com/daytwo/daytwo/tui/changes"
	"github.com/daytwo/daytwo/tui/common"
	"github.com/daytwo/daytwo/tui/detail"
	"github.com/daytwo/daytwo/tui/environments"
	"github.com/daytwo/daytwo/tui/matrix"
	"github.com/daytwo/daytwo/tui/monitor"
	"github.com/daytwo/daytwo/tui/outbox"
	"github.com/daytwo/daytwo/tui/record"
	"github.com/daytwo/daytwo/tui/updates"
)

// pages are the console's screens, one per common.Page: the table the
// root routes to (soft-serve's pages).
type pages struct {
	matrix  matrix.Model
	envs    environments.Model
	updates updates.Model
	changes changes.Model
	detail  detail.Model
	monitor monitor.Model
	audit   audit.Model
	outbox  outbox.Model
	record  record.Model
	alerts  alerts.Model
}

var allPages = []common.Page{
	common.PageMatrix, common.PageEnvironments, common.PageUpdates, common.PageChanges, common.PageDetail,
	common.PageMonitor, common.PageAudit, common.PageOutbox, common.PageRecord, common.PageAlerts,
}

// page returns the component for p.
func (ps *pages) page(p common.Page) common.Component {
	switch p {
	case common.PageMatrix:
		return &ps.matrix
	case common.PageUpdates:
		return &ps.updates
	case common.PageChanges:
		return &ps.changes
	case common.PageDetail:
		return &ps.detail
	case common.PageMonitor:
		return &ps.monitor
	case common.PageAudit:
		return &ps.audit
	case common.PageOutbox:
		return &ps.outbox
	case common.PageRecord:
		return &ps.record
	case common.PageAlerts:
		return &ps.alerts
	default:
		return &ps.envs
	}
}

// updatePage hands msg to one screen.
func (ps *pages) updatePage(p common.Page, msg tea.Msg) tea.Cmd {
	var cmd tea.Cmd
	switch p {
	case common.PageMatrix:
		ps.matrix, cmd = ps.matrix.Update(msg)
	case common.PageEnvironments:
		ps.envs, cmd = ps.envs.Update(msg)
	case common.PageUpdates:
		ps.updates, cmd = ps.updates.Update(msg)
	case common.PageChanges:
		ps.changes, cmd = ps.changes.Update(msg)
	case common.PageDetail:
		ps.detail, cmd = ps.detail.Update(msg)
	case common.PageMonitor:
		ps.monitor, cmd = ps.monitor.Update(msg)
	case common.PageAudit:
		ps.audit, cmd = ps.audit.Update(msg)
	case common.PageOutbox:
		ps.outbox, cmd = ps.outbox.Update(msg)
	case common.PageRecord:
		ps.record, cmd = ps.record.Update(msg)
	case common.PageAlerts:
		ps.alerts, cmd = ps.alerts.Update(msg)
	}
	return cmd
}

// reload asks one screen to re-read the store.
func (ps *pages) reload(p common.Page) tea.Cmd { return ps.updatePage(p, common.RefreshMsg{}) }

// open loads a screen for a navigation: each screen takes its argument
// its own way.
func (ps *pages) open(msg common.NavigateMsg) tea.Cmd {
	switch msg.Page {
	case common.PageMatrix:
		if !ps.matrix.SelectWhenLoaded(msg.Arg) {
			return tea.Batch(ps.matrix.Load(), common.Flash(common.LevelWarn, "no service matches "+msg.Arg))
		}
		return ps.matrix.Load()
	case common.PageEnvironments:
		if !ps.envs.SelectWhenLoaded(msg.Arg) {
			return tea.Batch(ps.envs.Load(), common.Flash(common.LevelWarn, "no environment matches "+msg.Arg))
		}
		return ps.envs.Load()
	case common.PageUpdates:
		ps.updates.SelectWhenLoaded(msg.Select)
		return ps.updates.SetEnvironment(msg.Arg)
	case common.PageRecord:
		if msg.Record != nil {
			ps.record.Show(*msg.Record)
		}
		return nil
	case common.PageDetail:
		return ps.detail.Show(msg.Arg)
	case common.PageAlerts:
		return ps.alerts.SetEnvironment(msg.Arg)
	case common.PageMonitor:
		return ps.monitor.Show(msg.Arg)
	default:
		return ps.reload(msg.Page)
	}
}

func (ps *pages) setSize(w, h int) {
	for _, p := range allPages {
		ps.page(p).SetSize(w, h)
	}
}

// abandon forgets every screen's load in flight (the program stopped
// before they reported).
func (ps *pages) abandon() {
	ps.matrix.Abandon()
	ps.envs.Abandon()
	ps.updates.Abandon()
	ps.changes.Abandon()
	ps.detail.Abandon()
	ps.monitor.Abandon()
	ps.audit.Abandon()
	ps.outbox.Abandon()
	ps.alerts.Abandon()
}

// show makes p the active screen and loads it.
func (m *Model) show(msg common.NavigateMsg) tea.Cmd {
	switch {
	case msg.Page == common.PageMatrix:
		m.stack = m.stack[:1]
	case m.active() == msg.Page:
		// same screen, new argument: no new breadcrumb
	default:
		for i, p := range m.stack { // going back to a screen on the stack pops to it
			if p == msg.Page {
				m.stack = m.stack[:i]
				break
			}
		}
		m.stack = append(m.stack, msg.Page)
	}
	m.showHelp = false
	return m.open(msg)
}

func (m *Model) back() tea.Cmd {
	if len(m.stack) == 1 {
		return nil
	}
	m.stack = m.stack[:len(m.stack)-1]
	return m.reload(m.active())
}

// jump opens a top-level screen from the home screen.
func (m *Model) jump(p common.Page) tea.Cmd {
	m.stack = m.stack[:1]
	return m.show(common.NavigateMsg{Page: p})
}
