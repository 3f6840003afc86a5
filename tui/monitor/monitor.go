// Package monitor is the run monitor: the run's batches and targets with
// each target's step and state, progress and elapsed time, and a streaming
// log with follow mode and scrollback. It stays live while the operator
// looks at other screens: the root keeps feeding it refresh ticks and the
// events of runs this console started.
package monitor

import (
	"context"
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/progress"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/common"
)

// Source is what the monitor reads; *ops.Service implements it.
type Source interface {
	LatestRun(ctx context.Context) (ops.Run, bool, error)
	RunProgress(ctx context.Context, runID string) (ops.RunProgress, error)
	RunLog(ctx context.Context, runID string, after int64, limit int) ([]ops.LogLine, error)
	UpdateDetail(ctx context.Context, idOrChange string) (ops.UpdateDetail, error)
}

// maxLines bounds the scrollback kept in memory.
const maxLines = 5000

// KeyMap is the monitor's keys.
type KeyMap struct {
	common.NavKeys
	Follow key.Binding
	Latest key.Binding
	Detail key.Binding
	Wrap   key.Binding
	Left   key.Binding
	Right  key.Binding
	Copy   key.Binding
}

// DefaultKeyMap returns the monitor's keys.
func DefaultKeyMap() KeyMap {
	nav := common.DefaultNavKeys()
	nav.Up.SetHelp("↑/k", "scroll up")
	nav.Down.SetHelp("↓/j", "scroll down")
	nav.Bottom.SetHelp("G", "bottom + follow")
	return KeyMap{
		NavKeys: nav,
		Follow:  key.NewBinding(key.WithKeys("f"), key.WithHelp("f", "toggle follow")),
		Latest:  key.NewBinding(key.WithKeys("L"), key.WithHelp("L", "latest run")),
		Detail:  key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "update detail")),
		Wrap:    key.NewBinding(key.WithKeys("w"), key.WithHelp("w", "wrap lines")),
		Left:    key.NewBinding(key.WithKeys("left", "h"), key.WithHelp("←/h", "scroll left")),
		Right:   key.NewBinding(key.WithKeys("right", "l"), key.WithHelp("→/l", "scroll right")),
		Copy:    common.CopyKey(),
	}
}

// EventMsg carries one event of a run this console started.
type EventMsg struct{ Event ops.RunEvent }

// Target implements common.Addressed: run events are the monitor's.
func (EventMsg) Target() common.Page { return common.PageMonitor }

type loadedMsg struct {
	gen       int
	runID     string
	found     bool
	prog      ops.RunProgress
	after     int64
	lines     []ops.LogLine
	incidents []ops.Incident
	err       error
}

func (loadedMsg) Target() common.Page { return common.PageMonitor }

// Model is the run monitor.
type Model struct {
	common    common.Common
	src       Source
	keys      KeyMap
	events    chan ops.RunEvent
	vp        viewport.Model
	pinned    string // a run chosen by the operator; "" follows the latest
	live      string // the run this console started last, preferred over "latest"
	runID     string
	found     bool
	prog      ops.RunProgress
	lines     []ops.LogLine
	lastID    int64
	incidents []ops.Incident
	lastEvent string
	follow    bool
	// wrap breaks long log lines at the width; off, they are cut and
	// ←/→ scroll sideways.
	wrap bool
	load common.Loader
	err  error
}

// New builds the monitor.
func New(c common.Common, src Source) Model {
	m := Model{
		common: c, src: src, keys: DefaultKeyMap(), events: make(chan ops.RunEvent, 256),
		vp: viewport.New(c.Width, 1), follow: true,
	}
	m.vp.KeyMap = viewport.KeyMap{}
	m.vp.SetHorizontalStep(8)
	return m
}

// Sink returns the progress callback for runs this console starts: it
// never blocks the engine (an event that does not fit is dropped; the
// store has it anyway and the next refresh shows it).
func (m Model) Sink() func(ops.RunEvent) {
	ch := m.events
	return func(ev ops.RunEvent) {
		select {
		case ch <- ev:
		default:
		}
	}
}

