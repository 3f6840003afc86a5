package tui

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/common"
	"github.com/daytwo/daytwo/tui/matrix"
)

// alertsWorld is servicesWorld with alertmanager.open_incidents on and
// what Alertmanager sent (through ops.Service.RecordAlerts, what POST
// /alertmanager calls): HighErrorRate firing on checkout/production
// (gated, its release came through a change: it opens an incident),
// DiskFull firing on payments/dev (not gated: no incident) and
// LatencyHigh on search/dev, fired and resolved.
func alertsWorld(t *testing.T) *fixture {
	t.Helper()
	f := servicesWorldWith(t, fixtureOptions{alertIncidents: true})
	recordAlerts(t, f,
		ops.Alert{
			Name: "HighErrorRate", Status: "firing", Service: "checkout", Environment: "production", Fingerprint: "fp-err",
			StartsAt: epoch.Add(-5 * time.Minute), Source: "http://alertmanager:9093",
			Labels:      map[string]string{"alertname": "HighErrorRate", "severity": "critical", "service": "checkout", "environment": "production"},
			Annotations: map[string]string{"summary": "5xx above 2% for 5m", "description": "checkout answers 4.1% of requests with 5xx"},
		},
		ops.Alert{
			Name: "DiskFull", Status: "firing", Service: "payments", Environment: "dev", Fingerprint: "fp-disk",
			StartsAt:    epoch.Add(-time.Hour),
			Labels:      map[string]string{"alertname": "DiskFull", "severity": "warning"},
			Annotations: map[string]string{"summary": "/var above 90%"},
		},
		ops.Alert{
			Name: "LatencyHigh", Status: "firing", Service: "search", Environment: "dev", Fingerprint: "fp-lat",
			StartsAt: epoch.Add(-2 * time.Hour), Labels: map[string]string{"alertname": "LatencyHigh"},
		},
	)
	recordAlerts(t, f, ops.Alert{
		Name: "LatencyHigh", Status: "resolved", Service: "search", Environment: "dev", Fingerprint: "fp-lat",
		StartsAt: epoch.Add(-2 * time.Hour), EndsAt: epoch.Add(-time.Hour), Labels: map[string]string{"alertname": "LatencyHigh"},
	})
	return f
}

func recordAlerts(t *testing.T, f *fixture, alerts ...ops.Alert) {
	t.Helper()
	if err := f.svc.RecordAlerts(context.Background(), alerts); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait() // the incident is delivered
}

// TestAlertsShowInTheMatrixAndTheirScreen: a firing alert marks its
// (service, environment) cell and the legend names the mark; the cell's
// summary says the alert, since when, its summary and the incident it
// opened; a (and 7, and the palette) opens the alerts screen with labels,
// summary, since when and the incident; a resolved alert marks nothing
// and is listed as resolved. Goldens of the matrix at 80×24 and of the
// alerts screen at 80×24 and 120×40.
func TestAlertsShowInTheMatrixAndTheirScreen(t *testing.T) {
	f := alertsWorld(t)
	incs, err := f.db.Incidents(context.Background(), releaseUpdate(t, f, "checkout/production"))
	if err != nil || len(incs) != 1 {
		t.Fatalf("checkout/production's alert opened %d incidents (%v), want 1", len(incs), err)
	}
	inc := incs[0].Number

	m := newModel(t, f, modelOptions())
	v := m.View()
	checkFills(t, v, 80, 24)
	lines := strings.Split(v, "\n")
	for _, c := range []struct {
		svc  string
		mark bool
	}{{"checkout", true}, {"payments", true}, {"search", false}} {
		row := lineWith(lines, " "+c.svc+" ")
		if got := strings.Count(row, "⚑"); c.mark && got != 1 || !c.mark && got != 0 {
			t.Errorf("%s's row has %d alert marks, want %v: %q", c.svc, got, c.mark, row)
		}
	}
	if !strings.Contains(lineWith(lines, " checkout "), "✓ 1.4.2 ↑1 ⚑") || !strings.Contains(lineWith(lines, " payments "), "✓ 3.1.0 ⚑") {
		t.Errorf("the marks are not on checkout/production and payments/dev:\n%s", v)
	}
	if !strings.Contains(v, matrix.AlertShortLegend) {
		t.Errorf("the legend does not name the alert mark:\n%s", v)
	}
	teatest.RequireEqualOutput(t, f.stable([]byte(v)))

	press(m, ":", "svc checkout production", "enter")
	v = m.View()
	if want := "⚑ alert    HighErrorRate · incident " + inc + " · since 2026-11-27 09:25 UTC"; !strings.Contains(v, want) {
		t.Errorf("the cell's summary does not say %q:\n%s", want, v)
	}
	if !strings.Contains(strings.Split(v, "\n")[23], "a alerts") {
		t.Errorf("the footer does not offer the cell's alerts:\n%s", v)
	}
	press(m, "a")
	if m.active() != common.PageAlerts || !strings.Contains(m.header(), "Alerts: checkout/production") {
		t.Fatalf("a: on %s %q, want the alerts of checkout/production", m.active(), m.header())
	}
	v = m.View()
	for _, s := range []string{"HighErrorRate", inc, "severity=critical", "checkout answers 4.1% of requests with 5xx", "since 2026-11-27 09:25 UTC", "http://alertmanager:9093"} {
		if !strings.Contains(v, s) {
			t.Errorf("the pair's alerts do not show %q:\n%s", s, v)
		}
	}
	if strings.Contains(v, "DiskFull") {
		t.Errorf("the pair's alerts show another pair's:\n%s", v)
	}
	press(m, "e") // every environment's
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			m.Update(tea.WindowSizeMsg{Width: sz.w, Height: sz.h})
			v := m.View()
			checkFills(t, v, sz.w, sz.h)
			for _, s := range []string{"⚑ 2 firing", "1 resolved", "HighErrorRate", "DiskFull", "LatencyHigh", "✓ resolved", inc} {
				if !strings.Contains(v, s) {
					t.Errorf("the alerts screen does not show %q:\n%s", s, v)
				}
			}
			if l := lineWith(strings.Split(v, "\n"), "DiskFull"); !strings.Contains(l, "⚑ firing") || !strings.Contains(l, "—") {
				t.Errorf("DiskFull is not firing without an incident: %q", l)
			}
			teatest.RequireEqualOutput(t, f.stable([]byte(v)))
		})
	}
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	press(m, "enter") // the selected one in full: still HighErrorRate, the row the cursor was on
	if v := m.View(); m.active() != common.PageRecord || !strings.Contains(v, "fp-err") || !strings.Contains(v, "alertname=HighErrorRate") {
		t.Errorf("enter does not show the whole alert:\n%s", v)
	}
	press(m, "esc", "s") // its matrix cell
	if st, ok := m.matrix.Selected(); m.active() != common.PageMatrix || !ok || st.Environment.Name != "checkout/production" {
		t.Errorf("s: on %s, selected %q, want the matrix on checkout/production", m.active(), st.Environment.Name)
	}
	press(m, ":", "alerts payments/dev", "enter")
	if v := m.View(); !strings.Contains(m.header(), "Alerts: payments/dev") || !strings.Contains(v, "DiskFull") || strings.Contains(v, "HighErrorRate") {
		t.Errorf("the palette's alerts payments/dev:\n%s", v)
	}
}

