// Package detail is the screen showing one update in full: the plan
// (batches, targets, steps), the config diff, policy verdicts, the change
// with its approvers and their decisions, the work notes daytwo wrote, the
// incident a failed rollout opened, and the runs.
package detail

import (
	"context"
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/actions"
	"github.com/daytwo/daytwo/tui/common"
)

// Source is what the screen reads; *ops.Service implements it.
type Source interface {
	UpdateDetail(ctx context.Context, idOrChange string) (ops.UpdateDetail, error)
}

// KeyMap is the screen's keys.
type KeyMap struct {
	common.NavKeys
	Monitor key.Binding
	Copy    key.Binding
	actions.UpdateKeys
}

// DefaultKeyMap returns the screen's default keys.
func DefaultKeyMap() KeyMap {
	nav := common.DefaultNavKeys()
	nav.Up.SetHelp("↑/k", "scroll up")
	nav.Down.SetHelp("↓/j", "scroll down")
	nav.PageDown.SetKeys("pgdown", "ctrl+d", " ")
	return KeyMap{
		NavKeys:    nav,
		Monitor:    key.NewBinding(key.WithKeys("l"), key.WithHelp("l", "run log")),
		Copy:       key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "copy id")),
		UpdateKeys: actions.DefaultUpdateKeys(),
	}
}

type loadedMsg struct {
	gen int
	id  string
	d   ops.UpdateDetail
	err error
}

func (loadedMsg) Target() common.Page { return common.PageDetail }

// Model is the detail screen.
type Model struct {
	common   common.Common
	src      Source
	acts     actions.Service
	envs     map[string]ops.Environment
	progress func(ops.RunEvent)
	keys     KeyMap
	vp       viewport.Model
	id       string
	d        *ops.UpdateDetail
	load     common.Loader
	err      error
}

// New builds the screen.
func New(c common.Common, src Source, acts actions.Service, envs []ops.Environment, progress func(ops.RunEvent)) Model {
	m := Model{
		common: c, src: src, acts: acts, progress: progress, keys: DefaultKeyMap(), vp: viewport.New(c.Width, c.Height),
		envs: map[string]ops.Environment{},
	}
	for _, e := range envs {
		m.envs[e.Name] = e
	}
	m.vp.KeyMap = viewport.KeyMap{} // our KeyMap drives scrolling
	m.updateKeys()
	return m
}

// Init does nothing: Show loads.
func (m Model) Init() tea.Cmd { return nil }

// Show switches to an update (id or change number) and loads it.
func (m *Model) Show(id string) tea.Cmd {
	if id != m.id {
		m.id, m.d, m.err = id, nil, nil
		m.vp.SetContent("")
		m.vp.GotoTop()
		m.load.Supersede()
	}
	return m.Load()
}

// Load starts a (re)load unless one is in flight.
func (m *Model) Load() tea.Cmd {
	if m.id == "" {
		return nil
	}
	src, id := m.src, m.id
	return m.load.Load(m.common, func(ctx context.Context, gen int) tea.Msg {
		d, err := src.UpdateDetail(ctx, id)
		return loadedMsg{gen: gen, id: id, d: d, err: err}
	})
}

// SetSize sets the screen's size.
func (m *Model) SetSize(w, h int) {
	m.common.Width, m.common.Height = w, h
	m.vp.Width, m.vp.Height = w, h
	m.render()
}

// Title names the screen.
func (m *Model) Title() string {
	if m.d != nil && m.d.Update.ChangeNumber != "" {
		return m.d.Update.ID + " · " + m.d.Update.ChangeNumber
	}
	return common.Or(m.id, "Detail")
}

// InputFocused reports false: the screen has no text input.
func (m *Model) InputFocused() bool { return false }

func (m *Model) updateKeys() {
	ok := m.d != nil
	var u ops.UpdateStatus
	if ok {
		u = m.d.UpdateStatus
	}
	m.keys.Enable(!m.common.ReadOnly, u, ok)
	m.keys.Monitor.SetEnabled(ok && len(m.d.Runs) > 0)
}

