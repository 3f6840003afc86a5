package tui

import (
	"os"
	"strings"

	"github.com/aymanbagabas/go-osc52/v2"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/tui/common"
	"github.com/daytwo/daytwo/tui/confirm"
)

// KeyMap is the console's global keys; each screen adds its own.
type KeyMap struct {
	Help      key.Binding
	Quit      key.Binding
	ForceQuit key.Binding
	Back      key.Binding
	Palette   key.Binding
	Home      key.Binding
	Updates   key.Binding
	Changes   key.Binding
	Monitor   key.Binding
	Audit     key.Binding
	Outbox    key.Binding
	Alerts    key.Binding
	Sync      key.Binding
}

// DefaultKeyMap returns the global keys.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Help:      key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:      key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit")),
		ForceQuit: key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "quit now")),
		Back:      key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
		Palette:   key.NewBinding(key.WithKeys(":"), key.WithHelp(":", "command")),
		Home:      key.NewBinding(key.WithKeys("1"), key.WithHelp("1", "services (home)")),
		Updates:   key.NewBinding(key.WithKeys("2"), key.WithHelp("2", "updates")),
		Changes:   key.NewBinding(key.WithKeys("3"), key.WithHelp("3", "changes")),
		Monitor:   key.NewBinding(key.WithKeys("4"), key.WithHelp("4", "run monitor")),
		Audit:     key.NewBinding(key.WithKeys("5"), key.WithHelp("5", "audit")),
		Outbox:    key.NewBinding(key.WithKeys("6"), key.WithHelp("6", "outbox/connection")),
		Alerts:    key.NewBinding(key.WithKeys("7"), key.WithHelp("7", "alerts")),
		Sync:      key.NewBinding(key.WithKeys("S"), key.WithHelp("S", "sync now")),
	}
}

// ShortHelp is the global keys shown in the footer.
func (k KeyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Palette, k.Back, k.Help, k.Quit}
}

// FullHelp is the global keys in the full help.
func (k KeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Home, k.Updates, k.Changes, k.Monitor, k.Audit, k.Outbox, k.Alerts},
		{k.Palette, k.Sync, k.Back, k.Help, k.Quit, k.ForceQuit},
	}
}

// inputFocused reports whether keys are being typed somewhere.
func (m *Model) inputFocused() bool {
	return m.palette.Active() || m.dialog != nil || m.page(m.active()).InputFocused()
}

func (m *Model) handleKey(msg tea.KeyMsg) tea.Cmd {
	if key.Matches(msg, m.keys.ForceQuit) {
		return tea.Quit
	}
	var cmd tea.Cmd
	switch {
	case m.dialog != nil:
		var d confirm.Model
		d, cmd = m.dialog.Update(msg)
		m.dialog = &d
		return cmd
	case m.palette.Active():
		m.palette, cmd = m.palette.Update(msg)
		return cmd
	case m.showHelp:
		m.showHelp = !key.Matches(msg, m.keys.Help, m.keys.Back, m.keys.Quit)
		return nil
	case m.page(m.active()).InputFocused():
		return m.updatePage(m.active(), msg)
	}
	if cmd, ok := m.globalKey(msg); ok {
		return cmd
	}
	// esc goes to the screen first (it clears a filter), then goes back.
	if key.Matches(msg, m.keys.Back) {
		if f, ok := m.page(m.active()).(interface{ FilterValue() string }); !ok || f.FilterValue() == "" {
			return m.back()
		}
	}
	return m.updatePage(m.active(), msg)
}

// globalKey handles the console's own keys; ok is false for the active
// screen's.
func (m *Model) globalKey(msg tea.KeyMsg) (cmd tea.Cmd, ok bool) {
	switch {
	case key.Matches(msg, m.keys.Quit):
		return tea.Quit, true
	case key.Matches(msg, m.keys.Help):
		m.showHelp = true
	case key.Matches(msg, m.keys.Palette):
		m.palette.Open()
	case key.Matches(msg, m.keys.Sync):
		return m.command("sync"), true
	case key.Matches(msg, m.keys.Home):
		return m.show(common.NavigateMsg{Page: common.PageMatrix}), true
	case key.Matches(msg, m.keys.Updates):
		return m.jump(common.PageUpdates), true
	case key.Matches(msg, m.keys.Changes):
		return m.jump(common.PageChanges), true
	case key.Matches(msg, m.keys.Monitor):
		return m.jump(common.PageMonitor), true
	case key.Matches(msg, m.keys.Audit):
		return m.jump(common.PageAudit), true
	case key.Matches(msg, m.keys.Outbox):
		return m.jump(common.PageOutbox), true
	case key.Matches(msg, m.keys.Alerts):
		return m.jump(common.PageAlerts), true
	default:
		return nil, false
	}
	return nil, true
}

// keystrokes applies every key of msg: a terminal, tmux send-keys or a slow
// link may deliver several typed runes in one message ("jj"), and each is
// a keystroke of its own (a paste stays one message: it is text).
func (m *Model) keystrokes(msg tea.KeyMsg) tea.Cmd {
	if msg.Type != tea.KeyRunes || len(msg.Runes) < 2 || msg.Paste {
		return m.handleKey(msg)
	}
	cmds := make([]tea.Cmd, 0, len(msg.Runes))
	for _, r := range msg.Runes {
		cmds = append(cmds, m.handleKey(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: msg.Alt}))
	}
	return tea.Batch(cmds...)
}

// copy puts text on the terminal's clipboard with OSC 52 (wrapped for
// tmux and screen, which would swallow it otherwise) and says so.
func (m *Model) copy(text string) tea.Cmd {
	w := m.clip
	seq := osc52.New(text)
	switch {
	case os.Getenv("TMUX") != "":
		seq = seq.Tmux()
	case strings.HasPrefix(os.Getenv("TERM"), "screen"):
		seq = seq.Screen()
	}
	return func() tea.Msg {
		if _, err := seq.WriteTo(w); err != nil {
			return common.FlashMsg{Level: common.LevelError, Text: "copy: " + err.Error()}
		}
		return common.FlashMsg{Level: common.LevelInfo, Text: "copied " + text + " (OSC 52: the terminal must allow clipboard writes)"}
	}
}
