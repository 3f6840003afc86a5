package common

import (
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
)

// FilterKeys are the keys of a Filter.
type FilterKeys struct {
	Start  key.Binding
	Accept key.Binding
	Clear  key.Binding
}

// DefaultFilterKeys returns "/" to filter, enter to keep it, esc to clear.
func DefaultFilterKeys() FilterKeys {
	return FilterKeys{
		Start:  key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Accept: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "apply filter")),
		Clear:  key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "clear filter")),
	}
}

// Filter is a "/" filter line shared by the list screens.
type Filter struct {
	Keys   FilterKeys
	input  Input
	active bool
}

// NewFilter builds a filter line.
func NewFilter(c Common) Filter {
	in := NewInput(c, "/", "fuzzy filter")
	return Filter{Keys: DefaultFilterKeys(), input: in}
}

// Active reports whether the filter is being typed.
func (f Filter) Active() bool { return f.active }

// Value is the filter text.
func (f Filter) Value() string { return f.input.Value() }

// Update handles a key. handled reports whether the key was the filter's;
// changed whether the text changed.
func (f Filter) Update(msg tea.Msg) (Filter, bool, bool, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		if f.active {
			var cmd tea.Cmd
			f.input, cmd = f.input.Update(msg)
			return f, false, false, cmd
		}
		return f, false, false, nil
	}
	if !f.active {
		if key.Matches(km, f.Keys.Start) {
			f.active = true
			f.input.Focus()
			return f, true, false, nil
		}
		if key.Matches(km, f.Keys.Clear) && f.input.Value() != "" {
			f.input.SetValue("")
			return f, true, true, nil
		}
		return f, false, false, nil
	}
	switch {
	case key.Matches(km, f.Keys.Accept):
		f.active = false
		f.input.Blur()
		return f, true, false, nil
	case key.Matches(km, f.Keys.Clear):
		f.active = false
		f.input.Blur()
		changed := f.input.Value() != ""
		f.input.SetValue("")
		return f, true, changed, nil
	}
	before := f.input.Value()
	var cmd tea.Cmd
	f.input, cmd = f.input.Update(msg)
	return f, true, before != f.input.Value(), cmd
}

// View renders the filter line (empty when there is no filter).
func (f Filter) View() string {
	if !f.active && f.input.Value() == "" {
		return ""
	}
	return f.input.View()
}
