package common

import (
	"context"

	tea "github.com/charmbracelet/bubbletea"
)

// Loader is the state of a screen's reload: one load in flight at a time,
// and only the latest one's result counts (STYLE §10: a generation).
type Loader struct {
	gen     int
	loading bool
}

// start begins a load: the generation its result must carry, and false
// when a load is already in flight.
func (l *Loader) start() (gen int, ok bool) {
	if l.loading {
		return 0, false
	}
	l.loading = true
	l.gen++
	return l.gen, true
}

// Supersede lets the next load begin although a load is in flight (its
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

// Load starts a load unless one is in flight: read runs in a command
// under a context bounded by c's read timeout and gets the generation its
// result must carry. read must capture values, never the model.
func (l *Loader) Load(c Common, read func(ctx context.Context, gen int) tea.Msg) tea.Cmd {
	gen, ok := l.start()
	if !ok {
		return nil
	}
	return func() tea.Msg {
		ctx, cancel := c.Context()
		defer cancel()
		return read(ctx, gen)
	}
}
