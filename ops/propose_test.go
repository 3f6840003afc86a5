package ops_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

func TestProposeRules(t *testing.T) {
	type result struct {
		err  error // errors.Is target (nil: success)
		hint ops.HintKind
		msg  string
	}
	tests := map[string]struct {
		mutate func(*ops.Environment, *ops.Config)
		before func(t *testing.T, w *gatedWorld) // what happened before
		req    ops.ProposeRequest
		want   result
		check  func(t *testing.T, w *gatedWorld, p ops.Proposal)
	}{
		"a second open update is refused": {
			before: func(t *testing.T, w *gatedWorld) { w.raised(t, "1.0.0") },
			req:    ops.ProposeRequest{Version: "1.1.0"},
			want:   result{err: ops.ErrBlocked, hint: ops.HintSupersede, msg: "production already has an open update"},
		},
		"--supersede cancels the open one": {
			before: func(t *testing.T, w *gatedWorld) { w.raised(t, "1.0.0") },
			req:    ops.ProposeRequest{Version: "1.1.0", Supersede: true},
			check: func(t *testing.T, w *gatedWorld, p ops.Proposal) {
				if len(p.Superseded) != 1 || p.Superseded[0].Version != "1.0.0" {
					t.Fatalf("superseded %+v", p.Superseded)
				}
				old, _ := w.svc.GetUpdate(context.Background(), p.Superseded[0].ID)
				if old.State != ops.UpdateCanceled {
					t.Fatalf("superseded update is %s", old.State)
				}
				w.deliverAll(t)
				if ch := w.cs.change(old.ChangeNumber); ch.State != ops.ChangeCanceled {
					t.Fatalf("the superseded change is %s, want Canceled", ch.State)
				}
			},
		},
		"a running update cannot be superseded": {
			before: func(t *testing.T, w *gatedWorld) {
				u := w.proposeApproved(t, "1.0.0")
				w.fleet.onDeploy = func(ops.StepRequest) {
					w.fleet.onDeploy = nil
					_, err := w.svc.Propose(context.Background(), ops.ProposeRequest{Environment: "production", Version: "1.1.0", Supersede: true})
					if !errors.Is(err, ops.ErrBlocked) || !strings.Contains(err.Error(), "is running update") {
						t.Errorf("propose while running: %v", err)
					}
				}
				if _, err := w.svc.Run(context.Background(), ops.RunRequest{Update: u.ID}); err != nil {
					t.Fatal(err)
				}
				w.deliverAll(t)
			},
			req: ops.ProposeRequest{Version: "1.1.0"}, // once finished, a new one is fine
		},
		"the release it runs is refused": {
			before: func(t *testing.T, w *gatedWorld) {
				u := w.proposeApproved(t, "1.0.0")
				if _, err := w.svc.Run(context.Background(), ops.RunRequest{Update: u.ID}); err != nil {
					t.Fatal(err)
				}
				w.deliverAll(t)
			},
			req:  ops.ProposeRequest{Version: "1.0.0"},
			want: result{err: ops.ErrNothingToDo, hint: ops.HintForce, msg: "production already runs 1.0.0 with this config"},
		},
		"--force redeploys the release it runs": {
			before: func(t *testing.T, w *gatedWorld) {
				u := w.proposeApproved(t, "1.0.0")
				if _, err := w.svc.Run(context.Background(), ops.RunRequest{Update: u.ID}); err != nil {
					t.Fatal(err)
				}
				w.deliverAll(t)
			},
			req: ops.ProposeRequest{Version: "1.0.0", Force: true},
			check: func(t *testing.T, _ *gatedWorld, p ops.Proposal) {
				if p.Update.FromVersion != "1.0.0" || p.Update.Version != "1.0.0" {
					t.Fatalf("redeploy %+v", p.Update)
				}
			},
		},
		"a blocking policy records a blocked, closed proposal": {
			mutate: func(_ *ops.Environment, c *ops.Config) {
				c.Policies = []ops.Policy{{Name: "no-major-two", Expr: `!update.version.startsWith("2.")`, Action: ops.PolicyBlock, Message: "2.x is not allowed"}}
			},
			req:  ops.ProposeRequest{Version: "2.0.0"},
			want: result{err: ops.ErrBlocked, msg: "no-major-two"},
			check: func(t *testing.T, w *gatedWorld, p ops.Proposal) {
				if !p.Blocked || p.Update.State != ops.UpdateBlocked || len(p.Queued) != 0 {
					t.Fatalf("proposal %+v", p)
				}
				stored, err := w.svc.GetUpdate(context.Background(), p.Update.ID)
				if err != nil || stored.State != ops.UpdateBlocked || !stored.State.Terminal() {
					t.Fatalf("stored %+v, %v", stored, err)
				}
				if n := len(w.cs.calls); n != 0 {
					t.Fatalf("a blocked proposal reached ServiceNow: %v", w.cs.calls)
				}
				// It is closed: the next proposal is not refused by it.
				if _, err := w.svc.Propose(context.Background(), ops.ProposeRequest{Environment: "production", Version: "1.9.0"}); err != nil {
					t.Fatalf("propose after a blocked one: %v", err)
				}
			},
		},
		"a warning policy does not block": {
			mutate: func(_ *ops.Environment, c *ops.Config) {
				c.Policies = []ops.Policy{{Name: "prefer-one", Expr: `update.version.startsWith("1.")`, Action: ops.PolicyWarn}}
			},
			req: ops.ProposeRequest{Version: "2.0.0"},
			check: func(t *testing.T, _ *gatedWorld, p ops.Proposal) {
				if p.Blocked || len(p.Verdicts) != 1 || p.Verdicts[0].Passed {
					t.Fatalf("proposal %+v", p)
				}
			},
		},
		"a dry run stores nothing": {
			req: ops.ProposeRequest{Version: "1.0.0", DryRun: true},
			check: func(t *testing.T, w *gatedWorld, p ops.Proposal) {
				ups, err := w.db.ListUpdates(context.Background(), ops.UpdateFilter{})
				if err != nil || len(ups) != 0 || len(p.Queued) != 0 {
					t.Fatalf("dry run stored %d updates, queued %v (%v)", len(ups), p.Queued, err)
				}
			},
		},
		"a bad config key": {
			req:  ops.ProposeRequest{Version: "1.0.0", Set: map[string]string{"log-level": "debug"}},
			want: result{hint: ops.HintConfigKey, msg: `config key "log-level"`},
		},
		"a bad version": {
			req:  ops.ProposeRequest{Version: "../1.0"},
			want: result{msg: "version"},
		},
		"an unknown change type": {
			req:  ops.ProposeRequest{Version: "1.0.0", ChangeType: "urgent"},
			want: result{msg: `change type "urgent": want normal, standard or emergency`},
		},
		"a standard change needs a template": {
			req:  ops.ProposeRequest{Version: "1.0.0", ChangeType: ops.ChangeStandard},
			want: result{msg: "a standard change needs environments[production].change.template"},
		},
		"an emergency change": {
			req: ops.ProposeRequest{Version: "1.0.0", ChangeType: ops.ChangeEmergency},
			check: func(t *testing.T, w *gatedWorld, p ops.Proposal) {
				w.deliverAll(t)
				u, _ := w.svc.GetUpdate(context.Background(), p.Update.ID)
				if u.ChangeType != ops.ChangeEmergency || w.cs.change(u.ChangeNumber).Type != ops.ChangeEmergency {
					t.Fatalf("update %+v change %+v", u, w.cs.change(u.ChangeNumber))
				}
			},
		},
		"a change window that ends before it starts": {
			req:  ops.ProposeRequest{Version: "1.0.0", Start: time.Now().Add(2 * time.Hour), End: time.Now().Add(time.Hour)},
			want: result{msg: "before it starts"},
		},
		"an unknown environment": {
			req:  ops.ProposeRequest{Environment: "nowhere", Version: "1.0.0"},
			want: result{err: ops.ErrNotFound},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var mutate []func(*ops.Environment, *ops.Config)
			if tc.mutate != nil {
				mutate = append(mutate, tc.mutate)
			}
			w := newGatedWorld(t, mutate...)
			if tc.before != nil {
				tc.before(t, w)
				w.cs.calls = nil
			}
			if tc.req.Environment == "" {
				tc.req.Environment = "production"
			}
			p, err := w.svc.Propose(context.Background(), tc.req)
			failing := tc.want.err != nil || tc.want.msg != "" || tc.want.hint != ""
			switch {
			case !failing && err != nil:
				t.Fatalf("propose: %v", err)
			case failing && err == nil:
				t.Fatalf("propose succeeded: %+v", p.Update)
			case tc.want.err != nil && !errors.Is(err, tc.want.err):
				t.Fatalf("err %v, want %v", err, tc.want.err)
			case err != nil && !strings.Contains(err.Error(), tc.want.msg):
				t.Fatalf("err %q, want %q", err, tc.want.msg)
			}
			if err != nil {
				h, ok := ops.HintOf(err)
				if tc.want.hint != "" && (!ok || h.Kind != tc.want.hint) || tc.want.hint == "" && ok {
					t.Fatalf("hint %+v (%v), want %q", h, ok, tc.want.hint)
				}
				// The domain names no command or flag.
				if strings.Contains(err.Error(), "--") || strings.Contains(err.Error(), "`") || strings.Contains(err.Error(), "daytwo ") {
					t.Fatalf("the domain's message cites the CLI: %q", err)
				}
			}
			if tc.check != nil {
				tc.check(t, w, p)
			}
		})
	}
}

