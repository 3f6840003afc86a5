package tui

import (
	"context"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/common"
)

// paletteExamples gives every palette command a line that would act.
// A command missing here fails the test: a new command must be classified.
func paletteExamples(open ops.Update) map[string]string {
	return map[string]string{
		"svc": "svc checkout staging", "env": "env staging", "chg": "chg " + open.ChangeNumber, "upd": "upd " + open.ID,
		"propose": "propose staging 9.9.9", "approve": "approve " + open.ChangeNumber + " ok",
		"reject": "reject " + open.ChangeNumber + " no", "run": "run " + open.ID, "cancel": "cancel " + open.ID,
		"rollback": "rollback staging", "sync": "sync", "retry": "retry",
		"changes": "changes", "audit": "audit", "outbox": "outbox", "alerts": "alerts", "monitor": "monitor", "quit": "quit",
	}
}

// storeMark is what a mutation would change: updates, outbox items and
// audit events.
func storeMark(t *testing.T, f *fixture) [3]int {
	t.Helper()
	ctx := context.Background()
	ups, err := f.db.ListUpdates(ctx, ops.UpdateFilter{})
	if err != nil {
		t.Fatal(err)
	}
	items, err := f.db.ListOutbox(ctx, ops.OutboxFilter{States: []ops.OutboxState{ops.OutboxPending, ops.OutboxFailed, ops.OutboxDelivered}})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := f.db.ListEvents(ctx, ops.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return [3]int{len(ups), len(items), len(evs)}
}

// TestReadOnlyEveryPaletteCommandAndKey runs every palette command and
// every action key on every screen in a read-only console: each one that
// changes ServiceNow or an environment is refused (no dialog, no task,
// nothing written), each read works. In a read-write console it checks
// that the palette's classification matches what each command does.
func TestReadOnlyEveryPaletteCommandAndKey(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	f.release(t, "staging", "1.4.1")
	f.release(t, "staging", "1.4.2")
	p, err := f.svc.Propose(context.Background(), proposeReq("production", "1.4.2"))
	if err != nil {
		t.Fatal(err)
	}
	f.sync(t)
	open, err := f.svc.GetUpdate(context.Background(), p.Update.ID)
	if err != nil || open.ChangeNumber == "" {
		t.Fatalf("open update %+v: %v", open, err)
	}
	examples := paletteExamples(open)

	opts := modelOptions()
	opts.ReadOnly = true
	for _, c := range paletteCommands {
		line, ok := examples[c.names[0]]
		if !ok {
			t.Errorf("palette command %q has no example in paletteExamples: classify it", c.names[0])
			continue
		}
		m := newModel(t, f, opts)
		before := storeMark(t, f)
		press(m, ":", line, "enter")
		refused := strings.Contains(m.flash.Text(), "read-only mode")
		switch {
		case c.mutates && (!refused || m.dialog != nil || m.tasks.Len() > 0):
			t.Errorf("read-only %q: not refused (flash %q, dialog %v, tasks %d)", line, m.flash.Text(), m.dialog != nil, m.tasks.Len())
		case !c.mutates && refused:
			t.Errorf("read-only %q: a read was refused: %q", line, m.flash.Text())
		case !c.mutates && m.flash.Text() != "":
			t.Errorf("read-only %q: flash %q", line, m.flash.Text())
		}
		if after := storeMark(t, f); after != before {
			t.Errorf("read-only %q wrote to the store: %v → %v", line, before, after)
		}
	}

	// Every key of every screen: the action keys are refused, nothing is
	// written. The keys are the help's, so a new key is covered.
	m := newModel(t, f, opts)
	pressed := map[string]bool{}
	for _, page := range allPages {
		drive(m, m.show(common.NavigateMsg{Page: page, Arg: map[common.Page]string{common.PageDetail: open.ID}[page]}), 0)
		for _, group := range m.page(page).FullHelp() {
			for _, b := range group {
				for _, k := range b.Keys() {
					if len(k) != 1 || k == "q" || k == ":" || k == "/" {
						continue // navigation, quit, palette and filter
					}
					before := storeMark(t, f)
					m.flash.Clear()
					pressed[k] = true
					press(m, k)
					if m.dialog != nil || m.tasks.Len() > 0 {
						t.Errorf("read-only %s key %q opened a dialog or started a task", page, k)
						m.dialog = nil
					}
					if after := storeMark(t, f); after != before {
						t.Errorf("read-only %s key %q wrote to the store: %v → %v", page, k, before, after)
					}
					drive(m, m.show(common.NavigateMsg{Page: page, Arg: map[common.Page]string{common.PageDetail: open.ID}[page]}), 0)
				}
			}
		}
	}
	for _, k := range []string{"P", "A", "R", "X", "C", "B", "T"} {
		if !pressed[k] {
			t.Errorf("action key %q is on no screen's help: the key loop did not cover it", k)
		}
	}
	m.flash.Clear()
	press(m, "S")
	if !strings.Contains(m.flash.Text(), "read-only mode") {
		t.Errorf("read-only S (sync, delivers queued writes): flash %q", m.flash.Text())
	}

	// The classification matches the actions the commands build.
	rw := newModel(t, f, modelOptions())
	for _, c := range paletteCommands {
		line := examples[c.names[0]]
		cmd := c.run(rw, strings.Fields(line)[1:])
		for depth := 0; cmd != nil && depth < 2; depth++ {
			switch msg := cmd().(type) {
			case common.ActionMsg:
				if msg.Action.Mutates() != c.mutates {
					t.Errorf("%q: classified mutates=%v, its action %q mutates=%v", line, c.mutates, msg.Action.Title, msg.Action.Mutates())
				}
				cmd = nil
			case tea.Msg:
				if next, ok := msg.(func() tea.Msg); ok {
					cmd = next
				} else {
					if c.mutates {
						t.Errorf("%q: classified as mutating, builds no action (%T)", line, msg)
					}
					cmd = nil
				}
			}
		}
	}
}