// Init subscribes to run events (STYLE §14: re-armed after every event).
func (m Model) Init() tea.Cmd { return waitForEvent(m.events) }

func waitForEvent(ch <-chan ops.RunEvent) tea.Cmd {
	return func() tea.Msg { return EventMsg{Event: <-ch} }
}

// Show pins a run ("" follows the latest) and loads it.
func (m *Model) Show(runID string) tea.Cmd {
	if runID != m.pinned {
		m.pinned = runID
		m.load.Supersede()
	}
	return m.Load()
}

// Running reports whether the shown run is in progress.
func (m Model) Running() bool { return m.found && m.prog.Run.State == ops.RunRunning }

// Load starts a (re)load unless one is in flight.
func (m *Model) Load() tea.Cmd {
	src, want := m.src, m.pinned
	if want == "" {
		want = m.live
	}
	after := int64(0)
	if want == "" || want == m.runID {
		after = m.lastID
	}
	cur := m.runID
	return m.load.Load(m.common, func(ctx context.Context, gen int) tea.Msg {
		res := loadedMsg{gen: gen, runID: want}
		if want == "" {
			run, ok, err := src.LatestRun(ctx)
			if err != nil || !ok {
				res.err = err
				return res
			}
			res.runID = run.ID
		}
		if res.runID != cur {
			after = 0
		}
		res.found, res.after = true, after
		if res.prog, res.err = src.RunProgress(ctx, res.runID); res.err != nil {
			return res
		}
		if res.lines, res.err = src.RunLog(ctx, res.runID, after, 2000); res.err != nil {
			return res
		}
		if res.prog.Run.State != ops.RunRunning {
			if d, err := src.UpdateDetail(ctx, res.prog.Run.UpdateID); err == nil {
				res.incidents = d.Incidents
			}
		}
		return res
	})
}

// SetSize sets the monitor's size.
func (m *Model) SetSize(w, h int) {
	m.common.Width, m.common.Height = w, h
	m.layout()
}

func (m *Model) layout() {
	w, h := m.common.Width, m.common.Height
	if m.wrap && m.vp.Width != w {
		m.vp.Width = w
		m.vp.SetContent(m.renderLog()) // re-wrapped at the new width
	}
	m.vp.Width = w
	m.vp.Height = max(h-m.headerHeight(), 1)
	if m.follow {
		m.vp.GotoBottom()
	}
}

// targetRows is how many target rows fit above the log.
func (m Model) targetRows() int {
	return min(len(m.prog.Targets), max(m.common.Height/3, 2))
}

func (m Model) headerHeight() int {
	if !m.found {
		return 2
	}
	// summary, progress, targets header + rows, incident/event, log title
	return 3 + m.targetRows() + 2
}

// Title names the screen.
func (m *Model) Title() string {
	if m.found {
		return "Run " + m.runID
	}
	return "Run monitor"
}

// InputFocused reports false: the monitor has no text input.
func (m *Model) InputFocused() bool { return false }

// Update handles messages.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case EventMsg:
		ev := msg.Event
		if ev.Message != "" {
			m.lastEvent = ev.Message
		}
		if ev.RunID != "" && ev.RunID != m.live {
			m.live = ev.RunID
			if !m.Running() {
				m.pinned = "" // a run started here takes over an idle monitor
			}
			m.load.Supersede() // a load of the previous run
		}
		return m, tea.Batch(waitForEvent(m.events), m.Load())
	case common.RefreshMsg:
		return m, m.Load()
	case loadedMsg:
		if !m.load.Done(msg.gen) {
			return m, nil
		}
		m.err = msg.err
		if msg.err != nil || !msg.found {
			return m, nil
		}
		if msg.runID != m.runID {
			m.runID, m.lines, m.lastID, m.lastEvent = msg.runID, nil, 0, ""
		}
		m.found, m.prog, m.incidents = true, msg.prog, msg.incidents
		added := false
		for _, l := range msg.lines {
			if l.ID > m.lastID { // overlapping loads never duplicate lines
				m.lines = append(m.lines, l)
				m.lastID = l.ID
				added = true
				if l.Stream == "daytwo" && l.Target == "" {
					// The engine's own notes are in the log too: the latest
					// is the run's last event, even if a live event was
					// dropped or arrived before this run was loaded.
					m.lastEvent = l.Line
				}
			}
		}
		if len(m.lines) > maxLines {
			m.lines = append([]ops.LogLine(nil), m.lines[len(m.lines)-maxLines:]...)
		}
		if added || m.vp.TotalLineCount() == 0 {
			m.vp.SetContent(m.renderLog())
		}
		m.layout()
		return m, nil
	case tea.KeyMsg:
		return m.handleKey(msg)
	}
	return m, nil
}

