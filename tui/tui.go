// Package tui is daytwo's operator console, a Bubble Tea v1 program. The
// root Model is a router (soft-serve's shape): it owns the navigation
// stack and breadcrumbs, the global keys and help, and the confirm
// dialog, and routes every other concern to a component with its own
// Update and View: the screens (one sub-package each), the command
// palette, the flash line, the running tasks and the connection monitor.
// A screen's own results are addressed to it (common.Addressed); nothing
// is broadcast. All I/O goes through *ops.Service inside tea.Cmds.
package tui

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/spinner"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/alerts"
	"github.com/daytwo/daytwo/tui/audit"
	"github.com/daytwo/daytwo/tui/changes"
	"github.com/daytwo/daytwo/tui/common"
	"github.com/daytwo/daytwo/tui/confirm"
	"github.com/daytwo/daytwo/tui/conn"
	"github.com/daytwo/daytwo/tui/detail"
	"github.com/daytwo/daytwo/tui/environments"
	"github.com/daytwo/daytwo/tui/flash"
	"github.com/daytwo/daytwo/tui/matrix"
	"github.com/daytwo/daytwo/tui/monitor"
	"github.com/daytwo/daytwo/tui/outbox"
	"github.com/daytwo/daytwo/tui/palette"
	"github.com/daytwo/daytwo/tui/record"
	"github.com/daytwo/daytwo/tui/task"
	"github.com/daytwo/daytwo/tui/updates"
)

type tickMsg struct{}

// Model is the console's root model.
type Model struct {
	common  common.Common // Width and Height are the terminal's
	svc     *ops.Service
	clip    io.Writer
	envList []ops.Environment
	refresh time.Duration
	keys    KeyMap
	help    help.Model
	pages
	stack    []common.Page
	showHelp bool
	dialog   *confirm.Model
	palette  palette.Model
	flash    flash.Model
	tasks    task.Model
	conn     conn.Model
}

// New builds the console. ctx bounds every command it runs; cancel it to
// stop in-flight work (a run in progress is then interrupted and recovered
// by the next engine start).
func New(ctx context.Context, svc *ops.Service, opts Options) *Model {
	opts.defaults()
	c := common.Common{
		Ctx: ctx, Styles: opts.Styles, Logger: opts.Logger, Now: opts.Clock, ReadOnly: opts.ReadOnly,
		Timeout: opts.Timeout, Banner: opts.Banner, Width: 80, Height: 24,
	}
	m := &Model{
		common: c, svc: svc, clip: opts.Clipboard, envList: svc.Environments(), refresh: opts.Refresh, keys: DefaultKeyMap(), help: newHelp(opts.Styles),
		stack:   []common.Page{common.PageMatrix},
		palette: palette.New(c, "command (try: svc checkout, env prod, chg CHG0030012, propose staging 1.4.2)"),
		flash:   flash.New(c, opts.FlashFor), tasks: task.New(c), conn: conn.New(c, svc, opts.Instance, opts.PingEvery),
	}
	m.monitor = monitor.New(c, svc)
	sink := m.monitor.Sink()
	m.matrix = matrix.New(c, svc, svc)
	m.envs = environments.New(c, svc, svc)
	m.updates = updates.New(c, svc, svc, m.envList, sink)
	m.changes = changes.New(c, svc)
	m.detail = detail.New(c, svc, svc, m.envList, sink)
	m.audit = audit.New(c, svc)
	m.outbox = outbox.New(c, svc, svc)
	m.record = record.New(c)
	m.alerts = alerts.New(c, svc)
	m.setSize(80, 24)
	return m
}

// Init starts the refresh loop, the run-event subscription and the first
// loads.
func (m *Model) Init() tea.Cmd {
	return tea.Batch(m.monitor.Init(), m.tick(), m.matrix.Load(), m.monitor.Load(), m.conn.First())
}

func (m *Model) tick() tea.Cmd {
	return tea.Tick(m.refresh, func(time.Time) tea.Msg { return tickMsg{} })
}

func (m *Model) active() common.Page { return m.stack[len(m.stack)-1] }

