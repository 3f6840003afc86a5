// Package common holds what every screen of the console shares: the
// Common struct (size, styles, logger, clock, read-only flag), the
// messages screens send to the root (navigation, flash, actions, refresh)
// and small rendering helpers that compute nothing from the terminal.
package common

import (
	"context"
	"log/slog"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/styles"
)

// Common is passed by value to every component: the styles, logger and
// clock are shared pointers, the size is each component's own.
type Common struct {
	// Ctx is cancelled when the console exits; commands derive their
	// per-call contexts from it.
	Ctx    context.Context
	Styles *styles.Styles
	Logger *slog.Logger
	// Now is the clock used for elapsed and relative times (fixed in
	// tests). It is only read while rendering durations, never for I/O.
	Now func() time.Time
	// ReadOnly disables every dangerous action.
	ReadOnly bool
	// Timeout bounds every store read a screen issues.
	Timeout time.Duration
	// Banner is what the console was started with to show on the
	// connection screen (the demo's config path and CLI hint), or "".
	Banner string
	Width  int
	Height int
}

// Context returns a context bounded by the read timeout.
func (c Common) Context() (context.Context, context.CancelFunc) {
	ctx := c.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	d := c.Timeout
	if d <= 0 {
		d = 10 * time.Second
	}
	return context.WithTimeout(ctx, d)
}

// Component is what the root model routes to: a screen with help, a size
// and a title for the breadcrumbs.
type Component interface {
	help.KeyMap
	View() string
	SetSize(width, height int)
	// Title names the screen in the breadcrumbs.
	Title() string
	// InputFocused reports whether a text input has focus (then q and the
	// global single-letter keys are typed, not interpreted).
	InputFocused() bool
}

// Page identifies a screen.
type Page int

// The screens.
const (
	PageEnvironments Page = iota
	PageUpdates
	PageChanges
	PageDetail
	PageMonitor
	PageAudit
	PageOutbox
	PageRecord
	// PageMatrix is the home screen: services × environments.
	PageMatrix
	// PageAlerts lists the alerts Alertmanager sent.
	PageAlerts
)

// String names the page.
func (p Page) String() string {
	switch p {
	case PageEnvironments:
		return "environments"
	case PageUpdates:
		return "updates"
	case PageChanges:
		return "changes"
	case PageDetail:
		return "detail"
	case PageMonitor:
		return "monitor"
	case PageAudit:
		return "audit"
	case PageOutbox:
		return "outbox"
	case PageRecord:
		return "record"
	case PageMatrix:
		return "services"
	case PageAlerts:
		return "alerts"
	default:
		return "page"
	}
}

// NavigateMsg asks the root to show a page, pushing it on the navigation
// stack. Arg is page specific: an environment for updates, an update id or
// change number for detail, a run id for the monitor, a service (or a
// "service/stage" cell, or a pair's key) for the services matrix, an
// environment (or "" for all) for the alerts.
type NavigateMsg struct {
	Page Page
	Arg  string
	// Select, when set, is the row (an update id) the cursor lands on once
	// the page has loaded: the row an action just created.
	Select string
	// Record is what the record page shows (PageRecord only).
	Record *Record
}

// Field of a record: a label and its whole value.
type RecordField struct {
	Label string
	Value string
}

// Record is one row in full: what a table cut short, shown by the record
// page (enter on any row).
type Record struct {
	Title string
	// ID is what y copies on the record page.
	ID     string
	Fields []RecordField
}

// ShowRecord returns a command that opens the record page on r.
func ShowRecord(r Record) tea.Cmd {
	return func() tea.Msg { return NavigateMsg{Page: PageRecord, Record: &r} }
}

// CopyMsg asks the root to copy Text to the terminal's clipboard (OSC 52).
type CopyMsg struct{ Text string }

// Copy returns a command that copies text to the clipboard; "" copies
// nothing.
func Copy(text string) tea.Cmd {
	if text == "" {
		return nil
	}
	return func() tea.Msg { return CopyMsg{Text: text} }
}