// Update handles messages.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case common.RefreshMsg:
		return m, m.Load()
	case loadedMsg:
		if msg.id != m.id || !m.load.Done(msg.gen) {
			return m, nil
		}
		m.err = msg.err
		if msg.err == nil {
			d := msg.d
			m.d = &d
		}
		m.render()
		m.updateKeys()
		return m, nil
	case tea.KeyMsg:
		return m.handleKey(msg)
	}
	return m, nil
}

func (m Model) handleKey(msg tea.KeyMsg) (Model, tea.Cmd) {
	if _, ok := m.keys.Scroll(&m.vp, msg); ok {
		return m, nil
	}
	switch {
	case m.d == nil:
	case key.Matches(msg, m.keys.Monitor):
		return m, common.Navigate(common.PageMonitor, m.d.Runs[0].ID)
	case key.Matches(msg, m.keys.Copy):
		return m, common.Copy(m.d.Update.ID)
	default:
		if a, ok := m.keys.Action(msg, m.acts, m.d.Update, m.envs[m.d.Update.Environment].RequiresChange, m.progress); ok {
			return m, common.Act(a)
		}
	}
	return m, nil
}

// render rebuilds the viewport's content (on load and resize, not per
// frame), keeping the scroll position.
func (m *Model) render() {
	off := m.vp.YOffset
	m.vp.SetContent(m.content())
	m.vp.SetYOffset(off)
}