func TestProposeUngatedTypeOverrideHasAHint(t *testing.T) {
	w := newRunWorld(t, false)
	svc := w.service(t, "host:1")
	_, err := svc.Propose(context.Background(), ops.ProposeRequest{Environment: "fleet", Version: "1.0.0", ChangeType: ops.ChangeEmergency})
	if h, ok := ops.HintOf(err); err == nil || !ok || h.Kind != ops.HintChangeType || !strings.Contains(err.Error(), "not gated by a change") {
		t.Fatalf("err %v hint %+v", err, h)
	}
}

func TestProposeRollbackAndCancel(t *testing.T) {
	w := newRunWorld(t, false)
	svc := w.service(t, "host:1")
	w.release(t, svc, "1.0.0")
	w.release(t, svc, "2.0.0")
	if _, err := svc.ProposeRollback(context.Background(), ops.RollbackRequest{Environment: "fleet", To: "0.5.0"}); err == nil {
		t.Fatal("rolled back to a version never run")
	} else if h, ok := ops.HintOf(err); !ok || h.Kind != ops.HintReleaseHistory || h.Subject != "fleet" || err.Error() != "fleet never ran 0.5.0" {
		t.Fatalf("err %q hint %+v", err, h)
	}
	p, err := svc.ProposeRollback(context.Background(), ops.RollbackRequest{Environment: "fleet"})
	if err != nil || !p.Update.Rollback || p.Update.Version != "1.0.0" || p.Update.FromVersion != "2.0.0" {
		t.Fatalf("rollback %+v, %v", p.Update, err)
	}
	// One open update: a second rollback is refused, unless it supersedes.
	if _, err := svc.ProposeRollback(context.Background(), ops.RollbackRequest{Environment: "fleet", To: "1.0.0"}); !errors.Is(err, ops.ErrBlocked) {
		t.Fatalf("second rollback: %v", err)
	}
	u, err := svc.Cancel(context.Background(), p.Update.ID, "changed my mind")
	if err != nil || u.State != ops.UpdateCanceled || u.Reason != "changed my mind" {
		t.Fatalf("cancel: %+v, %v", u, err)
	}
	if _, err := svc.Cancel(context.Background(), p.Update.ID, "again"); !errors.Is(err, ops.ErrIllegalTransition) {
		t.Fatalf("cancel twice: %v", err)
	}
	res, err := svc.Run(context.Background(), ops.RunRequest{Update: mustPropose(t, svc, ops.ProposeRequest{Environment: "fleet", Version: "3.0.0"}).ID})
	if err != nil || res.Run.State != ops.RunSucceeded {
		t.Fatalf("run after cancel: %+v %v", res.Run, err)
	}
	if _, err := svc.ProposeRollback(context.Background(), ops.RollbackRequest{Environment: "nowhere"}); err == nil {
		t.Fatal("rollback of an unknown environment")
	}
}

func mustPropose(t *testing.T, svc *ops.Service, req ops.ProposeRequest) ops.Update {
	t.Helper()
	p, err := svc.Propose(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return p.Update
}
