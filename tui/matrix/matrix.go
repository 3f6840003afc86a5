// Package matrix is the console's home screen: one row per service, one
// column per environment (stage), each cell the version that (service,
// stage) runs with its state as a glyph and, where there is room, a word
// (ops.EnvironmentStatus.Health: healthy, rolling out, rolled back, failed,
// drifted, pending, not deployed) and the promotion lag (↑N: the stage it promotes from
// has N newer successful versions). A configuration without services is
// one row. enter opens the cell's updates (its history), tab the
// environments screen on that cell, a its alerts. A cell with a firing
// Alertmanager alert carries ⚑. Stages that do not fit the terminal
// scroll sideways with the column cursor, the service column fixed.
package matrix

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/actions"
	"github.com/daytwo/daytwo/tui/common"
)

// Source is what the screen reads; *ops.Service implements it.
type Source interface {
	common.StatusSource
	actions.ReleaseHistory
	Alerts(ctx context.Context, prev ops.AlertBoard) (ops.AlertBoard, error)
}

// KeyMap is the screen's keys.
type KeyMap struct {
	common.NavKeys
	Left     key.Binding
	Right    key.Binding
	Open     key.Binding
	Envs     key.Binding
	Monitor  key.Binding
	Propose  key.Binding
	Rollback key.Binding
	Alerts   key.Binding
	Copy     key.Binding
}

// DefaultKeyMap returns the screen's default keys.
func DefaultKeyMap() KeyMap {
	nav := common.DefaultNavKeys()
	nav.Up.SetHelp("↑/k", "service up")
	nav.Down.SetHelp("↓/j", "service down")
	return KeyMap{
		NavKeys:  nav,
		Left:     key.NewBinding(key.WithKeys("left", "h"), key.WithHelp("←/h", "environment left")),
		Right:    key.NewBinding(key.WithKeys("right", "l"), key.WithHelp("→/l", "environment right")),
		Open:     key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "history")),
		Envs:     key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "environments")),
		Monitor:  key.NewBinding(key.WithKeys("m"), key.WithHelp("m", "monitor run")),
		Propose:  key.NewBinding(key.WithKeys("P"), key.WithHelp("P", "propose ⚠")),
		Rollback: key.NewBinding(key.WithKeys("B"), key.WithHelp("B", "roll back ⚠")),
		Alerts:   key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "alerts")),
		Copy:     common.CopyKey(),
	}
}

type loadedMsg struct {
	gen  int
	envs []ops.EnvironmentStatus
	open []ops.UpdateStatus
	err  error
}

func (loadedMsg) Target() common.Page { return common.PageMatrix }

// alertsMsg carries the alerts read beside the statuses (their own load:
// the first frame does not wait for the audit log).
type alertsMsg struct {
	gen   int
	board ops.AlertBoard
	err   error
}

func (alertsMsg) Target() common.Page { return common.PageMatrix }

// glyphs say a cell's state (ops.EnvironmentStatus.Health, what `daytwo
// service list` prints) without colour (theme none); the legend under the
// matrix names them.
var glyphs = map[ops.Health]string{
	ops.HealthRollingOut: "●", ops.HealthRolledBack: "↺", ops.HealthFailed: "✗", ops.HealthDrifted: "≠",
	ops.HealthPending: "◷", ops.HealthOK: "✓", ops.HealthNever: "○",
}

// Legend names every glyph of the matrix; ShortLegend fits 80 columns.
// While an alert fires the legend names its mark too (AlertLegend,
// AlertShortLegend).
const (
	Legend           = "✓ healthy  ● rolling out  ↺ rolled back  ✗ failed  ≠ drifted  ◷ pending change  ○ not deployed  ↑N behind its source"
	ShortLegend      = "✓healthy ●rolling ↺rolled back ✗failed ≠drifted ◷pending ○not deployed ↑N behind"
	AlertLegend      = Legend + "  ⚑ alert firing (a)"
	AlertShortLegend = "✓healthy ●rolling ↺rolled back ✗failed ≠drifted ◷pending ○none ↑N behind ⚑alert"
)

// alertMark is the mark of a cell with firing alerts.
const alertMark = "⚑"

// cell is one (service, stage) as rendered: its plain text in both widths
// and the styled text, computed once per load.
type cell struct {
	env     int // index in Model.envs, -1: the service does not run here
	state   ops.Health
	compact string
	wide    string
	// styled variants (the state's colour; a lag in the behind colour)
	compactStyled string
	wideStyled    string
}

