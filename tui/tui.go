// Package tui is daytwo's operator console, a Bubble Tea v1 program. The
// root Model is a small router (soft-serve's shape): it owns the
// navigation stack and breadcrumbs, the global keys and help, the command
// palette, the confirm dialog, the flash line, the task spinner and the
// background refresh; every screen is its own component in a sub-package
// and owns its keys, help and commands. All I/O goes through *ops.Service
// inside tea.Cmds.
package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/spinner"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/audit"
	"github.com/daytwo/daytwo/tui/changes"
	"github.com/daytwo/daytwo/tui/common"
	"github.com/daytwo/daytwo/tui/confirm"
	"github.com/daytwo/daytwo/tui/detail"
	"github.com/daytwo/daytwo/tui/environments"
	"github.com/daytwo/daytwo/tui/monitor"
	"github.com/daytwo/daytwo/tui/outbox"
	"github.com/daytwo/daytwo/tui/styles"
	"github.com/daytwo/daytwo/tui/updates"
)

// Options configures the console.
type Options struct {
	// ReadOnly disables every action that changes ServiceNow or an
	// environment.
	ReadOnly bool
	// Instance is the ServiceNow instance URL shown on the connection
	// screen.
	Instance string
	// Refresh is how often the screens re-read the store (default 1s), so
	// a `daytwo sync --watch` daemon on the same database shows up live.
	Refresh time.Duration
	// PingEvery is how many refreshes pass between ServiceNow pings
	// (default 10); 0 uses the default, a negative value never pings.
	PingEvery int
	// Timeout bounds each store read and each short action (default 30s).
	Timeout time.Duration
	// FlashFor is how long the flash line stays (default 6s).
	FlashFor time.Duration
	// Clock renders elapsed times (default time.Now; fixed in tests).
	Clock func() time.Time
	// Logger receives debug logs; it must not write to the terminal.
	Logger *slog.Logger
	// LogFile, when Logger is nil, is where Run writes debug logs.
	LogFile string
	// Styles overrides the default styles.
	Styles *styles.Styles
}

