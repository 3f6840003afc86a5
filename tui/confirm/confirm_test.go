package confirm

import (
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/tui/common"
	"github.com/daytwo/daytwo/tui/styles"
)

// TestIncompleteDialogSaysWhatIsMissing: enter on an incomplete dialog
// says what is missing ("comment required", then the confirmation) and
// goes to that field, instead of silently moving the focus.
func TestIncompleteDialogSaysWhatIsMissing(t *testing.T) {
	c := common.Common{Styles: styles.Default(), Width: 80, Height: 24}
	m := New(c, common.Action{
		Title: "Reject CHG1", Confirm: "CHG1",
		Inputs: []common.Field{{Label: "Comment", Required: true}},
	})
	m.SetSize(80, 24)
	enter := tea.KeyMsg{Type: tea.KeyEnter}
	m, cmd := m.Update(enter)
	if cmd != nil {
		t.Fatal("an incomplete dialog submitted")
	}
	if v := m.View(); !strings.Contains(v, "comment required") {
		t.Fatalf("no 'comment required':\n%s", v)
	}
	m, _ = m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("not needed")})
	if v := m.View(); strings.Contains(v, "comment required") {
		t.Errorf("the hint stays after typing:\n%s", v)
	}
	if m.fields[0].Value() != "not needed" {
		t.Fatalf("the comment went to %q, not the comment field", m.fields[0].Value())
	}
	m, _ = m.Update(enter)
	if v := m.View(); !strings.Contains(v, "type CHG1 exactly to confirm") || m.focus != m.confirmIdx {
		t.Fatalf("the missing confirmation is not said and focused (focus %d):\n%s", m.focus, v)
	}
	m, _ = m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("CHG1")})
	if _, cmd = m.Update(enter); cmd == nil {
		t.Fatal("a complete dialog did not submit")
	}
	if _, ok := cmd().(SubmitMsg); !ok {
		t.Fatal("a complete dialog did not submit")
	}
}