type row struct {
	service string // ops.Environment.Service
	label   string
	cells   []cell // one per stage
}

// Model is the services × environments screen.
type Model struct {
	common common.Common
	src    Source
	acts   actions.Service
	keys   KeyMap
	envs   []ops.EnvironmentStatus
	open   map[string]*ops.UpdateStatus // unit key → its newest open update
	stages []string
	rows   []row
	// visible are the rows the filter keeps (indexes into rows), best
	// match first.
	visible []int
	cursor  int // in visible
	col     int // in stages
	offset  int // first visible row shown
	filter  common.Filter
	load    common.Loader
	err     error
	// want is a "service", "service/stage" or a pair's key to select
	// once loaded.
	want string
	// firing are the firing alerts by pair (unit key), from board, read
	// by their own load.
	board     ops.AlertBoard
	firing    map[string][]ops.AlertStatus
	alertLoad common.Loader
	// layout, recomputed on load, resize and filter change: ws are the
	// service's and every stage's widths, cols the columns shown (colStage
	// says what each is: a stage's index, or colService, colLeft,
	// colRight) from stage first on (the matrix scrolls sideways when the
	// stages do not fit).
	ws       []int
	cols     []common.Column
	colStage []int
	first    int
	wide     bool
}

// New builds the screen.
func New(c common.Common, src Source, acts actions.Service) Model {
	m := Model{common: c, src: src, acts: acts, keys: DefaultKeyMap(), filter: common.NewFilter(c)}
	m.updateKeys()
	return m
}

// Init does nothing: the root loads the screen.
func (m Model) Init() tea.Cmd { return nil }

// Load starts a (re)load unless one is in flight.
func (m *Model) Load() tea.Cmd {
	src := m.src
	statuses := m.load.Load(m.common, func(ctx context.Context, gen int) tea.Msg {
		envs, open, err := common.ReadStatuses(ctx, src)
		return loadedMsg{gen: gen, envs: envs, open: open, err: err}
	})
	prev := m.board
	alerts := m.alertLoad.Load(m.common, func(ctx context.Context, gen int) tea.Msg {
		b, err := src.Alerts(ctx, prev)
		return alertsMsg{gen: gen, board: b, err: err}
	})
	return tea.Batch(statuses, alerts)
}

// SetSize sets the screen's size.
func (m *Model) SetSize(w, h int) {
	m.common.Width, m.common.Height = w, h
	m.relayout()
}

// Title names the screen.
func (m *Model) Title() string { return "Services" }

// InputFocused reports whether the filter is being typed.
func (m *Model) InputFocused() bool { return m.filter.Active() }

// FilterValue is the filter's text (esc clears it before it goes back).
func (m *Model) FilterValue() string { return m.filter.Value() }

// Abandon forgets the loads in flight.
func (m *Model) Abandon() {
	m.load.Supersede()
	m.alertLoad.Supersede()
}

// Selected returns the cell under the cursor: false when there is none
// or the service does not run in that stage.
func (m Model) Selected() (ops.EnvironmentStatus, bool) {
	c, ok := m.selectedCell()
	if !ok || c.env < 0 {
		return ops.EnvironmentStatus{}, false
	}
	return m.envs[c.env], true
}

func (m Model) selectedCell() (cell, bool) {
	if m.cursor < 0 || m.cursor >= len(m.visible) {
		return cell{}, false
	}
	r := m.rows[m.visible[m.cursor]]
	if m.col < 0 || m.col >= len(r.cells) {
		return cell{}, false
	}
	return r.cells[m.col], true
}

// Column is the column cursor: the index of the selected stage.
func (m Model) Column() int { return m.col }

// SelectedService is the service of the row under the cursor.
func (m Model) SelectedService() (string, bool) {
	if m.cursor < 0 || m.cursor >= len(m.visible) {
		return "", false
	}
	return m.rows[m.visible[m.cursor]].label, true
}

// SelectWhenLoaded moves the cursor to a service (exact name, then
// prefix, then the best fuzzy match) and, after a "/", to a stage (exact,
// then prefix), now if the screen has loaded, else once it has. It
// reports false when the screen has loaded and nothing matches.
func (m *Model) SelectWhenLoaded(arg string) bool {
	if arg == "" {
		return true
	}
	m.want = arg
	if len(m.rows) == 0 {
		return true
	}
	return m.applyWant()
}