// setSize lays the screen out once per resize (or banner change) and
// pushes the body size down.
func (m *Model) setSize(w, h int) {
	m.common.Width, m.common.Height = w, h
	m.pages.setSize(w, m.bodyHeight())
	m.conn.SetSize(w, 1)
	if m.dialog != nil {
		m.dialog.SetSize(w, m.bodyHeight())
	}
	m.help.Width = w
}

// bodyHeight is what the header, the offline banner, the status line and
// the help line leave for the active screen.
func (m *Model) bodyHeight() int {
	body := m.common.Height - 3
	if m.conn.Offline() {
		body--
	}
	return max(body, 1)
}

// Update routes messages: the root's own here, each component's to it, a
// screen's (common.Addressed) to that screen alone.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	var cmd tea.Cmd
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.setSize(msg.Width, msg.Height)
	case tickMsg:
		cmds := []tea.Cmd{m.tick(), m.reload(m.active())}
		if m.active() != common.PageMonitor {
			cmds = append(cmds, m.reload(common.PageMonitor)) // live while elsewhere
		}
		cmd = tea.Batch(append(cmds, m.conn.Refresh())...)
	case conn.ResultMsg, common.PingMsg:
		wasOffline := m.conn.Offline()
		m.conn, cmd = m.conn.Update(msg)
		if wasOffline != m.conn.Offline() {
			m.setSize(m.common.Width, m.common.Height) // the banner takes or gives back a line
		}
	case common.FlashMsg, flash.ClearMsg:
		m.flash, cmd = m.flash.Update(msg)
	case spinner.TickMsg:
		m.tasks, cmd = m.tasks.Update(msg)
	case common.NavigateMsg:
		cmd = m.show(msg)
	case common.ActionMsg:
		cmd = m.request(msg.Action)
	case palette.SubmitMsg:
		cmd = m.command(msg.Line)
	case confirm.SubmitMsg:
		if m.dialog != nil {
			a := m.dialog.Action()
			m.dialog = nil
			cmd = m.startTask(a, msg.Values)
		}
	case confirm.CancelMsg:
		m.dialog = nil
		cmd = m.flash.Set(common.LevelInfo, "canceled")
	case common.TaskDoneMsg:
		cmd = m.taskDone(msg)
	case tea.KeyMsg:
		cmd = m.keystrokes(msg)
	case common.CopyMsg:
		cmd = m.copy(msg.Text)
	case common.Addressed:
		cmd = m.updatePage(msg.Target(), msg)
	default:
		m.common.Logger.Debug("message for no one", "type", fmt.Sprintf("%T", msg))
	}
	return m, cmd
}

// request checks an action against read-only mode and opens the confirm
// dialog when it is dangerous or needs inputs.
func (m *Model) request(a common.Action) tea.Cmd {
	if refusal := m.common.RefuseReadOnly(a); refusal != "" {
		return m.flash.Set(common.LevelError, refusal)
	}
	if a.Dangerous || len(a.Inputs) > 0 || a.Confirm != "" {
		d := confirm.New(m.common, a)
		d.SetSize(m.common.Width, m.bodyHeight())
		m.dialog = &d
		return nil
	}
	return m.startTask(a, nil)
}

// startTask runs an action as a task (checked against read-only mode
// again: a dialog may have been opened before) and follows it.
func (m *Model) startTask(a common.Action, values []string) tea.Cmd {
	if refusal := m.common.RefuseReadOnly(a); refusal != "" {
		return m.flash.Set(common.LevelError, refusal)
	}
	cmds := []tea.Cmd{m.tasks.Start(a, values)}
	if a.Follow != nil {
		cmds = append(cmds, m.show(*a.Follow))
	}
	return tea.Batch(cmds...)
}

// taskDone flashes a task's result (or its error in words), goes where
// the action leads, and re-reads the screen and the connection.
func (m *Model) taskDone(msg common.TaskDoneMsg) tea.Cmd {
	m.tasks, _ = m.tasks.Update(msg)
	var cmds []tea.Cmd
	if msg.Err != nil {
		cmds = append(cmds, m.flash.Set(common.LevelError, msg.Title+": "+task.Describe(msg.Err)))
	} else {
		cmds = append(cmds, m.flash.Set(common.LevelInfo, msg.Result))
		if msg.After != nil {
			cmds = append(cmds, m.show(*msg.After))
		}
	}
	return tea.Batch(append(cmds, m.reload(m.active()), m.conn.Check(false))...)
}
