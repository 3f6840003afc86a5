package ops_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store"
)

// TestAlertsMapToTheirServicesPair: with services, an alert's environment
// and service labels name one (service, environment) pair; an environment
// several services run in needs the service label.
func TestAlertsMapToTheirServicesPair(t *testing.T) {
	ctx := context.Background()
	var envs []ops.Environment
	for _, svc := range []string{"checkout", "payments"} {
		envs = append(envs, ops.Environment{Name: ops.UnitKey(svc, "production"), Service: svc, Stage: "production", Targets: targetsNamed(svc + "-1")})
	}
	envs = append(envs, ops.Environment{Name: ops.UnitKey("search", "staging"), Service: "search", Stage: "staging", Targets: targetsNamed("s-1")})
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
	now := time.Now().UTC()
	if err := svc.RecordAlerts(ctx, []ops.Alert{
		{Name: "HighErrorRate", Status: "firing", Environment: "production", Service: "payments", StartsAt: now},
		{Name: "SlowSearch", Status: "firing", Environment: "staging", Service: "search-frontend", StartsAt: now}, // one service runs there
	}); err != nil {
		t.Fatal(err)
	}
	evs, err := db.ListEvents(ctx, ops.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range evs {
		if e.Action == "alert.firing" {
			got[e.Subject] = e.Environment
		}
	}
	if got["HighErrorRate"] != "payments/production" || got["SlowSearch"] != "search/staging" {
		t.Fatalf("alerts recorded on %v", got)
	}
	err = svc.RecordAlerts(ctx, []ops.Alert{{Name: "Vague", Status: "firing", Environment: "production", StartsAt: now}})
	if !errors.Is(err, ops.ErrNotFound) {
		t.Fatalf("an alert for production without a service label: %v; want refused (two services run there)", err)
	}
}
