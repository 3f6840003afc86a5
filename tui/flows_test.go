package tui

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/muesli/termenv"
)

func init() {
	// Goldens compare text: no colour, whatever the terminal.
	lipgloss.SetColorProfile(termenv.Ascii)
}

func testOptions() Options {
	return Options{
		Clock: func() time.Time { return epoch }, Refresh: 50 * time.Millisecond, PingEvery: -1, FlashFor: time.Minute,
		Clipboard: io.Discard,
	}
}

func startConsole(t *testing.T, f *fixture, opts Options, w, h int) *teatest.TestModel {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return teatest.NewTestModel(t, New(ctx, f.svc, opts), teatest.WithInitialTermSize(w, h))
}

// waitFor waits until the screen has shown every one of texts.
// syncUntil presses S (sync now) until text shows, as the daemon's
// periodic cycles would make it show.
func syncUntil(t *testing.T, tm *teatest.TestModel, text string) {
	t.Helper()
	pressUntil(t, tm, "S", text)
}

// pressUntil presses key every two seconds until text shows (60 s at most).
func pressUntil(t *testing.T, tm *teatest.TestModel, key, text string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		typeKeys(tm, key)
		found := false
		round := time.Now().Add(2 * time.Second)
		teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
			found = found || bytes.Contains(b, []byte(text))
			return found || time.Now().After(round)
		}, teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(20*time.Millisecond))
		if found {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q did not show after pressing %s for 60s", text, key)
		}
	}
}

func waitFor(t *testing.T, tm *teatest.TestModel, texts ...string) {
	t.Helper()
	var seen bytes.Buffer
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		seen.Write(b)
		for _, s := range texts {
			if !bytes.Contains(b, []byte(s)) {
				return false
			}
		}
		return true
	}, teatest.WithDuration(60*time.Second), teatest.WithCheckInterval(20*time.Millisecond))
}

func typeKeys(tm *teatest.TestModel, keys ...string) {
	for _, k := range keys {
		switch k {
		case "enter":
			tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
		case "esc":
			tm.Send(tea.KeyMsg{Type: tea.KeyEsc})
		case "tab":
			tm.Send(tea.KeyMsg{Type: tea.KeyTab})
		default:
			tm.Type(k)
		}
	}
}

// finish quits the console once every background write has ended and
// returns its final frame with random ids masked. The frame is settled
// without a clock: after the program has stopped, the model runs one
// refresh (what a tick does) synchronously, so it shows the store as it
// is now, however late the last asynchronous reload would have landed on
// a loaded machine.
func finish(t *testing.T, f *fixture, tm *teatest.TestModel) []byte {
	t.Helper()
	f.svc.Wait()
	tm.Send(tea.KeyMsg{Type: tea.KeyCtrlC})
	fm := tm.FinalModel(t, teatest.WithFinalTimeout(30*time.Second))
	_, _ = io.Copy(io.Discard, tm.Output())
	m, ok := fm.(*Model)
	if !ok {
		t.Fatalf("final model is %T", fm)
	}
	m.conn.Abandon() // a check in flight when the program stopped never reports
	m.abandon()      // and neither does a screen's load
	_, cmd := m.Update(tickMsg{})
	drive(m, cmd, 0)
	return f.stable([]byte(m.View()))
}

func changeOf(t *testing.T, f *fixture, id string) string {
	t.Helper()
	u, err := f.svc.GetUpdate(context.Background(), id)
	if err != nil || u.ChangeNumber == "" {
		t.Fatalf("update %s has no change: %v", id, err)
	}
	return u.ChangeNumber
}

// TestFlowProposeApproveRunMonitor: propose a production update from the
// palette, watch it wait for approval with the reason, approve it, run it
// and watch the monitor to the end.
func TestFlowProposeApproveRunMonitor(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	f.release(t, "staging", "1.4.1")
	f.release(t, "production", "1.4.1")
	f.release(t, "staging", "1.4.2")
	tm := startConsole(t, f, testOptions(), 100, 30)
	waitFor(t, tm, "↑1 1.4.2 ready") // the matrix: production is one behind staging

	typeKeys(tm, ":", "propose prod 1.4.2", "enter")
	waitFor(t, tm, "Type production to confirm")
	typeKeys(tm, "production", "enter")
	waitFor(t, tm, "proposed u-0004")

	typeKeys(tm, "S") // sync now: the change is raised in ServiceNow
	waitFor(t, tm, "awaiting approval")
	chg := changeOf(t, f, "u-0004")

	// A is enabled once the screen has loaded the update's change; press
	// it until the dialog opens, as an operator would.
	pressUntil(t, tm, "A", "Type "+chg+" to confirm")
	typeKeys(tm, "ship it", "tab", chg, "enter")
	waitFor(t, tm, "approved "+chg)
	// Sync until the approval is mirrored: a daemon would, every cycle. One
	// sync can read ServiceNow a moment before the decision lands.
	syncUntil(t, tm, "open: ready to run")

	typeKeys(tm, "X")
	waitFor(t, tm, "Type "+chg+" to confirm")
	typeKeys(tm, chg, "enter")
	waitFor(t, tm, "production is on 1.4.2")
	out := finish(t, f, tm)
	if !bytes.Contains(out, []byte("succeeded")) {
		t.Errorf("final frame does not show the run succeeded:\n%s", out)
	}
	teatest.RequireEqualOutput(t, out)
}

// TestFlowBrokenReleaseRollsBack: a broken release fails its health check,
// is rolled back, and the monitor shows the incident number.
func TestFlowBrokenReleaseRollsBack(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	f.release(t, "production", "1.4.1")
	p, err := f.svc.Propose(context.Background(), proposeReq("production", "1.5.0-broken"))
	if err != nil {
		t.Fatal(err)
	}
	u := f.approve(t, p.Update.ID)
	tm := startConsole(t, f, testOptions(), 100, 30)
	waitFor(t, tm, "production")

	typeKeys(tm, ":", "run "+u.ID, "enter")
	waitFor(t, tm, "Type "+u.ChangeNumber+" to confirm")
	typeKeys(tm, u.ChangeNumber, "enter")
	waitFor(t, tm, "rolled back", "incident INC")
	out := finish(t, f, tm)
	if !bytes.Contains(out, []byte("incident INC")) {
		t.Errorf("final frame does not show the incident:\n%s", out)
	}
	teatest.RequireEqualOutput(t, out)
}

// TestFlowOffline: ServiceNow is down; the console says so, keeps reading
// the mirror, and a proposal waits in the outbox.
func TestFlowOffline(t *testing.T) {
	f := newFixture(t, fixtureOptions{offline: true})
	opts := testOptions()
	opts.PingEvery = 1
	opts.Instance = "http://127.0.0.1:1"
	tm := startConsole(t, f, opts, 80, 24)
	waitFor(t, tm, "OFFLINE")
	typeKeys(tm, ":", "propose production 2.0.0", "enter")
	waitFor(t, tm, "Type production to confirm")
	typeKeys(tm, "production", "enter")
	waitFor(t, tm, "proposed u-0001")
	typeKeys(tm, "6")
	waitFor(t, tm, "change.create")
	out := finish(t, f, tm)
	if !strings.Contains(string(out), "OFFLINE") {
		t.Errorf("no offline banner:\n%s", out)
	}
	teatest.RequireEqualOutput(t, out)
}
