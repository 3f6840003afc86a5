package common

import (
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
)

// NavKeys are the cursor keys the list and scroll screens share. Each
// screen embeds them in its KeyMap and renames what they do in its help
// (SetHelp) or switches off what it has no use for (SetEnabled).
type NavKeys struct {
	Up       key.Binding
	Down     key.Binding
	PageUp   key.Binding
	PageDown key.Binding
	Top      key.Binding
	Bottom   key.Binding
}

// DefaultNavKeys returns ↑/k, ↓/j, pgup/ctrl+u, pgdown/ctrl+d, home/g and
// end/G.
func DefaultNavKeys() NavKeys {
	return NavKeys{
		Up:       key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:     key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		PageUp:   key.NewBinding(key.WithKeys("pgup", "ctrl+u"), key.WithHelp("pgup", "page up")),
		PageDown: key.NewBinding(key.WithKeys("pgdown", "ctrl+d"), key.WithHelp("pgdn", "page down")),
		Top:      key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("g", "top")),
		Bottom:   key.NewBinding(key.WithKeys("end", "G"), key.WithHelp("G", "bottom")),
	}
}

// UpDownOnly returns only ↑/k and ↓/j (the others disabled).
func UpDownOnly() NavKeys {
	k := DefaultNavKeys()
	for _, b := range []*key.Binding{&k.PageUp, &k.PageDown, &k.Top, &k.Bottom} {
		b.SetEnabled(false)
	}
	return k
}

// Target is where msg moves a cursor at cursor in a list of n rows with
// page rows on screen (not clamped); ok is false when msg is no cursor key.
func (k NavKeys) Target(msg tea.KeyMsg, cursor, n, page int) (to int, ok bool) {
	switch {
	case key.Matches(msg, k.Up):
		return cursor - 1, true
	case key.Matches(msg, k.Down):
		return cursor + 1, true
	case key.Matches(msg, k.PageUp):
		return cursor - page, true
	case key.Matches(msg, k.PageDown):
		return cursor + page, true
	case key.Matches(msg, k.Top):
		return 0, true
	case key.Matches(msg, k.Bottom):
		return n - 1, true
	}
	return cursor, false
}

// Move is Target clamped to the list: the new cursor.
func (k NavKeys) Move(msg tea.KeyMsg, cursor, n, page int) (to int, ok bool) {
	to, ok = k.Target(msg, cursor, n, page)
	return Clamp(to, 0, n-1), ok
}

// Scroll moves vp for a cursor key; down reports that it moved towards the
// end (the log's follow mode stays on only then, and only at the bottom).
func (k NavKeys) Scroll(vp *viewport.Model, msg tea.KeyMsg) (down, ok bool) {
	switch {
	case key.Matches(msg, k.Up):
		vp.ScrollUp(1)
	case key.Matches(msg, k.Down):
		vp.ScrollDown(1)
		return true, true
	case key.Matches(msg, k.PageUp):
		vp.PageUp()
	case key.Matches(msg, k.PageDown):
		vp.PageDown()
		return true, true
	case key.Matches(msg, k.Top):
		vp.GotoTop()
	case key.Matches(msg, k.Bottom):
		vp.GotoBottom()
		return true, true
	default:
		return false, false
	}
	return false, true
}
