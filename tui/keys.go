package tui

import "github.com/charmbracelet/bubbles/key"

// KeyMap is the console's global keys; each screen adds its own.
type KeyMap struct {
	Help         key.Binding
	Quit         key.Binding
	ForceQuit    key.Binding
	Back         key.Binding
	Palette      key.Binding
	Environments key.Binding
	Updates      key.Binding
	Changes      key.Binding
	Monitor      key.Binding
	Audit        key.Binding
	Outbox       key.Binding
	Sync         key.Binding
}

// DefaultKeyMap returns the global keys.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Help:         key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:         key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit")),
		ForceQuit:    key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "quit now")),
		Back:         key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
		Palette:      key.NewBinding(key.WithKeys(":"), key.WithHelp(":", "command")),
		Environments: key.NewBinding(key.WithKeys("1"), key.WithHelp("1", "environments")),
		Updates:      key.NewBinding(key.WithKeys("2"), key.WithHelp("2", "updates")),
		Changes:      key.NewBinding(key.WithKeys("3"), key.WithHelp("3", "changes")),
		Monitor:      key.NewBinding(key.WithKeys("4"), key.WithHelp("4", "run monitor")),
		Audit:        key.NewBinding(key.WithKeys("5"), key.WithHelp("5", "audit")),
		Outbox:       key.NewBinding(key.WithKeys("6"), key.WithHelp("6", "outbox/connection")),
		Sync:         key.NewBinding(key.WithKeys("S"), key.WithHelp("S", "sync now")),
	}
}

// ShortHelp is the global keys shown in the footer.
func (k KeyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Palette, k.Back, k.Help, k.Quit}
}

// FullHelp is the global keys in the full help.
func (k KeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Environments, k.Updates, k.Changes, k.Monitor, k.Audit, k.Outbox},
		{k.Palette, k.Sync, k.Back, k.Help, k.Quit, k.ForceQuit},
	}
}