// TestAlertsRefreshWithWhatIsRecordedLater: the console reads alerts
// recorded after it opened on its next load, and a resolved notification
// takes the mark off the cell.
func TestAlertsRefreshWithWhatIsRecordedLater(t *testing.T) {
	f := servicesWorld(t)
	tm := startConsole(t, f, testOptions(), 100, 30)
	waitFor(t, tm, "search", "✓ 1.5.0")
	disk := ops.Alert{Name: "DiskFull", Status: "firing", Service: "payments", Environment: "dev", Fingerprint: "fp-disk", StartsAt: epoch, Annotations: map[string]string{"summary": "/var above 90%"}}
	recordAlerts(t, f, disk)
	waitFor(t, tm, "✓ 3.1.0 ⚑", "⚑alert") // the cell's mark, the legend naming it
	typeKeys(tm, "7")
	waitFor(t, tm, "Alerts", "DiskFull", "/var above 90%", "none opened")
	typeKeys(tm, "1")
	disk.Status = "resolved"
	recordAlerts(t, f, disk)
	waitFor(t, tm, "○not deployed ↑N behind") // the legend without the alert mark
	if out := finish(t, f, tm); bytes.Contains(out, []byte("⚑")) {
		t.Errorf("the resolved alert still marks its cell:\n%s", out)
	}
}

// releaseUpdate is the update that made unit's current release.
func releaseUpdate(t *testing.T, f *fixture, unit string) string {
	t.Helper()
	rels, err := f.svc.CurrentReleases(context.Background())
	if err != nil || rels[unit].UpdateID == "" {
		t.Fatalf("%s's release: %+v %v", unit, rels[unit], err)
	}
	return rels[unit].UpdateID
}

func lineWith(lines []string, s string) string {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// TestAlertIncidentQueuedWhileServiceNowIsDown: an alert's incident that
// ServiceNow has not taken yet shows as queued with its outbox item, in
// the cell's summary and on the alerts screen (a configuration without
// services: the pair is the environment).
func TestAlertIncidentQueuedWhileServiceNowIsDown(t *testing.T) {
	f := newFixture(t, fixtureOptions{alertIncidents: true})
	f.release(t, "production", "1.4.1")
	f.sim.Close() // ServiceNow goes away
	recordAlerts(t, f, ops.Alert{
		Name: "HighErrorRate", Status: "firing", Environment: "production", Fingerprint: "fp-err", StartsAt: epoch,
		Annotations: map[string]string{"summary": "5xx above 2%"},
	})
	m := newModel(t, f, modelOptions())
	press(m, "l") // production
	v := m.View()
	if !strings.Contains(lineWith(strings.Split(v, "\n"), "checkout-service"), "⚑") ||
		!strings.Contains(v, "⚑ alert    HighErrorRate · incident queued (outbox #") {
		t.Errorf("the matrix does not show production's alert with its queued incident:\n%s", v)
	}
	press(m, "a")
	v = m.View()
	if !strings.Contains(v, "Alerts: production") || !strings.Contains(lineWith(strings.Split(v, "\n"), "⚑ firing"), "queued (outbox #") {
		t.Errorf("the alerts screen does not show the queued incident:\n%s", v)
	}
}