func (m *Model) applyWant() bool {
	if m.selectUnit(m.want) {
		m.want = ""
		return true
	}
	svc, stage, _ := strings.Cut(m.want, "/")
	m.want = ""
	ri := m.findService(svc)
	if ri < 0 {
		return false
	}
	if m.filter.Value() != "" { // a filter must not hide it
		m.filter = common.NewFilter(m.common)
		m.applyFilter()
	}
	m.cursor = slices.Index(m.visible, ri)
	if stage != "" {
		si := slices.Index(m.stages, stage)
		if si < 0 {
			si = slices.IndexFunc(m.stages, func(s string) bool { return strings.HasPrefix(s, stage) })
		}
		if si < 0 {
			return false
		}
		m.col = si
		m.window()
	}
	m.scroll()
	m.updateKeys()
	return true
}

// selectUnit moves the cursor to the cell of the pair whose key is unit;
// false when no cell is.
func (m *Model) selectUnit(unit string) bool {
	for ri, r := range m.rows {
		for ci, c := range r.cells {
			if c.env < 0 || m.envs[c.env].Environment.Name != unit {
				continue
			}
			if m.filter.Value() != "" { // a filter must not hide it
				m.filter = common.NewFilter(m.common)
				m.applyFilter()
			}
			m.cursor, m.col = slices.Index(m.visible, ri), ci
			m.window()
			m.scroll()
			m.updateKeys()
			return true
		}
	}
	return false
}

// findService is the row of name: exact, unique prefix, then best fuzzy
// match; -1 when none matches.
func (m Model) findService(name string) int {
	if i := slices.IndexFunc(m.rows, func(r row) bool { return r.label == name }); i >= 0 {
		return i
	}
	var pre []int
	for i, r := range m.rows {
		if strings.HasPrefix(r.label, name) {
			pre = append(pre, i)
		}
	}
	if len(pre) > 0 {
		return pre[0]
	}
	if best := common.FuzzyRank(name, len(m.rows), func(i int) string { return m.rows[i].label }); len(best) > 0 {
		return best[0]
	}
	return -1
}

// Candidate is the version a proposal for unit suggests: what the unit
// it promotes from runs now ("" when it promotes from none).
func (m Model) Candidate(unit string) string { return common.Candidate(m.envs, unit) }

func (m *Model) updateKeys() {
	st, ok := m.Selected()
	typing := m.filter.Active()
	m.keys.Open.SetEnabled(ok && !typing)
	m.keys.Envs.SetEnabled(!typing)
	m.keys.Propose.SetEnabled(ok && !m.common.ReadOnly)
	m.keys.Rollback.SetEnabled(ok && !m.common.ReadOnly && st.Current.Version != "")
	m.keys.Monitor.SetEnabled(ok && st.Running != nil)
	m.keys.Copy.SetEnabled(ok)
	m.keys.Alerts.SetEnabled(ok && !typing)
	m.keys.Left.SetEnabled(len(m.stages) > 1)
	m.keys.Right.SetEnabled(len(m.stages) > 1)
}

// Update handles messages.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case common.RefreshMsg:
		return m, m.Load()
	case loadedMsg:
		if !m.load.Done(msg.gen) {
			return m, nil // stale
		}
		m.err = msg.err
		var cmd tea.Cmd
		if msg.err == nil {
			m.build(msg.envs, msg.open)
			if m.want != "" {
				want := m.want
				if !m.applyWant() {
					cmd = common.Flash(common.LevelWarn, "no service matches "+want)
				}
			}
		}
		m.updateKeys()
		return m, cmd
	case alertsMsg:
		if !m.alertLoad.Done(msg.gen) {
			return m, nil // stale
		}
		if msg.err != nil {
			m.common.Logger.Debug("matrix: alerts not read", "err", msg.err)
			return m, nil
		}
		m.board = msg.board
		m.firing = map[string][]ops.AlertStatus{}
		for _, a := range m.board.Alerts {
			if a.Firing() {
				m.firing[a.Environment] = append(m.firing[a.Environment], a)
			}
		}
		m.remake()
		return m, nil
	case tea.KeyMsg:
		var handled, changed bool
		var cmd tea.Cmd
		m.filter, handled, changed, cmd = m.filter.Update(msg)
		if changed {
			m.applyFilter()
		}
		if handled {
			m.updateKeys()
			return m, cmd
		}
		m, cmd = m.handleKey(msg)
		m.updateKeys()
		return m, cmd
	}
	return m, nil
}

