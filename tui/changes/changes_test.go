package changes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/common"
	"github.com/daytwo/daytwo/tui/styles"
)

// fakeMirror is an in-memory mirror that counts the rows it hands out.
type fakeMirror struct {
	n      int
	served atomic.Int64
}

func (f *fakeMirror) Changes(_ context.Context, fl ops.ChangeFilter) ([]ops.Change, error) {
	var out []ops.Change
	for i := fl.Offset; i < f.n && i < fl.Offset+fl.Limit; i++ {
		out = append(out, ops.Change{Number: fmt.Sprintf("CHG%07d", i), State: ops.ChangeClosed, ShortDescription: "row"})
	}
	f.served.Add(int64(len(out)))
	return out, nil
}

func (f *fakeMirror) CountChanges(context.Context, ops.ChangeFilter) (int, error) { return f.n, nil }

func run(m Model, cmd tea.Cmd) Model {
	for cmd != nil {
		msg := cmd()
		if _, ok := msg.(loadedMsg); !ok {
			return m
		}
		m, cmd = m.Update(msg)
	}
	return m
}

func TestVirtualListLoadsOnlyAroundTheCursor(t *testing.T) {
	src := &fakeMirror{n: 100_000}
	c := common.Common{Styles: styles.Default(), Width: 80, Height: 20}
	m := New(c, src)
	m = run(m, m.Load())
	if !strings.Contains(m.View(), "1/100000") {
		t.Fatalf("view:\n%s", m.View())
	}
	var cmd tea.Cmd
	for range 5 {
		m, cmd = m.Update(tea.KeyMsg{Type: tea.KeyPgDown})
		m = run(m, cmd)
	}
	m, cmd = m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("G")})
	m = run(m, cmd)
	if got, ok := m.Selected(); !ok || got.Number != "CHG0099999" {
		t.Fatalf("G selected %+v %v", got, ok)
	}
	if !strings.Contains(m.View(), "CHG0099999") {
		t.Fatalf("last row not visible:\n%s", m.View())
	}
	if n := src.served.Load(); n > 1000 {
		t.Fatalf("served %d rows for a few pages of a 100k mirror", n)
	}
}

func TestStaleLoadIsDropped(t *testing.T) {
	src := &fakeMirror{n: 10}
	m := New(common.Common{Styles: styles.Default(), Width: 80, Height: 20}, src)
	old := m.Load()
	m.loading = false
	fresh := m.Load()
	m, _ = m.Update(fresh())
	src.n = 3
	m, _ = m.Update(old()) // from an earlier generation: ignored
	if m.total != 10 {
		t.Fatalf("stale result applied: total %d", m.total)
	}
}

// blockingMirror answers a search only when its context ends, and reports
// how each query ended: a query that nobody cancels would hold the store.
type blockingMirror struct{ ended chan error }

func (b *blockingMirror) Changes(ctx context.Context, f ops.ChangeFilter) ([]ops.Change, error) {
	if f.Search == "" {
		return nil, nil
	}
	<-ctx.Done()
	b.ended <- ctx.Err()
	return nil, ctx.Err()
}

func (b *blockingMirror) CountChanges(ctx context.Context, f ops.ChangeFilter) (int, error) {
	return 0, nil
}

// A newer search cancels the query of the one it supersedes.
func TestSupersededSearchIsCancelled(t *testing.T) {
	src := &blockingMirror{ended: make(chan error, 4)}
	m := New(common.Common{Styles: styles.Default(), Width: 80, Height: 20}, src)
	m = run(m, m.Load())
	m, _ = m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("/")})
	m, _ = m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("a")})
	m, first := m.Update(searchTickMsg{at: time.Now().Add(debounce)})
	if first == nil {
		t.Fatal("the search started no query")
	}
	go first()
	m, _ = m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("b")})
	m, second := m.Update(searchTickMsg{at: time.Now().Add(debounce)})
	if second == nil {
		t.Fatal("the second search started no query")
	}
	select {
	case err := <-src.ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the superseded query ended with %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the superseded query was never cancelled")
	}
	if m.query != "ab" {
		t.Fatalf("query %q, want ab", m.query)
	}
}

// Issue 14: a burst of keystrokes sets one debounce timer, not one per
// key (each would come back as a message and a frame queued ahead of the
// query); a timer that fires before the burst's last key has waited the
// debounce is set again for the rest, and then the search runs, once,
// for the text as typed.
func TestSearchBurstSetsOneTimer(t *testing.T) {
	src := &fakeMirror{n: 10}
	m := New(common.Common{Styles: styles.Default(), Width: 80, Height: 20}, src)
	m = run(m, m.Load())
	m, _ = m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("/")})
	var timers []tea.Cmd
	for _, c := range "rollout" {
		var cmd tea.Cmd
		m, cmd = m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{c}})
		if cmd != nil {
			timers = append(timers, cmd)
		}
	}
	if len(timers) != 1 {
		t.Fatalf("typing 7 keys set %d timers, want 1", len(timers))
	}
	tick, ok := timers[0]().(searchTickMsg)
	if !ok {
		t.Fatal("the timer did not come back as a searchTickMsg")
	}
	// a key typed just before the timer fired: it is set again
	m, cmd := m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("s")})
	if cmd != nil {
		t.Fatal("a key typed while the timer runs set another")
	}
	m, again := m.Update(searchTickMsg{at: tick.at})
	if again == nil {
		t.Fatal("the timer was not set again for the last key")
	}
	if m.query != "" {
		t.Fatalf("searched %q before the last key waited the debounce", m.query)
	}
	next, ok := again().(searchTickMsg)
	if !ok {
		t.Fatal("the timer set again is not a timer")
	}
	m, query := m.Update(next)
	if query == nil || m.query != "rollouts" {
		t.Fatalf("after the debounce: query %q, cmd %v; want the search rollouts", m.query, query)
	}
}
