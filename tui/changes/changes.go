// Package changes lists the local mirror of ServiceNow change requests.
// The mirror can hold 100k changes, so the list is virtual: it counts the
// matches, loads only a window of rows around what is visible (a page of
// LIMIT/OFFSET), and renders only the visible rows. "/" searches number,
// description and CI in the store.
package changes

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/common"
)

// Source is what the screen reads; *ops.Service implements it.
type Source interface {
	Changes(ctx context.Context, f ops.ChangeFilter) ([]ops.Change, error)
	CountChanges(ctx context.Context, f ops.ChangeFilter) (int, error)
}

// KeyMap is the screen's keys.
type KeyMap struct {
	common.NavKeys
	Open   key.Binding
	Active key.Binding
	Copy   key.Binding
}

// DefaultKeyMap returns the screen's keys.
func DefaultKeyMap() KeyMap {
	nav := common.DefaultNavKeys()
	nav.Top.SetHelp("g", "first")
	nav.Bottom.SetHelp("G", "last")
	return KeyMap{
		NavKeys: nav,
		Open:    key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "detail")),
		Active:  key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "active only")),
		Copy:    common.CopyKey(),
	}
}

// debounce is how long typing in the search waits before querying. It is
// short because a newer search cancels the query of an older one. One
// timer serves a burst of keystrokes: a key typed while it runs only
// moves the time it is due (searchTickMsg sets it again for the rest),
// so that a burst does not queue one message (and one frame) per key
// ahead of the query.
const debounce = 30 * time.Millisecond

type loadedMsg struct {
	gen   int
	start int
	rows  []ops.Change
	total int
	err   error
}

type searchTickMsg struct{ at time.Time }

func (loadedMsg) Target() common.Page     { return common.PageChanges }
func (searchTickMsg) Target() common.Page { return common.PageChanges }

// Model is the changes screen.
type Model struct {
	common common.Common
	src    Source
	keys   KeyMap
	filter common.Filter
	// query is the search the loaded rows match (the filter text after
	// the debounce).
	query  string
	active bool
	// typedAt is when the search text last changed; tickAt when the
	// debounce timer in flight fires (zero: none).
	typedAt time.Time
	tickAt  time.Time
	total   int
	start   int // index of rows[0]
	rows    []ops.Change
	cursor  int
	offset  int
	gen     int
	loading bool
	want    int // window start of the load in flight
	err     error
	loaded  bool
	// cancel stops the load in flight; a newer search supersedes it, and a
	// superseded query must not hold the store (or a core) any longer.
	cancel context.CancelFunc
}

// New builds the screen.
func New(c common.Common, src Source) Model {
	return Model{common: c, src: src, keys: DefaultKeyMap(), filter: common.NewFilter(c), want: -1}
}

// Init does nothing: the root loads the screen when shown.
func (m Model) Init() tea.Cmd { return nil }

func (m Model) listHeight() int {
	h := m.common.Height - 3 // header, footer summary, filter/blank
	return max(h, 1)
}

// Load reloads the window around the visible rows.
func (m *Model) Load() tea.Cmd {
	return m.loadWindow(true)
}

func (m *Model) loadWindow(force bool) tea.Cmd {
	h := m.listHeight()
	start := max(m.offset-h, 0)
	limit := 3 * h
	if !force {
		if m.offset >= m.start && min(m.offset+h, m.total) <= m.start+len(m.rows) {
			return nil // the visible rows are loaded
		}
		if m.loading && m.want == start {
			return nil
		}
	} else if m.loading {
		return nil
	}
	m.loading = true
	m.want = start
	m.gen++
	if m.cancel != nil {
		m.cancel()
	}
	ctx, cancel := m.common.Context()
	m.cancel = cancel
	src, gen := m.src, m.gen
	f := ops.ChangeFilter{Search: m.query, ActiveOnly: m.active, Limit: limit, Offset: start}
	return func() tea.Msg {
		defer cancel()
		// The count and the window are two scans of the search index: run
		// them side by side (two connections), not one after the other.
		type counted struct {
			n   int
			err error
		}
		count := make(chan counted, 1)
		go func() {
			n, err := src.CountChanges(ctx, ops.ChangeFilter{Search: f.Search, ActiveOnly: f.ActiveOnly})
			count <- counted{n, err}
		}()
		rows, err := src.Changes(ctx, f)
		total := <-count
		if total.err != nil {
			return loadedMsg{gen: gen, err: total.err}
		}
		return loadedMsg{gen: gen, start: start, rows: rows, total: total.n, err: err}
	}
}