func (m Model) handleKey(msg tea.KeyMsg) (Model, tea.Cmd) {
	if down, ok := m.keys.Scroll(&m.vp, msg); ok {
		m.follow = down && m.vp.AtBottom()
		return m, nil
	}
	switch {
	case key.Matches(msg, m.keys.Follow):
		m.follow = !m.follow
		if m.follow {
			m.vp.GotoBottom()
		}
	case key.Matches(msg, m.keys.Wrap):
		m.wrap = !m.wrap
		m.vp.SetXOffset(0)
		m.vp.SetContent(m.renderLog())
		if m.follow {
			m.vp.GotoBottom()
		}
	case key.Matches(msg, m.keys.Left) && !m.wrap:
		m.vp.ScrollLeft(8)
	case key.Matches(msg, m.keys.Right) && !m.wrap:
		m.vp.ScrollRight(8)
	case key.Matches(msg, m.keys.Copy):
		if m.found {
			return m, common.Copy(m.runID)
		}
	case key.Matches(msg, m.keys.Latest):
		m.live = ""
		return m, m.Show("")
	case key.Matches(msg, m.keys.Detail):
		if m.found {
			return m, common.Navigate(common.PageDetail, m.prog.Run.UpdateID)
		}
	}
	return m, nil
}

func (m Model) renderLog() string {
	s := m.common.Styles
	var b strings.Builder
	for i, l := range m.lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(s.Log.Time.Render(l.Time.UTC().Format("15:04:05")))
		b.WriteByte(' ')
		if l.Target != "" {
			b.WriteString(s.Log.Target.Render(l.Target) + " ")
		}
		switch l.Stream {
		case "daytwo":
			b.WriteString(s.Log.Daytwo.Render(l.Line))
		case "stderr":
			b.WriteString(s.Log.Stderr.Render(l.Line))
		default:
			b.WriteString(l.Line)
		}
	}
	if m.wrap && m.vp.Width > 0 {
		return ansi.Wrap(b.String(), m.vp.Width, "")
	}
	return b.String()
}

