package ops_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// raised proposes version and delivers the outbox: the change is raised
// and mirrored, awaiting approval.
func (w *gatedWorld) raised(t *testing.T, version string) ops.Update {
	t.Helper()
	p, err := w.svc.Propose(context.Background(), ops.ProposeRequest{Environment: w.env.Name, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	w.deliverAll(t)
	u, err := w.svc.GetUpdate(context.Background(), p.Update.ID)
	if err != nil || u.ChangeSysID == "" {
		t.Fatalf("after delivery: %+v, %v", u, err)
	}
	return u
}

func (w *gatedWorld) gate(t *testing.T, svc *ops.Service, u ops.Update) ops.GateResult {
	t.Helper()
	u, err := w.svc.GetUpdate(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	g, err := svc.Gate(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func reasonWith(g ops.GateResult, code string) (ops.GateReason, bool) {
	for _, r := range g.Reasons {
		if r.Code == code {
			return r, true
		}
	}
	return ops.GateReason{}, false
}

// TestGateEveryReasonThroughTheStore closes the gate of a real update in
// every way, on the real store with the in-memory change system, and
// checks what the gate says: its code, its words, whether it is pending
// and when it opens.
func TestGateEveryReasonThroughTheStore(t *testing.T) {
	type setup func(t *testing.T, w *gatedWorld) (ops.Update, *ops.Service)
	// reconfigured rebuilds the service over the same store and change
	// system with another configuration.
	reconfigured := func(t *testing.T, w *gatedWorld, mutate func(*ops.Environment, *ops.Config)) *ops.Service {
		env, cfg := w.env, ops.Config{CorrelationPrefix: "daytwo", Actor: "test", Username: "daytwo"}
		mutate(&env, &cfg)
		cfg.Environments = []ops.Environment{env}
		svc, err := ops.New(cfg, w.db, w.cs, ops.WithClock(w.clk.Now))
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	tests := map[string]struct {
		setup   setup
		code    string
		msg     string // a substring of the reason
		pending bool
		hint    ops.HintKind
		// opens is how long after now the gate opens by itself (0: not
		// by itself).
		opens time.Duration
	}{
		"change not raised yet": {setup: func(t *testing.T, w *gatedWorld) (ops.Update, *ops.Service) {
			p, err := w.svc.Propose(context.Background(), ops.ProposeRequest{Environment: w.env.Name, Version: "1.0.0"})
			if err != nil {
				t.Fatal(err)
			}
			return p.Update, w.svc
		}, code: ops.GateApproval, msg: "change not raised yet (queued for ServiceNow)", pending: true},
		"awaiting approval": {
			setup: func(t *testing.T, w *gatedWorld) (ops.Update, *ops.Service) { return w.raised(t, "1.0.0"), w.svc },
			code:  ops.GateApproval, msg: "is in Assess, awaiting approval", pending: true,
		},
		"approved in ServiceNow, not yet recorded": {setup: func(t *testing.T, w *gatedWorld) (ops.Update, *ops.Service) {
			u := w.raised(t, "1.0.0")
			w.cs.approve(u.ChangeNumber)
			if _, err := w.db.UpsertChanges(context.Background(), []ops.Change{w.cs.change(u.ChangeNumber)}); err != nil {
				t.Fatal(err)
			}
			return u, w.svc
		}, code: ops.GateApproval, msg: "is approved; the next sync records it", pending: true},
		"rejected": {setup: func(t *testing.T, w *gatedWorld) (ops.Update, *ops.Service) {
			u := w.raised(t, "1.0.0")
			w.cs.edit(u.ChangeNumber, func(ch *ops.Change) { ch.State, ch.Approval = ops.ChangeNew, ops.ApprovalRejected })
			if _, err := w.db.UpsertChanges(context.Background(), []ops.Change{w.cs.change(u.ChangeNumber)}); err != nil {
				t.Fatal(err)
			}
			return u, w.svc
		}, code: ops.GateState, msg: "was rejected"},
		"update canceled": {setup: func(t *testing.T, w *gatedWorld) (ops.Update, *ops.Service) {
			u := w.raised(t, "1.0.0")
			if _, err := w.svc.Cancel(context.Background(), u.ID, "not needed"); err != nil {
				t.Fatal(err)
			}
			return u, w.svc
		}, code: ops.GateState, msg: "update is canceled"},
		"window closed": {setup: func(t *testing.T, w *gatedWorld) (ops.Update, *ops.Service) {
			u := w.proposeApproved(t, "1.0.0")
			w.clk.Advance(3 * time.Hour) // the window is 2h
			return u, w.svc
		}, code: ops.GateWindow, msg: "the change window closed at"},
		"one-off freeze": {setup: func(t *testing.T, w *gatedWorld) (ops.Update, *ops.Service) {
			u := w.proposeApproved(t, "1.0.0")
			now := w.clk.Now()
			return u, reconfigured(t, w, func(_ *ops.Environment, c *ops.Config) {
				c.Freezes = []ops.Freeze{{Name: "launch", Start: now.Add(-time.Minute), End: now.Add(90 * time.Minute)}}
			})
		}, code: ops.GateFreeze, msg: "freeze launch until", opens: 90 * time.Minute},
		"conflict status from ServiceNow": {setup: func(t *testing.T, w *gatedWorld) (ops.Update, *ops.Service) {
			u := w.proposeApproved(t, "1.0.0")
			w.cs.edit(u.ChangeNumber, func(ch *ops.Change) { ch.ConflictStatus = ops.ConflictStatusConflict })
			w.sync(t)
			return u, w.svc
		}, code: ops.GateConflict, msg: "ServiceNow reports a conflict for"},
		"plan changed": {setup: func(t *testing.T, w *gatedWorld) (ops.Update, *ops.Service) {
			u := w.proposeApproved(t, "1.0.0")
			return u, reconfigured(t, w, func(e *ops.Environment, _ *ops.Config) { e.Targets = targetsNamed("p1", "p2", "p3") })
		}, code: ops.GatePlan, msg: "plan changed since it was proposed"},
		"blocking policy": {setup: func(t *testing.T, w *gatedWorld) (ops.Update, *ops.Service) {
			u := w.proposeApproved(t, "1.0.0")
			return u, reconfigured(t, w, func(_ *ops.Environment, c *ops.Config) {
				c.Policies = []ops.Policy{{Name: "only-two", Expr: `update.version.startsWith("2.")`, Action: ops.PolicyBlock}}
			})
		}, code: ops.GatePolicy, msg: "policy only-two"},
		"lease held by another process": {setup: func(t *testing.T, w *gatedWorld) (ops.Update, *ops.Service) {
			u := w.proposeApproved(t, "1.0.0")
			err := w.db.Atomic(context.Background(), func(tx ops.Tx) error {
				_, err := tx.AcquireLease(context.Background(), ops.LeaseRequest{Environment: "production", Holder: "other:1", RunID: "r-other", TTL: 5 * time.Minute})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			return u, w.svc
		}, code: ops.GateLease, msg: "production is being rolled by other:1 (run r-other)", opens: 5 * time.Minute},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w := newGatedWorld(t)
			u, svc := tc.setup(t, w)
			g := w.gate(t, svc, u)
			r, ok := reasonWith(g, tc.code)
			if g.Open || !ok || !strings.Contains(r.Message, tc.msg) {
				t.Fatalf("gate %+v; want closed by %s %q", g, tc.code, tc.msg)
			}
			if g.Pending != tc.pending {
				t.Fatalf("pending = %v, want %v: %+v", g.Pending, tc.pending, g)
			}
			if want := w.clk.Now().Add(tc.opens); tc.opens != 0 && !g.NextOpen.Equal(want) || tc.opens == 0 && !g.NextOpen.IsZero() {
				t.Fatalf("next opening %s, want %s after %s", g.NextOpen, tc.opens, w.clk.Now())
			}
			err := g.Err()
			switch {
			case tc.pending && !errors.Is(err, ops.ErrApprovalPending), !tc.pending && !errors.Is(err, ops.ErrBlocked):
				t.Fatalf("gate error %v", err)
			}
			if !strings.Contains(g.Summary(), r.Message) {
				t.Fatalf("summary %q does not give the reason %q", g.Summary(), r.Message)
			}
		})
	}
}

func TestGateChangeNotMirroredHintsSync(t *testing.T) {
	w := newGatedWorld(t)
	u := w.raised(t, "1.0.0")
	u.ChangeSysID = "sys-unknown" // raised, but the mirror has not seen it
	g, err := w.svc.Gate(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := reasonWith(g, ops.GateApproval)
	if !ok || r.Hint.Kind != ops.HintSync || r.Message != "change "+u.ChangeNumber+" not mirrored yet" || strings.Contains(r.Message, "daytwo") {
		t.Fatalf("reasons %+v, want a mirror reason with the sync hint", g.Reasons)
	}
	if h, ok := ops.HintOf(g.Err()); !ok || h.Kind != ops.HintSync {
		t.Fatalf("gate error %v carries no sync hint", g.Err())
	}
}

// TestGateAllReadsOncePerPass: many updates gated in one pass get the
// same answers as one by one.
func TestGateAllMatchesGateOneByOne(t *testing.T) {
	w := newGatedWorld(t)
	a := w.proposeApproved(t, "1.0.0")
	if _, err := w.svc.Run(context.Background(), ops.RunRequest{Update: a.ID}); err != nil {
		t.Fatal(err)
	}
	w.deliverAll(t)
	b := w.raised(t, "2.0.0")
	ups := []ops.Update{a, b}
	for i := range ups {
		ups[i], _ = w.svc.GetUpdate(context.Background(), ups[i].ID)
	}
	all, err := w.svc.GateAll(context.Background(), ups)
	if err != nil || len(all) != 2 {
		t.Fatalf("GateAll: %v, %v", all, err)
	}
	for i, u := range ups {
		one, err := w.svc.Gate(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		if one.Summary() != all[i].Summary() || one.Open != all[i].Open || one.Pending != all[i].Pending || one.Plan.Digest() != all[i].Plan.Digest() {
			t.Fatalf("update %s: GateAll %q, Gate %q", u.ID, all[i].Summary(), one.Summary())
		}
	}
	if all[0].Open || !strings.Contains(all[0].Summary(), "update is succeeded") || !all[1].Pending {
		t.Fatalf("gates %q / %q", all[0].Summary(), all[1].Summary())
	}
}

// TestGateConflictCheckStates: with daytwo's own conflict check, the gate
// waits for a check to complete and blocks only on listed conflicts.
func TestGateConflictCheckStates(t *testing.T) {
	tests := map[string]struct {
		state   ops.ConflictState
		found   []ops.Conflict
		open    bool
		msg     string
		queued  bool
		deliver bool
	}{
		"clear":   {state: "", open: true, deliver: true},
		"running": {state: ops.ConflictRunning, msg: "still running (started", queued: true, deliver: true},
		"failed":  {state: ops.ConflictFailed, msg: "failed (the worker is gone); it is started again", queued: true, deliver: true},
		"found": {
			state: ops.ConflictFound, found: []ops.Conflict{{Type: "ci_already_scheduled", Label: "CI Already Scheduled", With: "CHG0000099", CI: "checkout"}},
			msg: "ServiceNow reports conflicts for CHG0000001: CI Already Scheduled (with CHG0000099 on checkout)", deliver: true,
		},
		"not started": {msg: "not done yet (queued)", queued: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w := newGatedWorld(t, func(e *ops.Environment, _ *ops.Config) { e.Change.CheckConflicts = true })
			w.cs.setConflict(tc.state, tc.found...)
			p, err := w.svc.Propose(context.Background(), ops.ProposeRequest{Environment: w.env.Name, Version: "1.0.0"})
			if err != nil {
				t.Fatal(err)
			}
			if !contains(p.Queued, ops.OutboxCheckConflicts) {
				t.Fatalf("queued %v: no conflict check", p.Queued)
			}
			if !tc.deliver {
				// A check never started: it is given up before delivery.
				items, _ := w.db.ListOutbox(context.Background(), ops.OutboxFilter{Key: p.Update.ID})
				for _, it := range items {
					if it.Kind == ops.OutboxCheckConflicts {
						if _, err := w.svc.DiscardOutbox(context.Background(), it.ID, "test"); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			w.deliverAll(t)
			u, _ := w.svc.GetUpdate(context.Background(), p.Update.ID)
			if u.ChangeNumber == "" {
				t.Fatal("no change raised")
			}
			w.cs.approve(u.ChangeNumber)
			if tc.deliver {
				w.sync(t)
			} else if _, err := w.db.UpsertChanges(context.Background(), []ops.Change{w.cs.change(u.ChangeNumber)}); err != nil {
				t.Fatal(err)
			}
			u, _ = w.svc.GetUpdate(context.Background(), u.ID)
			g, err := w.svc.Gate(context.Background(), u)
			if err != nil {
				t.Fatal(err)
			}
			if tc.open {
				if !g.Open {
					t.Fatalf("gate %q, want open", g.Summary())
				}
				return
			}
			r, ok := reasonWith(g, ops.GateConflict)
			if g.Open || !ok || !strings.Contains(r.Message, tc.msg) || r.Queued != tc.queued {
				t.Fatalf("gate %+v; want a conflict reason %q (queued %v)", g.Reasons, tc.msg, tc.queued)
			}
		})
	}
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