func (m Model) content() string {
	s := m.common.Styles
	w := max(m.common.Width, 20)
	switch {
	case m.d == nil && m.err != nil:
		return s.Status.Bad.Render("cannot read " + m.id + ": " + m.err.Error())
	case m.d == nil:
		return s.Table.Empty.Render("loading " + m.id + "…")
	}
	d := m.d
	u := d.Update
	var b strings.Builder
	title := func(t string) { b.WriteString("\n" + s.Section.Title.Render(t) + "\n") }
	kv := func(k, v string) {
		b.WriteString(wrap(s.Section.Label.Render(fmt.Sprintf("%-10s", k))+" "+v, w) + "\n")
	}
	kind := "update"
	if u.Rollback {
		kind = "rollback"
	}
	b.WriteString(s.Section.Title.Render(fmt.Sprintf("%s %s: %s %s → %s", kind, u.ID, u.Environment, common.Or(u.FromVersion, "(nothing)"), u.Version)) + "\n")
	kv("state", string(u.State)+reason(u.Reason))
	kv("gate", common.GateStyle(m.common, d.UpdateStatus))
	kv("proposed", common.Or(u.CreatedBy, "unknown")+" at "+common.Timestamp(u.CreatedAt))
	if m.envs[u.Environment].RequiresChange || u.ChangeNumber != "" {
		title("Change")
		if d.Change == nil {
			kv("change", common.Or(u.ChangeNumber, "not raised yet (queued for ServiceNow)"))
		} else {
			c := d.Change
			kv("number", c.Number+" ("+common.Or(string(c.Type), "?")+")")
			kv("state", c.State.String())
			kv("approval", common.Or(string(c.Approval), "—"))
			kv("window", common.Timestamp(c.StartDate)+" – "+common.Timestamp(c.EndDate))
			if c.CloseCode != "" {
				kv("closed", c.CloseCode)
			}
		}
		b.WriteString(s.Section.Label.Render("approvers") + "\n")
		if len(d.Approvals) == 0 {
			b.WriteString("  " + s.Status.Muted.Render("none recorded yet") + "\n")
		}
		for _, a := range d.Approvals {
			st := approvalStyle(m.common, string(a.State))
			line := fmt.Sprintf("  %-20s %s", common.Or(a.ApproverName, a.Approver), st)
			if a.Comments != "" {
				line += "  " + s.Status.Muted.Render(strings.ReplaceAll(a.Comments, "\n", " "))
			}
			b.WriteString(wrap(line, w) + "\n")
		}
	}
	if len(d.Incidents) > 0 {
		title("Incident")
		for _, in := range d.Incidents {
			b.WriteString(wrap(s.Status.Bad.Render(in.Number)+"  "+in.ShortDescription, w) + "\n")
		}
	}
	title("Plan")
	for _, l := range strings.Split(strings.TrimRight(d.PlanText, "\n"), "\n") {
		if strings.HasPrefix(l, "Plan digest") {
			continue // the digest is in the change; keep the screen readable
		}
		b.WriteString(wrap(l, w) + "\n")
	}
	title("Config diff")
	if len(d.Plan.ConfigDiff) == 0 {
		b.WriteString(s.Status.Muted.Render("unchanged") + "\n")
	}
	for _, c := range d.Plan.ConfigDiff {
		if c.From != "" {
			b.WriteString(wrap(s.Diff.Del.Render("- "+c.Key+"="+c.From), w) + "\n")
		}
		if c.To != "" {
			b.WriteString(wrap(s.Diff.Add.Render("+ "+c.Key+"="+c.To), w) + "\n")
		}
	}
	title("Policies")
	if len(d.Verdicts) == 0 {
		b.WriteString(s.Status.Muted.Render("no policy applies") + "\n")
	}
	for _, v := range d.Verdicts {
		mark := s.Status.OK.Render("pass")
		if !v.Passed {
			mark = s.Status.Warn.Render("warn")
			if v.Blocking() {
				mark = s.Status.Bad.Render("BLOCK")
			}
		}
		b.WriteString(wrap(fmt.Sprintf("%s %s %s", mark, v.Policy, common.Or(v.Message, v.Error)), w) + "\n")
	}
	title("Runs")
	if len(d.Runs) == 0 {
		b.WriteString(s.Status.Muted.Render("not run yet") + "\n")
	}
	for _, r := range d.Runs {
		line := fmt.Sprintf("%s %s %s started %s", r.ID, r.Kind, r.State, common.Timestamp(r.StartedAt))
		if r.Error != "" {
			line += ": " + r.Error
		}
		b.WriteString(wrap(line, w) + "\n")
	}
	title("Work notes")
	if len(d.Notes) == 0 {
		b.WriteString(s.Status.Muted.Render("none") + "\n")
	}
	for _, n := range d.Notes {
		mark := s.Status.OK.Render("sent  ")
		if !n.Delivered {
			mark = s.Status.Pending.Render("queued")
		}
		for i, l := range strings.Split(n.Text, "\n") {
			prefix := mark + " "
			if i > 0 {
				prefix = "       "
			}
			b.WriteString(wrap(prefix+l, w) + "\n")
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

func reason(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}

func approvalStyle(c common.Common, state string) string {
	switch state {
	case "approved":
		return c.Styles.Status.OK.Render(state)
	case "rejected":
		return c.Styles.Status.Bad.Render(state)
	case "requested":
		return c.Styles.Status.Pending.Render(state)
	default:
		return c.Styles.Status.Muted.Render(state)
	}
}

// View renders the screen.
func (m Model) View() string {
	return common.Fit(m.vp.View(), m.common.Width, m.common.Height)
}

// ShortHelp implements help.KeyMap.
func (m Model) ShortHelp() []key.Binding {
	return []key.Binding{m.keys.Down, m.keys.Monitor, m.keys.Approve, m.keys.Reject, m.keys.Run, m.keys.Cancel}
}

// FullHelp implements help.KeyMap.
func (m Model) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{m.keys.Up, m.keys.Down, m.keys.PageUp, m.keys.PageDown, m.keys.Top, m.keys.Bottom},
		{m.keys.Monitor, m.keys.Copy, m.keys.Approve, m.keys.Reject, m.keys.Run, m.keys.Cancel},
	}
}

// wrap breaks a line of the detail at w cells (at spaces where it can):
// the detail is where a row's whole text is read, so nothing is cut.
func wrap(s string, w int) string { return ansi.Wrap(s, w, "") }

// Abandon forgets the load in flight: its result will be ignored and the
// next Load starts a new one (the program stopped before it reported).
func (m *Model) Abandon() { m.load.Supersede() }