func (o *Options) defaults() {
	if o.Refresh <= 0 {
		o.Refresh = time.Second
	}
	if o.PingEvery == 0 {
		o.PingEvery = 10
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.FlashFor <= 0 {
		o.FlashFor = 6 * time.Second
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Styles == nil {
		o.Styles = styles.Default()
	}
}

type tickMsg struct{}

type clearFlashMsg struct{ id int }

// Model is the console's root model.
type Model struct {
	common  common.Common
	opts    Options
	svc     *ops.Service
	envList []ops.Environment
	gated   map[string]bool
	keys    KeyMap
	help    help.Model
	spinner spinner.Model

	envs    environments.Model
	updates updates.Model
	changes changes.Model
	detail  detail.Model
	monitor monitor.Model
	audit   audit.Model
	outbox  outbox.Model

	stack    []common.Page
	showHelp bool
	palette  common.Input
	inPal    bool
	dialog   *confirm.Model

	flash      string
	flashLevel common.Level
	flashID    int

	tasks    map[int]string
	nextTask int

	conn       ops.ConnectionStatus
	connKnown  bool
	connGen    int
	connBusy   bool
	ticks      int
	width      int
	height     int
	bodyHeight int
}

// New builds the console. ctx bounds every command it runs; cancel it to
// stop in-flight work (a run in progress is then interrupted and recovered
// by the next engine start).
func New(ctx context.Context, svc *ops.Service, opts Options) *Model {
	opts.defaults()
	c := common.Common{Ctx: ctx, Styles: opts.Styles, Logger: opts.Logger, Now: opts.Clock, ReadOnly: opts.ReadOnly,
		Timeout: opts.Timeout, Width: 80, Height: 24}
	m := &Model{common: c, opts: opts, svc: svc, envList: svc.Environments(), gated: map[string]bool{},
		keys: DefaultKeyMap(), help: help.New(), tasks: map[int]string{}, stack: []common.Page{common.PageEnvironments}}
	for _, e := range m.envList {
		m.gated[e.Name] = e.RequiresChange
	}
	m.help.Styles.ShortKey = opts.Styles.Help
	m.help.Styles.ShortDesc = opts.Styles.Help
	m.help.Styles.FullKey = opts.Styles.Section.Title
	m.help.Styles.FullDesc = opts.Styles.Section.Value
	m.spinner = spinner.New(spinner.WithSpinner(spinner.MiniDot), spinner.WithStyle(opts.Styles.Prompt))
	m.palette = common.NewInput(c, ":", "command (try: env prod, chg CHG0030012, propose staging 1.4.2)")
	m.monitor = monitor.New(c, svc)
	sink := m.monitor.Sink()
	m.envs = environments.New(c, svc, svc)
	m.updates = updates.New(c, svc, svc, m.envList, sink)
	m.changes = changes.New(c, svc)
	m.detail = detail.New(c, svc, svc, m.envList, sink)
	m.audit = audit.New(c, svc)
	m.outbox = outbox.New(c, svc, svc)
	m.setSize(80, 24)
	return m
}

// Run runs the console in the alternate screen until the operator quits.
func Run(ctx context.Context, svc *ops.Service, opts Options, progOpts ...tea.ProgramOption) error {
	if opts.Logger == nil && opts.LogFile != "" {
		f, err := os.OpenFile(opts.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("tui: log file: %w", err)
		}
		defer f.Close()
		opts.Logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := New(ctx, svc, opts)
	p := tea.NewProgram(m, append([]tea.ProgramOption{tea.WithAltScreen(), tea.WithContext(ctx)}, progOpts...)...)
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil // the caller's context ended: a normal way out
	}
	return err
}

// Init starts the refresh loop, the run-event subscription and the first
// loads.
func (m *Model) Init() tea.Cmd {
	return tea.Batch(m.monitor.Init(), m.tick(), m.envs.Load(), m.monitor.Load(), m.checkConnection(m.opts.PingEvery > 0))
}

func (m *Model) tick() tea.Cmd {
	return tea.Tick(m.opts.Refresh, func(time.Time) tea.Msg { return tickMsg{} })
}

func (m *Model) checkConnection(ping bool) tea.Cmd {
	if m.connBusy {
		return nil
	}
	m.connBusy = true
	m.connGen++
	return outbox.CheckConnection(m.common, m.svc, m.opts.Instance, ping, m.connGen)
}

func (m *Model) active() common.Page { return m.stack[len(m.stack)-1] }

// page returns the component for p.
func (m *Model) page(p common.Page) common.Component {
	switch p {
	case common.PageUpdates:
		return &m.updates
	case common.PageChanges:
		return &m.changes
	case common.PageDetail:
		return &m.detail
	case common.PageMonitor:
		return &m.monitor
	case common.PageAudit:
		return &m.audit
	case common.PageOutbox:
		return &m.outbox
	default:
		return &m.envs
	}
}

// updatePage routes msg to one screen.
func (m *Model) updatePage(p common.Page, msg tea.Msg) tea.Cmd {
	var cmd tea.Cmd
	switch p {
	case common.PageEnvironments:
		m.envs, cmd = m.envs.Update(msg)
	case common.PageUpdates:
		m.updates, cmd = m.updates.Update(msg)
	case common.PageChanges:
		m.changes, cmd = m.changes.Update(msg)
	case common.PageDetail:
		m.detail, cmd = m.detail.Update(msg)
	case common.PageMonitor:
		m.monitor, cmd = m.monitor.Update(msg)
	case common.PageAudit:
		m.audit, cmd = m.audit.Update(msg)
	case common.PageOutbox:
		m.outbox, cmd = m.outbox.Update(msg)
	}
	return cmd
}

var allPages = []common.Page{common.PageEnvironments, common.PageUpdates, common.PageChanges, common.PageDetail,
	common.PageMonitor, common.PageAudit, common.PageOutbox}

// offline reports whether the offline banner shows.
func (m *Model) offline() bool { return m.connKnown && m.conn.Offline() }

// setSize lays the screen out once per resize (or banner change) and
// pushes the body size down.
func (m *Model) setSize(w, h int) {
	m.width, m.height = w, h
	body := h - 3 // header, flash/status line, help line
	if m.offline() {
		body--
	}
	m.bodyHeight = max(body, 1)
	for _, p := range allPages {
		m.page(p).SetSize(w, m.bodyHeight)
	}
	if m.dialog != nil {
		m.dialog.SetSize(w, m.bodyHeight)
	}
	m.help.Width = w
}

// show makes p the active screen and loads it.
func (m *Model) show(msg common.NavigateMsg) tea.Cmd {
	switch {
	case msg.Page == common.PageEnvironments:
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
	switch msg.Page {
	case common.PageEnvironments:
		if msg.Arg != "" && !m.envs.Select(msg.Arg) {
			return tea.Batch(m.envs.Load(), common.Flash(common.LevelWarn, "no environment matches "+msg.Arg))
		}
		return m.envs.Load()
	case common.PageUpdates:
		return m.updates.SetEnvironment(msg.Arg)
	case common.PageDetail:
		return m.detail.Show(msg.Arg)
	case common.PageMonitor:
		return m.monitor.Show(msg.Arg)
	default:
		return m.reload(msg.Page)
	}
}

// reload asks one screen to re-read the store.
func (m *Model) reload(p common.Page) tea.Cmd {
	return m.updatePage(p, common.RefreshMsg{})
}

func (m *Model) back() tea.Cmd {
	if len(m.stack) == 1 {
		return nil
	}
	m.stack = m.stack[:len(m.stack)-1]
	return m.reload(m.active())
}

// Update routes messages: global keys and root concerns here, everything
// else to the screens.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.setSize(msg.Width, msg.Height)
		return m, nil
	case tickMsg:
		m.ticks++
		cmds := []tea.Cmd{m.tick(), m.reload(m.active())}
		if m.active() != common.PageMonitor {
			cmds = append(cmds, m.reload(common.PageMonitor)) // live while elsewhere
		}
		ping := m.opts.PingEvery > 0 && m.ticks%m.opts.PingEvery == 0
		cmds = append(cmds, m.checkConnection(ping))
		return m, tea.Batch(cmds...)
	case outbox.ConnectionMsg:
		if msg.Gen != m.connGen {
			return m, nil
		}
		m.connBusy = false
		wasOffline := m.offline()
		if msg.Err == nil {
			// A refresh without ping keeps the last ping's verdict.
			if !msg.Status.Checked && m.conn.Checked {
				msg.Status.Checked, msg.Status.Reachable = true, m.conn.Reachable
				if !m.conn.Reachable {
					msg.Status.Error = m.conn.Error
				}
			}
			m.conn, m.connKnown = msg.Status, true
		}
		m.outbox.SetConnection(m.conn, msg.Err)
		if wasOffline != m.offline() {
			m.setSize(m.width, m.height)
		}
		return m, nil
	case outbox.PingMsg:
		m.connBusy = false
		return m, m.checkConnection(true)
	case common.FlashMsg:
		return m, m.setFlash(msg.Level, msg.Text)
	case clearFlashMsg:
		if msg.id == m.flashID {
			m.flash = ""
		}
		return m, nil
	case common.NavigateMsg:
		return m, m.show(msg)
	case common.ActionMsg:
		return m, m.request(msg.Action)
	case confirm.SubmitMsg:
		if m.dialog == nil {
			return m, nil
		}
		a := m.dialog.Action()
		m.dialog = nil
		return m, m.startTask(a, msg.Values)
	case confirm.CancelMsg:
		m.dialog = nil
		return m, m.setFlash(common.LevelInfo, "canceled")
	case common.TaskDoneMsg:
		delete(m.tasks, msg.ID)
		var cmds []tea.Cmd
		if msg.Err != nil {
			cmds = append(cmds, m.setFlash(common.LevelError, msg.Title+": "+describe(msg.Err)))
		} else {
			cmds = append(cmds, m.setFlash(common.LevelInfo, msg.Result))
			if msg.After != nil {
				cmds = append(cmds, m.show(*msg.After))
			}
		}
		cmds = append(cmds, m.reload(m.active()), m.checkConnection(false))
		return m, tea.Batch(cmds...)
	case spinner.TickMsg:
		if len(m.tasks) == 0 {
			return m, nil
		}
		var cmd tea.Cmd
		m.spinner, cmd = m.spinner.Update(msg)
		return m, cmd
	case monitor.EventMsg:
		return m, m.updatePage(common.PageMonitor, msg)
	case tea.KeyMsg:
		return m, m.handleKey(msg)
	}
	// Screen results (their own unexported message types) go to every
	// screen; each takes only its own.
	var cmds []tea.Cmd
	for _, p := range allPages {
		cmds = append(cmds, m.updatePage(p, msg))
	}
	return m, tea.Batch(cmds...)
}

// describe turns an action error into words an operator can act on.
func describe(err error) string {
	if h, ok := ops.HintOf(err); ok {
		if t := hintText(h); t != "" {
			return describeCause(err) + "; " + t
		}
	}
	return describeCause(err)
}

// hintText phrases a domain hint in the console's terms (palette commands).
func hintText(h ops.Hint) string {
	switch h.Kind {
	case ops.HintSync:
		return "sync first (:sync)"
	case ops.HintForce:
		return "the release is already there: nothing to redeploy from the console"
	case ops.HintSupersede:
		return "cancel it first (:cancel " + h.Subject + ")"
	case ops.HintComment:
		return "type a comment"
	case ops.HintConfigKey:
		return "check the key " + h.Subject
	case ops.HintReleaseHistory:
		return "see the environment's releases"
	}
	return ""
}

func describeCause(err error) string {
	switch {
	case errors.Is(err, ops.ErrApprovalPending):
		return "waiting for approval: " + err.Error()
	case errors.Is(err, ops.ErrBlocked):
		return "blocked: " + err.Error()
	case errors.Is(err, ops.ErrRunFailed):
		return err.Error() + " (see the run monitor and the update's incident)"
	case errors.Is(err, ops.ErrNotFound):
		return "not found: " + err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return "ServiceNow or the store did not answer in time; the write waits in the outbox if it was queued"
	default:
		return err.Error()
	}
}

func (m *Model) setFlash(l common.Level, text string) tea.Cmd {
	m.flashID++
	m.flash, m.flashLevel = text, l
	id := m.flashID
	if l == common.LevelError {
		m.common.Logger.Debug("flash", "text", text)
	}
	return tea.Tick(m.opts.FlashFor, func(time.Time) tea.Msg { return clearFlashMsg{id: id} })
}

// request checks an action against read-only mode and opens the confirm
// dialog when it is dangerous or needs inputs.
func (m *Model) request(a common.Action) tea.Cmd {
	if refusal := m.common.RefuseReadOnly(a); refusal != "" {
		return m.setFlash(common.LevelError, refusal)
	}
	if a.Dangerous || len(a.Inputs) > 0 || a.Confirm != "" {
		d := confirm.New(m.common, a)
		d.SetSize(m.width, m.bodyHeight)
		m.dialog = &d
		return nil
	}
	return m.startTask(a, nil)
}

// startTask runs an action in a command with the spinner on; it ends in
// one TaskDoneMsg.
func (m *Model) startTask(a common.Action, values []string) tea.Cmd {
	if refusal := m.common.RefuseReadOnly(a); refusal != "" {
		return m.setFlash(common.LevelError, refusal)
	}
	m.nextTask++
	id := m.nextTask
	m.tasks[id] = a.Title
	ctx, timeout := m.common.Ctx, m.opts.Timeout
	if ctx == nil {
		ctx = context.Background()
	}
	cmds := []tea.Cmd{func() tea.Msg {
		c, cancel := ctx, context.CancelFunc(func() {})
		if !a.Long {
			c, cancel = context.WithTimeout(ctx, timeout)
		}
		defer cancel()
		res, err := a.Do(c, values)
		done := common.TaskDoneMsg{ID: id, Title: a.Title, Result: res, Err: err}
		if err == nil && a.After != nil {
			done.After = a.After(res)
		}
		return done
	}}
	if len(m.tasks) == 1 {
		cmds = append(cmds, m.spinner.Tick)
	}
	if a.Follow != nil {
		cmds = append(cmds, m.show(*a.Follow))
	}
	return tea.Batch(cmds...)
}

// inputFocused reports whether keys are being typed somewhere.
func (m *Model) inputFocused() bool {
	return m.inPal || m.dialog != nil || m.page(m.active()).InputFocused()
}

func (m *Model) handleKey(msg tea.KeyMsg) tea.Cmd {
	if key.Matches(msg, m.keys.ForceQuit) {
		return tea.Quit
	}
	switch {
	case m.dialog != nil:
		d, cmd := m.dialog.Update(msg)
		m.dialog = &d
		return cmd
	case m.inPal:
		switch msg.Type {
		case tea.KeyEsc:
			m.inPal = false
			m.palette.Blur()
			return nil
		case tea.KeyEnter:
			m.inPal = false
			m.palette.Blur()
			line := m.palette.Value()
			m.palette.SetValue("")
			return m.command(line)
		}
		m.palette, _ = m.palette.Update(msg)
		return nil
	case m.showHelp:
		if key.Matches(msg, m.keys.Help, m.keys.Back, m.keys.Quit) {
			m.showHelp = false
		}
		return nil
	case m.page(m.active()).InputFocused():
		return m.updatePage(m.active(), msg)
	}
	switch {
	case key.Matches(msg, m.keys.Quit):
		return tea.Quit
	case key.Matches(msg, m.keys.Help):
		m.showHelp = true
		return nil
	case key.Matches(msg, m.keys.Palette):
		m.inPal = true
		m.palette.Focus()
		return nil
	case key.Matches(msg, m.keys.Sync):
		return m.command("sync")
	case key.Matches(msg, m.keys.Environments):
		return m.show(common.NavigateMsg{Page: common.PageEnvironments})
	case key.Matches(msg, m.keys.Updates):
		return m.jump(common.PageUpdates)
	case key.Matches(msg, m.keys.Changes):
		return m.jump(common.PageChanges)
	case key.Matches(msg, m.keys.Monitor):
		return m.jump(common.PageMonitor)
	case key.Matches(msg, m.keys.Audit):
		return m.jump(common.PageAudit)
	case key.Matches(msg, m.keys.Outbox):
		return m.jump(common.PageOutbox)
	}
	// esc goes to the screen first (it clears a filter), then goes back.
	if key.Matches(msg, m.keys.Back) {
		if f, ok := m.page(m.active()).(interface{ FilterValue() string }); ok && f.FilterValue() != "" {
			return m.updatePage(m.active(), msg)
		}
		return m.back()
	}
	return m.updatePage(m.active(), msg)
}

// jump opens a top-level screen from the home screen.
func (m *Model) jump(p common.Page) tea.Cmd {
	m.stack = m.stack[:1]
	return m.show(common.NavigateMsg{Page: p})
}

// View renders header, banner, body and footer, exactly filling the
// terminal.
func (m *Model) View() string {
	s := m.common.Styles
	w := m.width
	var b strings.Builder
	b.WriteString(m.header())
	if m.offline() {
		why := "ServiceNow unreachable"
		if !m.conn.Configured {
			why = "no ServiceNow instance configured"
		}
		b.WriteString("\n" + common.PadRight(s.App.Offline.Render(fmt.Sprintf("OFFLINE · %s: reading the local mirror, %d write(s) wait in the outbox; nothing unapproved runs", why, m.conn.Pending+m.conn.Failed)), w))
	}
	b.WriteString("\n")
	var body string
	switch {
	case m.dialog != nil:
		body = common.Fit(m.dialog.View(), w, m.bodyHeight)
	case m.showHelp:
		body = common.Fit(m.fullHelp(), w, m.bodyHeight)
	default:
		body = m.page(m.active()).View()
	}
	status := m.statusLines()
	if extra := len(status) - 1; extra > 0 {
		// An error too long for one line (a refusal saying who may decide)
		// takes its room from the bottom of the body.
		lines := strings.Split(body, "\n")
		body = strings.Join(lines[:max(len(lines)-extra, 1)], "\n")
	}
	b.WriteString(body)
	b.WriteString("\n" + strings.Join(status, "\n"))
	b.WriteString("\n" + common.PadRight(m.help.ShortHelpView(m.ShortHelp()), w))
	return b.String()
}

func (m *Model) header() string {
	s := m.common.Styles
	crumbs := make([]string, len(m.stack))
	for i, p := range m.stack {
		crumbs[i] = m.page(p).Title()
	}
	left := s.App.Title.Render("daytwo") + s.App.Separator.Render(" ▸ ") + s.App.Breadcrumb.Render(strings.Join(crumbs, " ▸ "))
	var right []string
	if m.opts.ReadOnly {
		right = append(right, s.App.ReadOnly.Render("READ-ONLY"))
	}
	switch {
	case !m.connKnown:
	case m.conn.Offline():
		right = append(right, s.App.Offline.Render("● offline"))
	case m.conn.Checked:
		right = append(right, s.App.Online.Render("● online"))
	}
	if n := m.conn.Pending + m.conn.Failed; n > 0 {
		right = append(right, s.Status.Warn.Render(fmt.Sprintf("outbox %d", n)))
	}
	r := strings.Join(right, " ")
	gap := m.width - lipgloss.Width(left) - lipgloss.Width(r)
	if gap < 1 {
		return common.PadRight(left, m.width)
	}
	return left + strings.Repeat(" ", gap) + r
}

// statusLines is the status line, or up to three lines for an error flash
// too wide for one: an error the operator must read whole.
func (m *Model) statusLines() []string {
	w := m.width
	if m.inPal || m.flash == "" || m.flashLevel != common.LevelError || len(m.tasks) > 0 || lipgloss.Width(m.flash) <= w || w < 20 {
		return []string{m.statusLine()}
	}
	var lines []string
	line := ""
	for _, word := range strings.Fields(m.flash) {
		if line != "" && lipgloss.Width(line)+1+lipgloss.Width(word) > w {
			lines, line = append(lines, line), word
			continue
		}
		line = strings.TrimSpace(line + " " + word)
	}
	lines = append(lines, line)
	if len(lines) > 3 {
		lines = append(lines[:2], common.Truncate(strings.Join(lines[2:], " "), w))
	}
	st := m.common.Styles.Flash.Error
	for i, l := range lines {
		lines[i] = common.PadRight(st.Render(l), w)
	}
	return lines
}

func (m *Model) statusLine() string {
	s := m.common.Styles
	w := m.width
	if m.inPal {
		return common.PadRight(m.palette.View(), w)
	}
	var parts []string
	if len(m.tasks) > 0 {
		titles := make([]string, 0, len(m.tasks))
		for id := 1; id <= m.nextTask; id++ {
			if t, ok := m.tasks[id]; ok {
				titles = append(titles, t)
			}
		}
		parts = append(parts, m.spinner.View()+" "+strings.Join(titles, ", ")+"…")
	}
	if m.flash != "" {
		st := s.Flash.Info
		switch m.flashLevel {
		case common.LevelWarn:
			st = s.Flash.Warn
		case common.LevelError:
			st = s.Flash.Error
		}
		parts = append(parts, st.Render(m.flash))
	}
	return common.PadRight(strings.Join(parts, "  "), w)
}

func (m *Model) fullHelp() string {
	groups := append(m.page(m.active()).FullHelp(), m.keys.FullHelp()...)
	h := m.help
	h.ShowAll = true
	return m.common.Styles.Section.Title.Render("Keys: "+m.page(m.active()).Title()) + "\n\n" + h.FullHelpView(groups) +
		"\n\n" + m.common.Styles.Help.Render("⚠ marks dangerous actions: disabled in read-only mode, always confirmed.") +
		"\n" + m.common.Styles.Help.Render("Palette (:) — "+paletteHelp)
}

// ShortHelp implements help.KeyMap: the active screen's keys, then the
// global ones (or the dialog's while it is open).
func (m *Model) ShortHelp() []key.Binding {
	switch {
	case m.dialog != nil:
		return m.dialog.ShortHelp()
	case m.inPal:
		return []key.Binding{key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "run")), key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "close"))}
	case m.showHelp:
		return []key.Binding{m.keys.Help, m.keys.Back}
	}
	km := m.keys
	km.Quit.SetEnabled(!m.inputFocused())
	return append(m.page(m.active()).ShortHelp(), km.ShortHelp()...)
}

// FullHelp implements help.KeyMap.
func (m *Model) FullHelp() [][]key.Binding {
	return append(m.page(m.active()).FullHelp(), m.keys.FullHelp()...)
}

// SetSize implements the Component contract for embedding the console.
func (m *Model) SetSize(w, h int) { m.setSize(w, h) }

var _ tea.Model = (*Model)(nil)