// CopyKey is y, the key every screen copies its selected id or number
// with.
func CopyKey() key.Binding {
	return key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "copy id"))
}

// Navigate returns a command that navigates.
func Navigate(p Page, arg string) tea.Cmd {
	return func() tea.Msg { return NavigateMsg{Page: p, Arg: arg} }
}

// Level is how a flash message is shown.
type Level int

// Flash levels.
const (
	LevelInfo Level = iota
	LevelWarn
	LevelError
)

// FlashMsg shows a self-clearing line in the footer.
type FlashMsg struct {
	Level Level
	Text  string
}

// Flash returns a command that flashes text.
func Flash(l Level, text string) tea.Cmd {
	return func() tea.Msg { return FlashMsg{Level: l, Text: text} }
}

// Addressed is a message for one screen: every screen's own results (a
// load, a debounce tick) implement it, and the root hands such a message
// to that screen alone (gh-dash's SectionMsg). Messages that are neither
// addressed nor the root's own are dropped, never broadcast.
type Addressed interface {
	tea.Msg
	// Target is the screen the message is for.
	Target() Page
}

// ConnectionMsg carries the latest connection check to the outbox screen.
// Err is the check's error (Status is then the last good one).
type ConnectionMsg struct {
	Status ops.ConnectionStatus
	Err    error
}

// Target implements Addressed.
func (ConnectionMsg) Target() Page { return PageOutbox }

// PingMsg asks the root to check the connection to ServiceNow now.
type PingMsg struct{}

// RefreshMsg asks a screen to re-read the store: the root sends it to the
// active screen (and the run monitor) on every background refresh tick.
type RefreshMsg struct{}

// ActionMsg asks the root to perform an action: it checks read-only mode,
// asks for confirmation and inputs, and runs it as a task.
type ActionMsg struct{ Action Action }

// Act returns a command that asks the root to perform a.
func Act(a Action) tea.Cmd { return func() tea.Msg { return ActionMsg{Action: a} } }

// Field is one value an action asks for before it runs.
type Field struct {
	Label       string
	Placeholder string
	Value       string
	Required    bool
}

// Action is something the operator asked for that changes ServiceNow or an
// environment (Dangerous) or needs inputs.
type Action struct {
	// Title is the imperative shown in the dialog and the spinner, e.g.
	// "Approve CHG0030012".
	Title string
	// Description explains the effect in one or two lines.
	Description string
	// Dangerous marks actions that change ServiceNow or an environment:
	// disabled in read-only mode and always confirmed.
	Dangerous bool
	// Writes marks actions that change ServiceNow or an environment
	// without needing a confirmation (sync delivers writes already
	// decided): disabled in read-only mode like dangerous ones.
	Writes bool
	// Confirm, when set, must be typed exactly before OK enables (the
	// change number or environment name of a gated environment).
	Confirm string
	// Inputs are asked for in the dialog (version, comment, ...).
	Inputs []Field
	// Do performs the action with the inputs' values; it runs in a
	// command, never in Update. It returns a one-line result.
	Do func(ctx context.Context, values []string) (string, error)
	// Long actions (a run) are not bounded by the read timeout.
	Long bool
	// Follow is where to navigate once the action starts, if anywhere.
	Follow *NavigateMsg
	// After is where to navigate when the action succeeds, if anywhere.
	After func(result string) *NavigateMsg
}

// Mutates reports whether the action changes ServiceNow or an
// environment.
func (a Action) Mutates() bool { return a.Dangerous || a.Writes }

// RefuseReadOnly is the console's one read-only check: the root runs every
// action (key, palette command or dialog) through it before it opens a
// dialog and again before it runs. It returns the refusal to show, or "".
func (c Common) RefuseReadOnly(a Action) string {
	if c.ReadOnly && a.Mutates() {
		return "read-only mode: " + a.Title + " is disabled (it changes ServiceNow or an environment)"
	}
	return ""
}

// TaskDoneMsg reports the end of an action started by the root.
type TaskDoneMsg struct {
	ID     int
	Title  string
	Result string
	Err    error
	After  *NavigateMsg
}
