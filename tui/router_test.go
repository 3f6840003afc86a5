package tui

import (
	"strings"
	"testing"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/common"
)

// TestAddressedMessageReachesItsScreen: a screen's message goes to the
// screen it names and no other; a message nobody owns is dropped, not
// broadcast.
func TestAddressedMessageReachesItsScreen(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	m := newModel(t, f, modelOptions())
	drive(m, m.show(common.NavigateMsg{Page: common.PageOutbox}), 0)
	before := m.pages
	_, cmd := m.Update(common.ConnectionMsg{Status: ops.ConnectionStatus{Instance: "https://routed.example", Configured: true, Checked: true, Reachable: true, Pending: 7}})
	if cmd != nil {
		t.Errorf("the outbox screen answered a connection result with a command")
	}
	if v := m.View(); !strings.Contains(v, "https://routed.example") || !strings.Contains(v, "7 pending") {
		t.Fatalf("the outbox screen did not get its message:\n%s", v)
	}
	// The other screens are untouched (their views render the same).
	for _, p := range allPages {
		if p == common.PageOutbox {
			continue
		}
		if got, want := m.page(p).View(), before.page(p).View(); got != want {
			t.Errorf("%s changed on a message for the outbox", p)
		}
	}
	type stray struct{}
	if _, cmd := m.Update(stray{}); cmd != nil {
		t.Errorf("an unaddressed message produced a command: it was routed somewhere")
	}
}

// TestConnectionMonitorDropsStaleChecks: a check superseded by a newer
// one (a ping asked for meanwhile) is ignored; the newer one is taken,
// shows the OFFLINE banner and is passed on to the outbox screen.
func TestConnectionMonitorDropsStaleChecks(t *testing.T) {
	f := newFixture(t, fixtureOptions{offline: true})
	opts := modelOptions()
	opts.Instance = "http://127.0.0.1:1"
	m := newModel(t, f, opts)
	first := m.conn.Check(false)
	if first == nil {
		t.Fatal("no check started")
	}
	m.conn.Abandon()
	second := m.conn.Check(true) // a ping: nothing answers
	stale := first()
	_, cmd := m.Update(stale)
	if cmd != nil || m.conn.Offline() {
		t.Fatalf("a stale check was taken (offline %v)", m.conn.Offline())
	}
	_, cmd = m.Update(second())
	if !m.conn.Offline() {
		t.Fatal("the current check was not taken: no offline banner")
	}
	if cmd == nil {
		t.Fatal("the check was not passed on to the outbox screen")
	}
	if _, ok := cmd().(common.ConnectionMsg); !ok {
		t.Fatal("the check was passed on as something else")
	}
	if !strings.Contains(m.View(), "OFFLINE") {
		t.Errorf("no OFFLINE banner:\n%s", m.View())
	}
}