// SetSize sets the screen's size.
func (m *Model) SetSize(w, h int) { m.common.Width, m.common.Height = w, h }

// Title names the screen.
func (m *Model) Title() string { return "Changes" }

// InputFocused reports whether the search is being typed.
func (m *Model) InputFocused() bool { return m.filter.Active() }

// Selected returns the change under the cursor, if loaded.
func (m Model) Selected() (ops.Change, bool) {
	i := m.cursor - m.start
	if i < 0 || i >= len(m.rows) {
		return ops.Change{}, false
	}
	return m.rows[i], true
}

func (m *Model) move(to int) tea.Cmd {
	m.cursor = common.Clamp(to, 0, m.total-1)
	m.offset = common.Window(m.offset, m.cursor, m.listHeight(), m.total)
	return m.loadWindow(false)
}

// Update handles messages.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case common.RefreshMsg:
		return m, m.Load()
	case loadedMsg:
		if msg.gen != m.gen {
			return m, nil // superseded (and cancelled)
		}
		m.loading, m.want, m.err = false, -1, msg.err
		if msg.err == nil {
			m.loaded = true
			m.total, m.start, m.rows = msg.total, msg.start, msg.rows
			m.cursor = common.Clamp(m.cursor, 0, m.total-1)
			m.offset = common.Window(m.offset, m.cursor, m.listHeight(), m.total)
			return m, m.loadWindow(false) // the cursor moved on while loading
		}
		return m, nil
	case searchTickMsg:
		m.tickAt = time.Time{}
		if due := m.typedAt.Add(debounce); msg.at.Before(due) {
			return m, m.tick(due.Sub(msg.at)) // typed on since it was set
		}
		if m.filter.Value() == m.query {
			return m, nil
		}
		m.query = m.filter.Value()
		m.cursor, m.offset = 0, 0
		m.loading = false // supersede the load in flight
		return m, m.Load()
	case tea.KeyMsg:
		var handled, changed bool
		var cmd tea.Cmd
		m.filter, handled, changed, cmd = m.filter.Update(msg)
		if changed {
			now := time.Now()
			m.typedAt = now
			// a timer that should long have fired was lost (the program
			// stopped): set another
			if !m.tickAt.IsZero() && now.Before(m.tickAt.Add(debounce)) {
				return m, cmd
			}
			return m, tea.Batch(cmd, m.tick(debounce))
		}
		if handled {
			return m, cmd
		}
		return m.handleKey(msg)
	}
	return m, nil
}

// tick sets the debounce timer to fire in d.
func (m *Model) tick(d time.Duration) tea.Cmd {
	m.tickAt = time.Now().Add(d)
	return tea.Tick(d, func(t time.Time) tea.Msg { return searchTickMsg{at: t} })
}

func (m Model) handleKey(msg tea.KeyMsg) (Model, tea.Cmd) {
	if to, ok := m.keys.Target(msg, m.cursor, m.total, m.listHeight()); ok {
		return m, m.move(to)
	}
	switch {
	case key.Matches(msg, m.keys.Active):
		m.active = !m.active
		m.cursor, m.offset = 0, 0
		m.loading = false
		return m, m.Load()
	case key.Matches(msg, m.keys.Open):
		c, ok := m.Selected()
		if !ok {
			return m, nil
		}
		if !strings.Contains(c.CorrelationID, ":u-") {
			return m, common.ShowRecord(Record(c)) // not daytwo's: the mirrored change in full
		}
		return m, common.Navigate(common.PageDetail, c.Number)
	case key.Matches(msg, m.keys.Copy):
		c, _ := m.Selected()
		return m, common.Copy(c.Number)
	}
	return m, nil
}

var columns = []common.Column{
	{Title: "NUMBER", Keep: 9},
	{Title: "TYPE", Keep: 3},
	{Title: "STATE", Keep: 5, Min: 5},
	{Title: "APPROVAL", Keep: 4, Min: 8},
	{Title: "CI", Keep: 7, Min: 8},
	{Title: "SHORT DESCRIPTION", Grow: true, Min: 10},
}