// View renders the monitor.
func (m Model) View() string {
	s := m.common.Styles
	w, h := m.common.Width, m.common.Height
	if !m.found {
		msg := "no run yet: run an approved update (X on the updates screen, or :run ID)"
		if m.err != nil {
			msg = "cannot read runs: " + m.err.Error()
		}
		return common.Fit(s.Section.Title.Render("Run monitor")+"\n"+s.Table.Empty.Render(msg), w, h)
	}
	p := m.prog
	r := p.Run
	var lines []string
	end := m.common.Now()
	if !r.FinishedAt.IsZero() {
		end = r.FinishedAt
	}
	batch := 0
	for _, t := range p.Targets {
		if t.State != ops.StepWaiting && t.Batch > batch {
			batch = t.Batch
		}
	}
	lines = append(lines, common.Truncate(fmt.Sprintf("%s %s  %s %s → %s  %s  batch %d/%d  elapsed %s",
		s.Section.Title.Render(string(r.Kind)), r.ID, r.Environment, common.Or(p.Update.FromVersion, "(nothing)"), p.Update.Version,
		runState(m.common, r.State), batch, p.Batches, common.Duration(end.Sub(r.StartedAt))), w))
	lines = append(lines, progressBar(m.common, p.Done, len(p.Targets), w))
	var shown [][]string
	for i := 0; i < m.targetRows(); i++ {
		t := p.Targets[i]
		shown = append(shown, []string{
			t.Target, fmt.Sprint(t.Batch), common.Or(t.Step, "—"),
			stepState(m.common, string(t.State)), common.Or(t.Version, "—"), t.Detail,
		})
	}
	cols := common.Fitted([]common.Column{
		{Title: "TARGET", Keep: 9, Min: 8},
		{Title: "BATCH", Keep: 5},
		{Title: "STEP", Keep: 4},
		{Title: "STATE", Keep: 6},
		{Title: "VERSION", Keep: 8},
		{Title: "DETAIL", Grow: true, Min: 8},
	}, shown, w)
	lines = append(lines, s.Table.Header.Render(common.Header(cols)))
	for _, row := range shown {
		lines = append(lines, common.Row(cols, row))
	}
	switch {
	case len(m.incidents) > 0:
		lines = append(lines, common.Truncate(s.Status.Bad.Render("incident "+m.incidents[0].Number)+" "+m.incidents[0].ShortDescription, w))
	case r.Error != "":
		lines = append(lines, common.Truncate(s.Status.Bad.Render(r.Error), w))
	default:
		lines = append(lines, common.Truncate(s.Status.Muted.Render(m.lastEvent), w))
	}
	follow := "follow on"
	if !m.follow {
		follow = "follow off (f)"
	}
	wrap := "wrap off (w; ←/→ scroll)"
	if m.wrap {
		wrap = "wrap on"
	}
	lines = append(lines, s.Section.Label.Render(fmt.Sprintf("log · %d lines · %s · %s", len(m.lines), follow, wrap)))
	lines = append(lines, m.vp.View())
	return common.Fit(strings.Join(lines, "\n"), w, h)
}

func runState(c common.Common, st ops.RunState) string {
	s := c.Styles
	switch st {
	case ops.RunRunning:
		return s.Badge.Running.Render("● running")
	case ops.RunSucceeded:
		return s.Status.OK.Render("✓ succeeded")
	case ops.RunRolledBack:
		return s.Status.Bad.Render("↺ rolled back")
	case ops.RunFailed:
		return s.Status.Bad.Render("✗ FAILED: needs a human")
	case ops.RunInterrupted:
		return s.Status.Warn.Render("interrupted")
	default:
		return string(st)
	}
}

func stepState(c common.Common, st string) string {
	s := c.Styles
	switch st {
	case string(ops.StepSucceeded):
		return s.Status.OK.Render(st)
	case string(ops.StepFailed):
		return s.Status.Bad.Render(st)
	case string(ops.StepStarted):
		return s.Status.Pending.Render(st)
	default:
		return s.Status.Muted.Render(st)
	}
}

// progressBar draws done/total as a static bar (bubbles/progress rendered
// with ViewAs: no animation frames to schedule).
func progressBar(c common.Common, done, total, w int) string {
	label := fmt.Sprintf(" %d/%d targets", done, total)
	bar := progress.New(progress.WithWidth(max(w-len(label), 7)), progress.WithoutPercentage(),
		progress.WithSolidFill(c.Styles.ProgressColor))
	pct := 0.0
	if total > 0 {
		pct = float64(done) / float64(total)
	}
	return bar.ViewAs(pct) + label
}

// ShortHelp implements help.KeyMap.
func (m Model) ShortHelp() []key.Binding {
	return []key.Binding{m.keys.Follow, m.keys.Wrap, m.keys.Right, m.keys.Latest, m.keys.Detail, m.keys.Bottom}
}

// FullHelp implements help.KeyMap.
func (m Model) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{m.keys.Up, m.keys.Down, m.keys.PageUp, m.keys.PageDown, m.keys.Top, m.keys.Bottom},
		{m.keys.Follow, m.keys.Wrap, m.keys.Left, m.keys.Right, m.keys.Latest, m.keys.Detail, m.keys.Copy},
	}
}

// Abandon forgets the load in flight: its result will be ignored and the
// next Load starts a new one (the program stopped before it reported).
func (m *Model) Abandon() { m.load.Supersede() }
