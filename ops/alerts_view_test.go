package ops_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store"
)

// TestAlertsFoldsNotificationsIncrementally: Service.Alerts reads the
// alert audit events into one entry per alert (fingerprint, else name, on
// its pair) whose latest notification decides whether it fires; a board
// passed back reads only what was recorded since, and other audit events
// are skipped. The board passed in is left as it was.
func TestAlertsFoldsNotificationsIncrementally(t *testing.T) {
	ctx := context.Background()
	envs := []ops.Environment{
		{Name: "checkout/production", Service: "checkout", Stage: "production", Targets: targetsNamed("c-1")},
		{Name: "payments/production", Service: "payments", Stage: "production", Targets: targetsNamed("p-1")},
	}
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "d.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.SyncEnvironments(ctx, envs, "test"); err != nil {
		t.Fatal(err)
	}
	svc, err := ops.New(ops.Config{Environments: envs, CorrelationPrefix: "daytwo", Actor: "test"}, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	record := func(alerts ...ops.Alert) {
		t.Helper()
		if err := svc.RecordAlerts(ctx, alerts); err != nil {
			t.Fatal(err)
		}
	}
	record(
		ops.Alert{
			Name: "HighErrorRate", Status: "firing", Service: "checkout", Environment: "production", Fingerprint: "a1", StartsAt: start,
			Labels: map[string]string{"severity": "critical"}, Annotations: map[string]string{"summary": "5xx above 2%"},
		},
		ops.Alert{Name: "HighErrorRate", Status: "firing", Service: "payments", Environment: "production", Fingerprint: "b1", StartsAt: start},
	)
	b1, err := svc.Alerts(ctx, ops.AlertBoard{})
	if err != nil {
		t.Fatal(err)
	}
	if len(b1.Alerts) != 2 || len(b1.Firing("checkout/production")) != 1 || len(b1.Firing("payments/production")) != 1 {
		t.Fatalf("first read: %+v", b1.Alerts)
	}
	got := b1.Firing("checkout/production")[0]
	if got.Summary() != "5xx above 2%" || got.Labels["severity"] != "critical" || !got.StartsAt.Equal(start) || got.Incident != nil {
		t.Fatalf("the alert read back: %+v", got)
	}
	// Repeated (Alertmanager's repeat_interval), then resolved on one pair.
	record(ops.Alert{Name: "HighErrorRate", Status: "firing", Service: "checkout", Environment: "production", Fingerprint: "a1", StartsAt: start})
	record(ops.Alert{Name: "HighErrorRate", Status: "resolved", Service: "payments", Environment: "production", Fingerprint: "b1", StartsAt: start, EndsAt: start.Add(time.Hour)})
	b2, err := svc.Alerts(ctx, b1)
	if err != nil {
		t.Fatal(err)
	}
	if len(b2.Alerts) != 2 || len(b2.Firing("checkout/production")) != 1 || len(b2.Firing("payments/production")) != 0 || b2.Seq <= b1.Seq {
		t.Fatalf("second read: %+v (seq %d after %d)", b2.Alerts, b2.Seq, b1.Seq)
	}
	if !b2.Alerts[0].Firing() || b2.Alerts[1].Firing() || !b2.Alerts[1].EndsAt.Equal(start.Add(time.Hour)) {
		t.Fatalf("firing first, then resolved: %+v", b2.Alerts)
	}
	if len(b1.Firing("payments/production")) != 1 {
		t.Fatal("the board passed in was changed")
	}
	// Nothing new: the same board.
	b3, err := svc.Alerts(ctx, b2)
	if err != nil || b3.Seq != b2.Seq || fmt.Sprint(b3.Alerts) != fmt.Sprint(b2.Alerts) {
		t.Fatalf("a read with nothing new: %+v %v", b3, err)
	}
}