// Record is a mirrored change in full, for the record page.
func Record(c ops.Change) common.Record {
	return common.Record{Title: c.Number, ID: c.Number, Fields: []common.RecordField{
		{Label: "number", Value: c.Number},
		{Label: "type", Value: string(c.Type)},
		{Label: "state", Value: c.State.String()},
		{Label: "approval", Value: string(c.Approval)},
		{Label: "risk", Value: c.Risk},
		{Label: "CI", Value: c.CmdbCI},
		{Label: "group", Value: c.AssignmentGroup},
		{Label: "requested by", Value: c.RequestedBy},
		{Label: "window", Value: common.Timestamp(c.StartDate) + " – " + common.Timestamp(c.EndDate)},
		{Label: "description", Value: c.ShortDescription},
		{Label: "correlation", Value: c.CorrelationID},
		{Label: "close code", Value: c.CloseCode},
		{Label: "sys_id", Value: c.SysID},
		{Label: "updated", Value: common.Timestamp(c.SysUpdatedOn)},
	}}
}

// View renders only the visible rows.
func (m Model) View() string {
	s := m.common.Styles
	w, h := m.common.Width, m.common.Height
	listH := m.listHeight()
	var shown [][]string
	for i := m.offset; i < m.total && i < m.offset+listH; i++ {
		if j := i - m.start; j >= 0 && j < len(m.rows) {
			c := m.rows[j]
			shown = append(shown, []string{c.Number, string(c.Type), c.State.String(), common.Or(string(c.Approval), "—"), c.CmdbCI, c.ShortDescription})
		} else {
			shown = append(shown, nil)
		}
	}
	cols := common.Fitted(columns, shown, w)
	lines := make([]string, 0, h)
	lines = append(lines, s.Table.Header.Render(common.Header(cols)))
	switch {
	case m.err != nil:
		lines = append(lines, s.Status.Bad.Render("cannot read changes: "+m.err.Error()))
	case !m.loaded:
		lines = append(lines, s.Table.Empty.Render("loading…"))
	case m.total == 0 && m.query != "":
		lines = append(lines, s.Table.Empty.Render("no change matches "+m.query))
	case m.total == 0 && m.active:
		lines = append(lines, s.Table.Empty.Render("no active changes (a to show all)"))
	case m.total == 0:
		lines = append(lines, s.Table.Empty.Render("the mirror is empty: sync with S or run `daytwo sync`"))
	}
	for i := m.offset; i < m.total && i < m.offset+listH; i++ {
		var row string
		if cells := shown[i-m.offset]; cells != nil {
			row = common.Row(cols, cells)
		} else {
			row = s.Table.Empty.Render("…")
		}
		if i == m.cursor {
			row = s.Table.Selected.Render(common.PadRight(row, w))
		}
		lines = append(lines, row)
	}
	for len(lines) < h-2 {
		lines = append(lines, "")
	}
	lines = append(lines, m.filter.View())
	scope := "all"
	if m.active {
		scope = "active"
	}
	pos := 0
	if m.total > 0 {
		pos = m.cursor + 1
	}
	lines = append(lines, s.Status.Muted.Render(fmt.Sprintf("%d/%d %s changes in the mirror", pos, m.total, scope)))
	return common.Fit(strings.Join(lines, "\n"), w, h)
}

// ShortHelp implements help.KeyMap.
func (m Model) ShortHelp() []key.Binding {
	if m.filter.Active() {
		return []key.Binding{m.filter.Keys.Accept, m.filter.Keys.Clear}
	}
	return []key.Binding{m.keys.Open, m.filter.Keys.Start, m.keys.Active, m.keys.Copy, m.keys.PageDown}
}

// FullHelp implements help.KeyMap.
func (m Model) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{m.keys.Up, m.keys.Down, m.keys.PageUp, m.keys.PageDown, m.keys.Top, m.keys.Bottom},
		{m.keys.Open, m.filter.Keys.Start, m.filter.Keys.Clear, m.keys.Active, m.keys.Copy},
	}
}

// FilterValue is the filter text; esc clears it before going back.
func (m *Model) FilterValue() string { return m.filter.Value() }

// Settled reports that the rows shown are those of the search as typed:
// no debounce or load is pending.
func (m *Model) Settled() bool {
	return m.loaded && !m.loading && m.query == m.filter.Value()
}

// Querying reports whether a load (a search's count and window) is in
// flight.
func (m *Model) Querying() bool { return m.loading }

// Abandon forgets the load in flight: its result will be ignored and the
// next Load starts a new one (the program stopped before it reported).
func (m *Model) Abandon() { m.loading = false; m.gen++ }