func (m Model) handleKey(msg tea.KeyMsg) (Model, tea.Cmd) {
	if to, ok := m.keys.Move(msg, m.cursor, len(m.visible), m.listHeight()); ok {
		m.cursor = to
		m.scroll()
		return m, nil
	}
	switch {
	case key.Matches(msg, m.keys.Left):
		m.col = common.Clamp(m.col-1, 0, len(m.stages)-1)
		m.window()
		return m, nil
	case key.Matches(msg, m.keys.Right):
		m.col = common.Clamp(m.col+1, 0, len(m.stages)-1)
		m.window()
		return m, nil
	case key.Matches(msg, m.keys.Envs):
		st, _ := m.Selected()
		return m, common.Navigate(common.PageEnvironments, st.Environment.Name)
	}
	st, ok := m.Selected()
	if !ok {
		if key.Matches(msg, m.keys.Open) {
			if svc, ok := m.SelectedService(); ok && m.col < len(m.stages) {
				return m, common.Flash(common.LevelWarn, svc+" does not run in "+m.stages[m.col])
			}
		}
		return m, nil
	}
	switch {
	case key.Matches(msg, m.keys.Open):
		return m, common.Navigate(common.PageUpdates, st.Environment.Name)
	case key.Matches(msg, m.keys.Monitor):
		return m, common.Navigate(common.PageMonitor, st.Running.ID)
	case key.Matches(msg, m.keys.Alerts):
		return m, common.Navigate(common.PageAlerts, st.Environment.Name)
	case key.Matches(msg, m.keys.Propose):
		return m, common.Act(actions.Propose(m.acts, st.Environment, "", m.Candidate(st.Environment.Name), nil))
	case key.Matches(msg, m.keys.Rollback):
		// The pair's history names the version it returns to (read in a
		// command: the dialog opens once it is known).
		return m, actions.RollbackFromHistory(m.common, m.src, m.acts, st.Environment)
	case key.Matches(msg, m.keys.Copy):
		return m, common.Copy(st.Environment.Name)
	}
	return m, nil
}

// build groups the statuses by service (rows in configuration order) and
// stage (columns: the distinct stages in configuration order), keeping
// the cursor on the same cell.
func (m *Model) build(envs []ops.EnvironmentStatus, open []ops.UpdateStatus) {
	selSvc, hadSel := m.SelectedService()
	selStage := ""
	if m.col < len(m.stages) {
		selStage = m.stages[m.col]
	}
	m.envs = envs
	m.open = make(map[string]*ops.UpdateStatus, len(open))
	for i := range open { // newest first: keep the first
		if _, ok := m.open[open[i].Update.Environment]; !ok {
			m.open[open[i].Update.Environment] = &open[i]
		}
	}
	svcIdx := map[string]int{}
	var rows []row
	perService := map[string][]string{} // each service's stages, in order
	for _, e := range envs {
		if _, ok := svcIdx[e.Environment.Service]; !ok {
			svcIdx[e.Environment.Service] = len(rows)
			rows = append(rows, row{service: e.Environment.Service})
		}
		perService[e.Environment.Service] = append(perService[e.Environment.Service], e.Environment.StageName())
	}
	m.stages = mergeStages(rows, perService)
	stageIdx := make(map[string]int, len(m.stages))
	for i, st := range m.stages {
		stageIdx[st] = i
	}
	for ri := range rows {
		rows[ri].cells = make([]cell, len(m.stages))
		for c := range rows[ri].cells {
			rows[ri].cells[c] = cell{env: -1}
		}
	}
	for i, e := range envs {
		r := &rows[svcIdx[e.Environment.Service]]
		r.cells[stageIdx[e.Environment.StageName()]] = m.makeCell(i)
		if r.label == "" {
			r.label = e.Environment.Service
		}
		if r.label == "" && e.Environment.Change.CmdbCI != "" {
			r.label = e.Environment.Change.CmdbCI // the implicit service is named after its CI
		}
	}
	for i := range rows {
		if rows[i].label == "" {
			rows[i].label = "default"
		}
	}
	m.rows = rows
	m.applyFilter()
	if hadSel {
		if ri := slices.IndexFunc(m.rows, func(r row) bool { return r.label == selSvc }); ri >= 0 {
			if vi := slices.Index(m.visible, ri); vi >= 0 {
				m.cursor = vi
			}
		}
		if si := slices.Index(m.stages, selStage); si >= 0 {
			m.col = si
		}
	}
	m.col = common.Clamp(m.col, 0, len(m.stages)-1)
	m.relayout()
	m.scroll()
}

