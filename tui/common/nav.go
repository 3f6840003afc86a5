package common

import (
	"context"

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

// Loader is the state of a screen's reload: one load in flight at a time,
// and only the latest one's result counts (STYLE §10: a generation).
type Loader struct {
	gen     int
	loading bool
}

// Start begins a load: the generation its result must carry, and false
// when a load is already in flight.
func (l *Loader) Start() (gen int, ok bool) {
	if l.loading {
		return 0, false
	}
	l.loading = true
	l.gen++
	return l.gen, true
}

// Supersede lets the next Start begin although a load is in flight (its
// result will be stale).
func (l *Loader) Supersede() { l.loading = false }

// Done reports whether a result of generation gen is the latest, and if
// so ends the load.
func (l *Loader) Done(gen int) bool {
	if gen != l.gen {
		return false
	}
	l.loading = false
	return true
}

// Loading reports whether a load is in flight.
func (l Loader) Loading() bool { return l.loading }

// Load runs read in a command under a context bounded by the read timeout.
func (c Common) Load(read func(ctx context.Context) tea.Msg) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := c.Context()
		defer cancel()
		return read(ctx)
	}
}

// Rows renders the rows from..from+height of a table of n rows, the row at
// cursor highlighted across the width.
func (c Common) Rows(from, cursor, n, height int, row func(i int) string) []string {
	var out []string
	for i := from; i < n && i < from+height; i++ {
		r := row(i)
		if i == cursor {
			r = c.Styles.Table.Selected.Render(PadRight(r, c.Width))
		}
		out = append(out, r)
	}
	return out
}
