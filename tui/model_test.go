package tui

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/daytwo/daytwo/tui/common"
	"github.com/daytwo/daytwo/tui/flash"
	"github.com/daytwo/daytwo/tui/monitor"
)

// drive runs cmd synchronously and feeds its messages back into m until
// quiet: a tiny event loop for model tests. Timers (ticks, flash clears,
// the spinner, debounces) and the run-event subscription are skipped.
func drive(m *Model, cmd tea.Cmd, depth int) {
	if cmd == nil || depth > 30 {
		return
	}
	msg := cmd()
	switch msg := msg.(type) {
	case tea.BatchMsg:
		for _, c := range msg {
			drive(m, c, depth+1)
		}
	case tickMsg, flash.ClearMsg, nil, tea.QuitMsg, monitor.EventMsg:
	default:
		if strings.HasSuffix(fmt.Sprintf("%T", msg), "TickMsg") || strings.HasSuffix(fmt.Sprintf("%T", msg), "searchTickMsg") {
			return
		}
		_, next := m.Update(msg)
		drive(m, next, depth+1)
	}
}

func keyMsg(s string) tea.KeyMsg {
	switch s {
	case "enter":
		return tea.KeyMsg{Type: tea.KeyEnter}
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEsc}
	case "tab":
		return tea.KeyMsg{Type: tea.KeyTab}
	case "ctrl+c":
		return tea.KeyMsg{Type: tea.KeyCtrlC}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
}

func press(m *Model, keys ...string) tea.Cmd {
	var last tea.Cmd
	for _, k := range keys {
		_, cmd := m.Update(keyMsg(k))
		last = cmd
		drive(m, cmd, 0)
	}
	return last
}

func seeded(t *testing.T) (*fixture, *Model) {
	t.Helper()
	f := newFixture(t, fixtureOptions{})
	f.release(t, "staging", "1.4.1")
	f.release(t, "production", "1.4.1")
	f.release(t, "staging", "1.5.0-broken") // a failed staging run for the screens to show
	return f, newModel(t, f, modelOptions())
}

// modelOptions keep drive's synchronous timers short.
func modelOptions() Options {
	o := testOptions()
	o.FlashFor = time.Millisecond
	return o
}

func newModel(t *testing.T, f *fixture, opts Options) *Model {
	t.Helper()
	m := New(context.Background(), f.svc, opts)
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	drive(m, m.matrix.Load(), 0)
	return m
}

// TestViewsFillScreen checks every screen (and help, palette and dialog)
// renders exactly 80×24: every line as wide as the terminal, no more and
// no fewer lines (glow's TestViewsFillScreen).
func TestViewsFillScreen(t *testing.T) {
	_, m := seeded(t)
	check := func(name string) {
		t.Helper()
		v := m.View()
		lines := strings.Split(v, "\n")
		if len(lines) != 24 {
			t.Errorf("%s: %d lines, want 24:\n%s", name, len(lines), v)
		}
		for i, l := range lines {
			if w := lipgloss.Width(l); w != 80 {
				t.Errorf("%s: line %d is %d wide, want 80: %q", name, i, w, l)
			}
		}
	}
	for _, p := range allPages {
		arg := ""
		if p == common.PageDetail {
			arg = "u-0002"
		}
		drive(m, m.show(common.NavigateMsg{Page: p, Arg: arg}), 0)
		check(p.String())
		press(m, "?")
		check(p.String() + " help")
		press(m, "?")
	}
	press(m, ":")
	check("palette")
	press(m, "esc", "1", "P")
	check("dialog")
	// Resizing recomputes the layout.
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	if n := len(strings.Split(m.View(), "\n")); n != 40 {
		t.Errorf("after resize: %d lines, want 40", n)
	}
}

func TestQuitKeys(t *testing.T) {
	_, m := seeded(t)
	press(m, ":")
	if _, cmd := m.Update(keyMsg("q")); cmd != nil {
		if _, ok := cmd().(tea.QuitMsg); ok {
			t.Fatal("q quit while typing in the palette")
		}
	}
	press(m, "esc", "2", "/")
	if !m.inputFocused() {
		t.Fatal("filter does not hold the keyboard")
	}
	if _, cmd := m.Update(keyMsg("q")); cmd != nil {
		if _, ok := cmd().(tea.QuitMsg); ok {
			t.Fatal("q quit while filtering")
		}
	}
	_, cmd := m.Update(keyMsg("ctrl+c"))
	if cmd == nil {
		t.Fatal("ctrl+c does nothing while filtering")
	}
	if _, ok := cmd().(tea.QuitMsg); !ok {
		t.Fatal("ctrl+c does not quit while filtering")
	}
}

func TestNavigationStackAndBreadcrumbs(t *testing.T) {
	_, m := seeded(t)
	press(m, "l", "enter") // production's updates (the matrix's second column)
	if got := m.header(); !strings.Contains(got, "Services ▸ Updates: production") {
		t.Fatalf("breadcrumbs: %q", got)
	}
	press(m, "enter") // detail of the newest production update
	if m.active() != common.PageDetail || !strings.Contains(m.View(), "Plan") {
		t.Fatalf("not on detail:\n%s", m.View())
	}
	press(m, "esc", "esc")
	if m.active() != common.PageMatrix {
		t.Fatalf("esc esc: on %s", m.active())
	}
}

func TestReadOnlyDisablesDangerousActions(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	f.release(t, "production", "1.4.1")
	opts := modelOptions()
	opts.ReadOnly = true
	m := newModel(t, f, opts)
	press(m, "l", "P")
	if m.dialog != nil {
		t.Fatal("propose opened a dialog in read-only mode")
	}
	press(m, ":", "propose production 1.4.2", "enter")
	if m.dialog != nil || !strings.Contains(m.flash.Text(), "read-only") {
		t.Fatalf("palette propose in read-only: dialog %v flash %q", m.dialog != nil, m.flash.Text())
	}
	if !strings.Contains(m.header(), "READ-ONLY") {
		t.Error("no read-only badge")
	}
}

func TestGatedActionNeedsTypedConfirmation(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	m := newModel(t, f, modelOptions())
	press(m, ":", "propose production 1.4.2", "enter")
	if m.dialog == nil {
		t.Fatal("no confirm dialog for a gated proposal")
	}
	press(m, "enter") // OK is disabled: nothing typed
	if m.dialog == nil {
		t.Fatal("enter confirmed without the environment name")
	}
	press(m, "producti", "enter")
	if m.dialog == nil {
		t.Fatal("a prefix of the name confirmed")
	}
	press(m, "on", "enter")
	if m.dialog != nil {
		t.Fatal("typing the name did not confirm")
	}
	if !strings.Contains(m.flash.Text(), "proposed u-0001") {
		t.Fatalf("flash %q", m.flash.Text())
	}
}

func TestPaletteErrors(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	m := newModel(t, f, modelOptions())
	for line, want := range map[string]string{
		"frobnicate":        "unknown command",
		"propose nowhere 1": "usage: propose",
		"run u-9999":        "not found",
		"env nowhere":       "no environment matches",
	} {
		press(m, ":", line, "enter")
		if !strings.Contains(m.flash.Text(), want) {
			t.Errorf("%q: flash %q, want %q", line, m.flash.Text(), want)
		}
	}
}