// remake renders every cell again (the alerts changed) and lays the
// columns out for them.
func (m *Model) remake() {
	for ri := range m.rows {
		for ci, c := range m.rows[ri].cells {
			if c.env >= 0 {
				m.rows[ri].cells[ci] = m.makeCell(c.env)
			}
		}
	}
	m.relayout()
}

// mergeStages orders the stages of every service into one list of
// columns, keeping each service's configuration order: a stage first seen
// in a later service goes before the next stage that service lists after
// it (checkout: staging, production; search: dev, staging → dev, staging,
// production), else last.
func mergeStages(rows []row, perService map[string][]string) []string {
	var out []string
	for _, r := range rows {
		list := perService[r.service]
		for i, st := range list {
			if slices.Contains(out, st) {
				continue
			}
			at := len(out)
			for _, later := range list[i+1:] {
				if j := slices.Index(out, later); j >= 0 {
					at = j
					break
				}
			}
			out = slices.Insert(out, at, st)
		}
	}
	return out
}

func (m Model) stateStyle(st ops.Health) lipgloss.Style {
	s := m.common.Styles
	switch st {
	case ops.HealthRollingOut:
		return s.Badge.Running
	case ops.HealthRolledBack, ops.HealthFailed:
		return s.Status.Bad
	case ops.HealthDrifted:
		return s.Badge.Drift
	case ops.HealthPending:
		return s.Status.Pending
	case ops.HealthOK:
		return s.Status.OK
	}
	return s.Status.Muted
}

// makeCell renders envs[i] compact ("✓ 1.4.2 ↑1") and wide ("✓ 1.4.2
// healthy ↑1 1.5.0 ready").
func (m Model) makeCell(i int) cell {
	e := m.envs[i]
	st := e.Health()
	c := cell{env: i, state: st}
	ver := common.Or(e.Current.Version, "—")
	var next string
	word := string(st)
	if u := m.open[e.Environment.Name]; u != nil {
		next = u.Update.Version
		if st == ops.HealthPending {
			word = strings.ReplaceAll(string(u.Update.State), "_", " ")
		}
	}
	switch st {
	case ops.HealthDrifted:
		word = fmt.Sprintf("drifted (%d)", e.Drifted)
	case ops.HealthFailed, ops.HealthRolledBack:
		next = "" // the open update, if any, shows in the summary
	}
	head := glyphs[st] + " " + ver
	if next != "" && next != e.Current.Version && (st == ops.HealthRollingOut || st == ops.HealthPending) {
		head += "→" + next
	}
	var lagC, lagW string
	if n := len(e.Behind); n > 0 {
		lagC = fmt.Sprintf("↑%d", n)
		lagW = fmt.Sprintf("↑%d %s ready", n, e.Behind[n-1])
	}
	style := m.stateStyle(st)
	behind := m.common.Styles.Badge.Behind
	join := func(a, b string) string {
		if b == "" {
			return a
		}
		return a + " " + b
	}
	c.compact = join(head, lagC)
	c.wide = join(head+" "+word, lagW)
	c.compactStyled = join(style.Render(head), behind.Render(lagC))
	if lagC == "" {
		c.compactStyled = style.Render(head)
	}
	c.wideStyled = join(style.Render(head+" "+word), behind.Render(lagW))
	if lagW == "" {
		c.wideStyled = style.Render(head + " " + word)
	}
	if n := len(m.firing[e.Environment.Name]); n > 0 {
		markC, markW := alertMark, alertMark+" alert"
		if n > 1 {
			markC, markW = fmt.Sprintf("%s%d", alertMark, n), fmt.Sprintf("%s %d alerts", alertMark, n)
		}
		alert := m.common.Styles.Badge.Alert
		c.compact, c.wide = join(c.compact, markC), join(c.wide, markW)
		c.compactStyled, c.wideStyled = join(c.compactStyled, alert.Render(markC)), join(c.wideStyled, alert.Render(markW))
	}
	return c
}

func (m *Model) applyFilter() {
	m.visible = common.FuzzyRank(m.filter.Value(), len(m.rows), func(i int) string { return m.rows[i].label })
	m.cursor = common.Clamp(m.cursor, 0, len(m.visible)-1)
	m.relayout()
	m.scroll()
}

