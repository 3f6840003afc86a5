package common

import (
	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
)

// Input is a single-line text input: bubbles' textinput with the
// console's styles and a steady cursor (a blinking one would make every
// frame differ and the goldens flaky).
type Input struct {
	ti textinput.Model
}

// NewInput builds an input whose prompt and placeholder use c's styles.
func NewInput(c Common, prompt, placeholder string) Input {
	ti := textinput.New()
	ti.Prompt = prompt
	ti.Placeholder = placeholder
	ti.CharLimit = 200
	ti.PromptStyle = c.Styles.Prompt
	ti.PlaceholderStyle = c.Styles.Status.Muted
	ti.Cursor.SetMode(cursor.CursorStatic)
	ti.Blur()
	return Input{ti: ti}
}

// Focus gives the input the keyboard.
func (in *Input) Focus() { in.ti.Focus() }

// Blur takes the keyboard away.
func (in *Input) Blur() { in.ti.Blur() }

// Value is the text.
func (in Input) Value() string { return in.ti.Value() }

// SetValue replaces the text and puts the cursor at its end.
func (in *Input) SetValue(s string) {
	in.ti.SetValue(s)
	in.ti.CursorEnd()
}

// Update handles a key when focused.
func (in Input) Update(msg tea.Msg) (Input, tea.Cmd) {
	if _, ok := msg.(tea.KeyMsg); !ok || !in.ti.Focused() {
		return in, nil
	}
	var cmd tea.Cmd
	in.ti, cmd = in.ti.Update(msg)
	return in, cmd
}

// View renders the prompt, the text and (when focused) the cursor.
func (in Input) View() string { return in.ti.View() }
