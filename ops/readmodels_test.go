package ops_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/daytwo/daytwo/ops"
)

func TestProposalStatusChangeDetailAndOpenUpdate(t *testing.T) {
	ctx := context.Background()
	w := newGatedWorld(t)
	if _, ok, err := w.svc.OpenUpdate(ctx, "production"); ok || err != nil {
		t.Fatalf("open update before any proposal: %v, %v", ok, err)
	}
	p, err := w.svc.Propose(ctx, ops.ProposeRequest{Environment: "production", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	w.svc.Wait()
	before, err := w.svc.ProposalStatus(ctx, p.Update.ID)
	if err != nil || before.Update == nil {
		t.Fatalf("proposal status before delivery: %+v, %v", before, err)
	}
	w.deliverAll(t)
	ps, err := w.svc.ProposalStatus(ctx, p.Update.ID)
	if err != nil || ps.Update == nil || ps.Update.ChangeNumber == "" || ps.Change == nil || ps.Change.Number != ps.Update.ChangeNumber || ps.Queued != 0 {
		t.Fatalf("proposal status after delivery: %+v, %v", ps, err)
	}
	open, ok, err := w.svc.OpenUpdate(ctx, "production")
	if err != nil || !ok || open.ID != p.Update.ID {
		t.Fatalf("open update: %+v, %v, %v", open, ok, err)
	}

	d, err := w.svc.ChangeDetail(ctx, ps.Update.ChangeNumber)
	if err != nil || d.Update == nil || d.Update.ID != p.Update.ID || d.Approvals == nil || d.Incidents == nil {
		t.Fatalf("change detail: %+v, %v", d, err)
	}
	_, err = w.svc.ChangeDetail(ctx, "CHG9999999")
	var nm *ops.NotMirroredError
	if !errors.As(err, &nm) || nm.Change != "CHG9999999" || !errors.Is(err, ops.ErrNotFound) {
		t.Fatalf("a change not mirrored: %v", err)
	}

	if _, err := w.svc.Cancel(ctx, p.Update.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := w.svc.OpenUpdate(ctx, "production"); ok || err != nil {
		t.Fatalf("open update after cancel: %v, %v", ok, err)
	}
}

func TestFailedStepsNameTheFailedStep(t *testing.T) {
	ctx := context.Background()
	w := newGatedWorld(t)
	u := w.proposeApproved(t, "1.0.0")
	w.fleet.broken["p1"] = true
	res, err := w.svc.Run(ctx, ops.RunRequest{Update: u.ID})
	if err == nil || res.Run.ID == "" {
		t.Fatalf("a broken target's run: %+v, %v", res.Run, err)
	}
	failed, err := w.svc.FailedSteps(ctx, res.Run.ID, 1)
	if err != nil || len(failed) == 0 {
		t.Fatalf("failed steps: %+v, %v", failed, err)
	}
	for _, f := range failed {
		if f.Step.State != ops.StepFailed || f.Step.Target != "p1" || len(f.Lines) > 1 {
			t.Fatalf("failed step %+v", f)
		}
	}
	if r, err := w.svc.GetRun(ctx, res.Run.ID); err != nil || r.UpdateID != u.ID {
		t.Fatalf("run %+v, %v", r, err)
	}
}

func TestSeedHistoryOnce(t *testing.T) {
	ctx := context.Background()
	w := newGatedWorld(t)
	for range 2 {
		if err := w.svc.SeedHistory(ctx, "demo", "0.9.0", "1.0.0"); err != nil {
			t.Fatal(err)
		}
	}
	rels, err := w.svc.Releases(ctx, "production", 0)
	if err != nil || len(rels) != 2 || rels[0].Version != "1.0.0" {
		t.Fatalf("releases %+v, %v", rels, err)
	}
	cur, err := w.svc.CurrentReleases(ctx)
	if err != nil || cur["production"].Version != "1.0.0" {
		t.Fatalf("current %+v, %v", cur, err)
	}
	evs, err := w.svc.AuditEvents(ctx, ops.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	seeded := 0
	for _, e := range evs {
		if e.Action == "release.seeded" && e.Actor == "demo" {
			seeded++
		}
	}
	if seeded != 1 {
		t.Fatalf("%d release.seeded events, want 1", seeded)
	}
}

// plainStore is a store with only the domain's methods: none of the
// capabilities (summary, daemons, anchors, counts, ping).
type plainStore struct{ ops.Store }

func TestStoreCapabilities(t *testing.T) {
	ctx := context.Background()
	w := newGatedWorld(t)
	st, err := w.svc.StoreStatus(ctx)
	if err != nil || st.Environments != 1 || st.SchemaVersion == 0 {
		t.Fatalf("store status: %+v, %v", st, err)
	}
	if err := w.svc.Heartbeat(ctx, ops.Daemon{ID: "h:1", Host: "h", PID: 1}); err != nil {
		t.Fatal(err)
	}
	if st, _ := w.svc.StoreStatus(ctx); len(st.Daemons) != 1 || st.Daemons[0].ID != "h:1" {
		t.Fatalf("daemons after a heartbeat: %+v", st.Daemons)
	}
	if err := w.svc.DaemonStopped(ctx, "h:1"); err != nil {
		t.Fatal(err)
	}
	if err := w.svc.PingStore(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.svc.MirrorCounts(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := w.svc.VerifyAuditAnchors(ctx, nil); err != nil || !v.OK {
		t.Fatalf("verify: %+v, %v", v, err)
	}
	if _, err := w.svc.RequeueOutbox(ctx, 424242); !errors.Is(err, ops.ErrNotFound) {
		t.Fatalf("requeue an unknown item: %v", err)
	}

	plain, err := ops.New(ops.Config{Environments: []ops.Environment{w.env}}, plainStore{w.db}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"status":    func() error { _, err := plain.StoreStatus(ctx); return err },
		"heartbeat": func() error { return plain.Heartbeat(ctx, ops.Daemon{ID: "h:1"}) },
		"stopped":   func() error { return plain.DaemonStopped(ctx, "h:1") },
		"ping":      func() error { return plain.PingStore(ctx) },
		"counts":    func() error { _, _, err := plain.MirrorCounts(ctx); return err },
		"anchors":   func() error { _, err := plain.VerifyAuditAnchors(ctx, nil); return err },
	} {
		if err := call(); err == nil || !strings.Contains(err.Error(), "does not") {
			t.Errorf("%s on a store without it: %v", name, err)
		}
	}
}