// relayout sizes the columns to the visible rows: wide cells (with the
// state in words) when every stage fits the terminal that way, compact
// ones otherwise; then window picks the stages shown.
func (m *Model) relayout() {
	if len(m.stages) == 0 {
		m.cols, m.colStage = nil, nil
		return
	}
	titles := make([]string, len(m.stages)+1)
	titles[0] = "SERVICE"
	copy(titles[1:], m.stages) // as written: the name operators type
	widths := func(wide bool) []int {
		out := make([]int, len(titles))
		for i, t := range titles {
			out[i] = lipgloss.Width(t)
		}
		for _, ri := range m.visible {
			r := m.rows[ri]
			out[0] = max(out[0], lipgloss.Width(r.label)+2)
			for j, c := range r.cells {
				txt := c.compact
				if wide {
					txt = c.wide
				}
				out[j+1] = max(out[j+1], lipgloss.Width(txt)+2) // " x " or "[x]"
			}
		}
		return out
	}
	ws := widths(true)
	n := len(ws) - 1
	for _, x := range ws {
		n += x
	}
	m.wide = n <= m.common.Width
	if !m.wide {
		ws = widths(false)
	}
	m.ws = ws
	m.window()
}

// moreLeft and moreRight say how many stages are off screen on each side
// (the header's first and last stage titles while the matrix scrolls).
func moreLeft(n int) string  { return fmt.Sprintf("‹ %d more", n) }
func moreRight(n int) string { return fmt.Sprintf("%d more ›", n) }

// Column kinds in colStage besides a stage's index.
const (
	colService = -1
	colLeft    = -2 // "‹ N more"
	colRight   = -3 // "N more ›"
)

// window lays out the stages shown: all of them when they fit, else the
// widest run of stages around the cursor's column that fits beside the
// service column (which stays), with the count of stages off screen on
// either side. Moving the column cursor scrolls the run; a stage too wide
// even alone is cut.
func (m *Model) window() {
	w, n, ws := m.common.Width, len(m.stages), m.ws
	if n == 0 || len(ws) != n+1 {
		return
	}
	fits := func(first, last int) bool {
		used := ws[0]
		for i := first; i < last; i++ {
			used += 1 + ws[i+1]
		}
		if first > 0 {
			used += 1 + lipgloss.Width(moreLeft(first))
		}
		if last < n {
			used += 1 + lipgloss.Width(moreRight(n-last))
		}
		return used <= w
	}
	first, last := 0, n
	if !fits(0, n) {
		col := common.Clamp(m.col, 0, n-1)
		first = common.Clamp(m.first, 0, col)
		for first < col && !fits(first, col+1) {
			first++
		}
		last = col + 1
		for last < n && fits(first, last+1) {
			last++
		}
		for first > 0 && fits(first-1, last) { // room on the left (a wider terminal)
			first--
		}
	}
	m.first = first
	cols := []common.Column{{Title: "SERVICE", Width: ws[0], Keep: 9, Min: 8}}
	kinds := []int{colService}
	if first > 0 {
		t := moreLeft(first)
		cols = append(cols, common.Column{Title: t, Width: lipgloss.Width(t), Keep: 1, Min: 1})
		kinds = append(kinds, colLeft)
	}
	for i := first; i < last; i++ {
		cols = append(cols, common.Column{Title: m.stages[i], Width: ws[i+1], Keep: 5, Min: 6})
		kinds = append(kinds, i)
	}
	if last < n {
		t := moreRight(n - last)
		cols = append(cols, common.Column{Title: t, Width: lipgloss.Width(t), Keep: 1, Min: 1})
		kinds = append(kinds, colRight)
	}
	used := len(cols) - 1
	for _, c := range cols {
		used += c.Width
	}
	switch spare := w - used; {
	case spare < 0:
		// Fitted's shrinking, on widths already known.
		rows := [][]string{make([]string, len(cols))}
		for i := range cols {
			rows[0][i] = strings.Repeat(" ", cols[i].Width)
		}
		cols = common.Fitted(cols, rows, w)
	case last < n:
		// The stages off screen on the right are said at the right edge.
		r := &cols[len(cols)-1]
		r.Width += spare
		r.Title = strings.Repeat(" ", spare) + r.Title
	case spare > 0:
		each := min(spare/(last-first), 16)
		for i, k := range kinds {
			if k >= 0 {
				cols[i].Width += each
			}
		}
	}
	m.cols, m.colStage = cols, kinds
}

// fixed are the lines around the rows: the header, the filter line and
// the legend.
func (m Model) fixed() int {
	n := 2
	if m.filter.View() != "" {
		n++
	}
	return n
}

