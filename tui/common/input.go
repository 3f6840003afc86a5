package common

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
)

// Input is a minimal single-line text input. bubbles/textinput would do,
// but its clipboard dependency (github.com/atotto/clipboard) is not in our
// go.sum; this covers what the console needs: typing, editing keys and a
// cursor.
type Input struct {
	Prompt      string
	Placeholder string
	CharLimit   int
	PromptStyle lipgloss.Style
	HintStyle   lipgloss.Style
	value       []rune
	pos         int
	focused     bool
	keys        inputKeys
}

type inputKeys struct {
	Left, Right, Home, End, Backspace, Delete, DeleteLine, DeleteWord key.Binding
}

// NewInput builds an input whose prompt and placeholder use c's styles.
func NewInput(c Common, prompt, placeholder string) Input {
	return Input{
		Prompt: prompt, Placeholder: placeholder, CharLimit: 200,
		PromptStyle: c.Styles.Prompt, HintStyle: c.Styles.Status.Muted,
		keys: inputKeys{
			Left:       key.NewBinding(key.WithKeys("left", "ctrl+b")),
			Right:      key.NewBinding(key.WithKeys("right", "ctrl+f")),
			Home:       key.NewBinding(key.WithKeys("home", "ctrl+a")),
			End:        key.NewBinding(key.WithKeys("end", "ctrl+e")),
			Backspace:  key.NewBinding(key.WithKeys("backspace", "ctrl+h")),
			Delete:     key.NewBinding(key.WithKeys("delete", "ctrl+d")),
			DeleteLine: key.NewBinding(key.WithKeys("ctrl+u")),
			DeleteWord: key.NewBinding(key.WithKeys("ctrl+w", "alt+backspace")),
		},
	}
}

// Focus gives the input the keyboard.
func (in *Input) Focus() { in.focused = true }

// Blur takes the keyboard away.
func (in *Input) Blur() { in.focused = false }

// Focused reports whether the input has the keyboard.
func (in Input) Focused() bool { return in.focused }

// Value is the text.
func (in Input) Value() string { return string(in.value) }

// SetValue replaces the text and puts the cursor at its end.
func (in *Input) SetValue(s string) {
	in.value = []rune(s)
	in.pos = len(in.value)
}

// Update handles a key when focused.
func (in Input) Update(msg tea.Msg) (Input, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok || !in.focused {
		return in, nil
	}
	switch {
	case key.Matches(km, in.keys.Left):
		in.pos = max(in.pos-1, 0)
	case key.Matches(km, in.keys.Right):
		in.pos = min(in.pos+1, len(in.value))
	case key.Matches(km, in.keys.Home):
		in.pos = 0
	case key.Matches(km, in.keys.End):
		in.pos = len(in.value)
	case key.Matches(km, in.keys.Backspace):
		if in.pos > 0 {
			in.value = append(in.value[:in.pos-1:in.pos-1], in.value[in.pos:]...)
			in.pos--
		}
	case key.Matches(km, in.keys.Delete):
		if in.pos < len(in.value) {
			in.value = append(in.value[:in.pos:in.pos], in.value[in.pos+1:]...)
		}
	case key.Matches(km, in.keys.DeleteLine):
		in.value = append([]rune{}, in.value[in.pos:]...)
		in.pos = 0
	case key.Matches(km, in.keys.DeleteWord):
		i := in.pos
		for i > 0 && in.value[i-1] == ' ' {
			i--
		}
		for i > 0 && in.value[i-1] != ' ' {
			i--
		}
		in.value = append(in.value[:i:i], in.value[in.pos:]...)
		in.pos = i
	case km.Type == tea.KeyRunes || km.Type == tea.KeySpace:
		r := km.Runes
		if km.Type == tea.KeySpace {
			r = []rune{' '}
		}
		if in.CharLimit > 0 && len(in.value)+len(r) > in.CharLimit {
			return in, nil
		}
		v := make([]rune, 0, len(in.value)+len(r))
		v = append(v, in.value[:in.pos]...)
		v = append(v, r...)
		v = append(v, in.value[in.pos:]...)
		in.value = v
		in.pos += len(r)
	}
	return in, nil
}

// View renders the prompt, the text and (when focused) a block cursor.
func (in Input) View() string {
	var b strings.Builder
	b.WriteString(in.PromptStyle.Render(in.Prompt))
	if len(in.value) == 0 && !in.focused {
		b.WriteString(in.HintStyle.Render(in.Placeholder))
		return b.String()
	}
	b.WriteString(string(in.value[:in.pos]))
	if in.focused {
		b.WriteString("█")
	}
	b.WriteString(string(in.value[in.pos:]))
	if len(in.value) == 0 {
		b.WriteString(in.HintStyle.Render(" " + in.Placeholder))
	}
	return b.String()
}