// listHeight is how many rows the matrix shows: every row while they fit
// with one line of the selected cell's summary, else what is left (the
// rows scroll).
func (m Model) listHeight() int {
	return max(min(len(m.visible), m.common.Height-m.fixed()-1), 1)
}

// scroll keeps the cursor's row on screen.
func (m *Model) scroll() {
	m.offset = common.Window(m.offset, m.cursor, m.listHeight(), len(m.visible))
}

// View renders the screen.
func (m Model) View() string {
	s := m.common.Styles
	w, h := m.common.Width, m.common.Height
	var lines []string
	if len(m.cols) > 0 {
		lines = append(lines, s.Table.Header.Render(common.Header(m.cols)))
	} else {
		lines = append(lines, s.Table.Header.Render("SERVICE"))
	}
	if f := m.filter.View(); f != "" {
		lines = append(lines, f)
	}
	switch {
	case m.err != nil && len(m.rows) == 0:
		lines = append(lines, s.Status.Bad.Render("cannot read environments: "+m.err.Error()))
	case len(m.rows) == 0 && m.load.Loading():
		lines = append(lines, s.Table.Empty.Render("loading…"))
	case len(m.rows) == 0:
		lines = append(lines, s.Table.Empty.Render("no environments configured"))
	case len(m.visible) == 0:
		lines = append(lines, s.Table.Empty.Render("no service matches the filter"))
	}
	listH := m.listHeight()
	off := common.Window(m.offset, m.cursor, listH, len(m.visible))
	for vi := off; vi < len(m.visible) && vi < off+listH; vi++ {
		lines = append(lines, m.renderRow(vi))
	}
	// The selected cell in words: a blank line first when there is room
	// for more than its first line.
	summary := m.summary()
	room := h - len(lines) - 1 // the legend after
	if room > 2 && len(summary) > 1 {
		lines = append(lines, "")
		room--
	}
	lines = append(lines, summary[:min(len(summary), max(room, 0))]...)
	for len(lines) < h-1 {
		lines = append(lines, "")
	}
	legend, short := Legend, ShortLegend
	if len(m.firing) > 0 {
		legend, short = AlertLegend, AlertShortLegend
	}
	if lipgloss.Width(legend) > w {
		legend = short
	}
	lines = append(lines[:min(len(lines), h-1)], s.Help.Render(common.Truncate(legend, w)))
	return common.Fit(strings.Join(lines, "\n"), w, h)
}

func (m Model) renderRow(vi int) string {
	s := m.common.Styles
	r := m.rows[m.visible[vi]]
	sel := vi == m.cursor
	var b strings.Builder
	for i, c := range m.cols {
		if i > 0 {
			b.WriteByte(' ')
		}
		switch k := m.colStage[i]; {
		case k == colService:
			label := "  " + r.label
			if sel {
				label = "▸ " + r.label
				b.WriteString(s.Table.Selected.Render(common.PadRight(label, c.Width)))
				continue
			}
			b.WriteString(common.PadRight(label, c.Width))
		case k < 0: // a column saying what is off screen
			b.WriteString(strings.Repeat(" ", c.Width))
		default:
			cl := r.cells[k]
			plain, styled := cl.compact, cl.compactStyled
			if m.wide {
				plain, styled = cl.wide, cl.wideStyled
			}
			if sel && k == m.col {
				b.WriteString(s.Table.Selected.Render(common.PadRight("["+plain+"]", c.Width)))
				continue
			}
			b.WriteString(common.PadRight(" "+styled+" ", c.Width))
		}
	}
	return b.String()
}

// summary is the selected cell in words, one fact a line: what it runs
// and its state, the open update and its change, the promotion lag, drift,
// the last run, the gate, the lease and alerts.
func (m Model) summary() []string {
	s := m.common.Styles
	w := m.common.Width
	cl, ok := m.selectedCell()
	if !ok {
		return nil
	}
	if cl.env < 0 {
		svc, _ := m.SelectedService()
		return []string{s.Table.Empty.Render(common.Truncate(svc+" does not run in "+m.stages[m.col], w))}
	}
	e := m.envs[cl.env]
	label := m.common.Fact
	rel := "nothing released yet"
	if e.Current.Version != "" {
		rel = e.Current.Version + " since " + common.Timestamp(e.Current.CreatedAt)
	}
	name := e.Environment.Name
	if svc, _ := m.SelectedService(); name != ops.UnitKey(svc, m.stages[m.col]) {
		name = svc + " · " + name // a key without the service (the implicit one, inherited history)
	}
	title := name + "  " + glyphs[cl.state] + " " + string(cl.state) + " · " + rel
	out := []string{common.Truncate(s.Section.Title.Render(title), w)}
	out = append(out, m.alertLines(e.Environment.Name)...)
	if u := m.open[e.Environment.Name]; u != nil {
		up := u.Update.ID + " " + common.Or(u.Update.FromVersion, "(nothing)") + " → " + u.Update.Version + " " + string(u.Update.State)
		if u.Update.ChangeNumber != "" {
			up += " · " + u.Update.ChangeNumber
		}
		if u.GateText != "" && !strings.HasPrefix(u.GateText, string(u.Update.State)) {
			up += " · " + u.GateText
		}
		out = append(out, label("open", up))
	} else if e.Pending > 0 {
		out = append(out, label("open", fmt.Sprintf("%d pending update(s)", e.Pending)))
	}
	if e.Environment.PromoteFrom != "" {
		behind := "up to date with " + e.Environment.PromoteFrom
		if n := len(e.Behind); n > 0 {
			behind = fmt.Sprintf("%s has %d newer: %s (P to promote %s)", e.Environment.PromoteFrom, n, strings.Join(e.Behind, ", "), e.Behind[n-1])
		}
		out = append(out, label("promotion", behind))
	}
	if e.Drifted > 0 {
		out = append(out, label("drift", fmt.Sprintf("%d target(s) disagree with %s", e.Drifted, common.Or(e.Current.Version, "the release"))))
	}
	if e.Running != nil {
		out = append(out, label("running", e.Running.ID+" "+string(e.Running.Kind)+" started "+common.Timestamp(e.Running.StartedAt)+" — m to monitor"))
	} else if e.LastResult != "" {
		out = append(out, label("last run", string(e.LastResult)))
	}
	gate := common.GateWords(e.Environment)
	out = append(out, label("gate", gate))
	if e.Lease != nil {
		out = append(out, label("lease", e.Lease.Holder))
	}
	if n := len(e.Alerts); n > 0 {
		out = append(out, common.Truncate(s.Badge.Alert.Render(fmt.Sprintf("%d policy alert(s)", n))+": "+e.Alerts[0].Policy, w))
	}
	out = append(out, s.Help.Render(common.Truncate(fmt.Sprintf("%d target(s) · enter: history & updates · tab: environments list", len(e.Environment.Targets)), w)))
	return out
}

// alertLines are a pair's firing alerts, one a line (the first two, then
// how many more): since when, the summary and the incident it opened.
func (m Model) alertLines(unit string) []string {
	s := m.common.Styles
	w := m.common.Width
	firing := m.firing[unit]
	var out []string
	for i, a := range firing {
		if i == 2 {
			out = append(out, common.Truncate(s.Badge.Alert.Render(fmt.Sprintf("%-10s", "")+" ")+s.Help.Render(fmt.Sprintf("%d more — a: alerts", len(firing)-2)), w))
			break
		}
		txt := a.Name + " · no incident"
		if inc := common.IncidentText(a); inc != "—" {
			txt = a.Name + " · incident " + inc
		}
		txt += " · since " + common.Timestamp(a.StartsAt)
		if sum := a.Summary(); sum != "" {
			txt += " · " + sum
		}
		out = append(out, common.Truncate(s.Badge.Alert.Render(fmt.Sprintf("%-10s", alertMark+" alert")+" ")+s.Section.Value.Render(txt), w))
	}
	return out
}

// ShortHelp implements help.KeyMap.
func (m Model) ShortHelp() []key.Binding {
	if st, ok := m.Selected(); ok && len(m.firing[st.Environment.Name]) > 0 { // the way to the cell's alerts first
		return []key.Binding{m.keys.Alerts, m.keys.Open, m.keys.Envs, m.filter.Keys.Start, m.keys.Propose, m.keys.Monitor, m.keys.Copy}
	}
	return []key.Binding{m.keys.Open, m.keys.Envs, m.filter.Keys.Start, m.keys.Propose, m.keys.Monitor, m.keys.Copy}
}

// FullHelp implements help.KeyMap.
func (m Model) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{m.keys.Up, m.keys.Down, m.keys.Left, m.keys.Right, m.keys.PageUp, m.keys.PageDown, m.keys.Top, m.keys.Bottom},
		{m.keys.Open, m.keys.Envs, m.filter.Keys.Start, m.filter.Keys.Clear, m.keys.Monitor, m.keys.Propose, m.keys.Rollback, m.keys.Alerts, m.keys.Copy},
	}
}
