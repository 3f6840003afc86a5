package ops_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

func (w *gatedWorld) events(t *testing.T, action string) []ops.Event {
	t.Helper()
	evs, err := w.db.ListEvents(context.Background(), ops.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []ops.Event
	for _, e := range evs {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// service builds another service over the world's store and change
// system (another process, another configuration).
func (w *gatedWorld) service(t *testing.T, mutate func(*ops.Config), opts ...ops.Option) *ops.Service {
	t.Helper()
	cfg := ops.Config{CorrelationPrefix: "daytwo", Actor: "test", Username: "daytwo", Environments: []ops.Environment{w.env}}
	if mutate != nil {
		mutate(&cfg)
	}
	svc, err := ops.New(cfg, w.db, w.cs, append([]ops.Option{ops.WithClock(w.clk.Now), ops.WithHolder("host:2")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Wait)
	return svc
}

func TestDecideRefusals(t *testing.T) {
	tests := map[string]struct {
		fourEyes bool
		req      func(number string) ops.DecideRequest
		approved bool // the change was already approved
		is       error
		hint     ops.HintKind
		msg      string
	}{
		"unknown change": {
			req: func(string) ops.DecideRequest { return ops.DecideRequest{Change: "CHG9999999", Approve: true} },
			is:  ops.ErrNotFound, hint: ops.HintSync, msg: "change CHG9999999 is not in the local mirror",
		},
		"rejection without a comment": {
			req:  func(n string) ops.DecideRequest { return ops.DecideRequest{Change: n, Comment: "  "} },
			hint: ops.HintComment, msg: "needs a comment",
		},
		"already decided": {
			req: func(n string) ops.DecideRequest { return ops.DecideRequest{Change: n, Approve: true} }, approved: true,
			is: ops.ErrBlocked, msg: "only changes in Assess or Authorize await a decision",
		},
		"four eyes: daytwo raised it": {
			fourEyes: true, req: func(n string) ops.DecideRequest { return ops.DecideRequest{Change: n, Approve: true} },
			is: ops.ErrBlocked, msg: "four eyes",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w := newGatedWorld(t)
			u := w.raised(t, "1.0.0")
			if tc.approved {
				w.cs.approve(u.ChangeNumber)
				w.sync(t)
			}
			svc := w.service(t, func(c *ops.Config) { c.FourEyes = tc.fourEyes })
			_, err := svc.Decide(context.Background(), tc.req(u.ChangeNumber))
			if err == nil || tc.is != nil && !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err %v, want %v %q", err, tc.is, tc.msg)
			}
			if h, ok := ops.HintOf(err); tc.hint != "" && (!ok || h.Kind != tc.hint) || tc.hint == "" && ok {
				t.Fatalf("hint %+v, want %q", h, tc.hint)
			}
			if items, _ := w.db.ListOutbox(context.Background(), ops.OutboxFilter{Key: u.ChangeNumber}); len(items) != 0 {
				t.Fatalf("a refused decision was queued: %+v", items)
			}
		})
	}
}

func TestDecideIsQueuedDeliveredAndAudited(t *testing.T) {
	for _, approve := range []bool{true, false} {
		t.Run(map[bool]string{true: "approve", false: "reject"}[approve], func(t *testing.T) {
			w := newGatedWorld(t)
			u := w.raised(t, "1.0.0")
			if as := w.svc.DecidesAs(); as != "daytwo" {
				t.Fatalf("decides as %q", as)
			}
			if _, err := w.svc.Decision(context.Background(), u.ChangeNumber); !errors.Is(err, ops.ErrNotFound) {
				t.Fatalf("decision before any: %v", err)
			}
			if _, err := w.svc.Decide(context.Background(), ops.DecideRequest{Change: u.ChangeNumber, Approve: approve, Comment: "looks fine"}); err != nil {
				t.Fatal(err)
			}
			st, err := w.svc.Decision(context.Background(), u.ChangeNumber)
			if err != nil || st.Item.State != ops.OutboxPending || st.BlockedBy != nil {
				t.Fatalf("queued decision %+v, %v", st, err)
			}
			if ch := w.cs.change(u.ChangeNumber); ch.State != ops.ChangeAssess {
				t.Fatalf("the decision reached ServiceNow before delivery: %s", ch.State)
			}
			w.deliverAll(t)
			st, _ = w.svc.Decision(context.Background(), u.ChangeNumber)
			ch := w.cs.change(u.ChangeNumber)
			wantState, wantApproval, action := ops.ChangeScheduled, ops.ApprovalApproved, "change.approved"
			if !approve {
				wantState, wantApproval, action = ops.ChangeCanceled, ops.ApprovalRejected, "change.rejected"
			}
			if st.Item.State != ops.OutboxDelivered || ch.State != wantState || ch.Approval != wantApproval {
				t.Fatalf("after delivery: item %s, change %s/%s", st.Item.State, ch.State, ch.Approval)
			}
			if evs := w.events(t, action); len(evs) != 1 || evs[0].ChangeNumber != u.ChangeNumber || evs[0].Detail["comment"] != "looks fine" {
				t.Fatalf("%s events %+v", action, evs)
			}
			// The mirror has the decided change.
			if m, err := w.db.GetChange(context.Background(), ch.SysID); err != nil || m.State != wantState {
				t.Fatalf("mirror %+v, %v", m, err)
			}
		})
	}
}

// A refused decision holds back nothing once decided again: the new one
// supersedes it.
func TestRefusedDecisionIsSupersededByTheNext(t *testing.T) {
	w := newGatedWorld(t)
	u := w.raised(t, "1.0.0")
	w.cs.refuse["decide"] = true
	if _, err := w.svc.Decide(context.Background(), ops.DecideRequest{Change: u.ChangeNumber, Approve: true}); err != nil {
		t.Fatal(err)
	}
	st, err := w.svc.DeliverOutbox(context.Background())
	if err != nil || st.Failed != 1 {
		t.Fatalf("delivery %+v, %v", st, err)
	}
	first, _ := w.svc.Decision(context.Background(), u.ChangeNumber)
	if first.Item.State != ops.OutboxFailed || !strings.Contains(first.Item.LastError, "not allowed") {
		t.Fatalf("refused decision %+v", first.Item)
	}
	delete(w.cs.refuse, "decide")
	if _, err := w.svc.Decide(context.Background(), ops.DecideRequest{Change: u.ChangeNumber, Approve: false, Comment: "no, not today"}); err != nil {
		t.Fatal(err)
	}
	if evs := w.events(t, "outbox.superseded"); len(evs) != 1 {
		t.Fatalf("superseded events %+v", evs)
	}
	w.deliverAll(t)
	if ch := w.cs.change(u.ChangeNumber); ch.Approval != ops.ApprovalRejected {
		t.Fatalf("change %s/%s, want the second decision (rejected)", ch.State, ch.Approval)
	}
	old, _ := w.svc.GetOutbox(context.Background(), first.Item.ID)
	if old.State != ops.OutboxSuperseded {
		t.Fatalf("first decision %s, want superseded", old.State)
	}
}

// A decision made as the configured approver is never sent by a process
// without that approver's credentials: refused in words, then discarded.
func TestDecisionOnlyItsMakerCanSend(t *testing.T) {
	w := newGatedWorld(t)
	u := w.raised(t, "1.0.0")
	approver := newFakeChanges(w.clk.Now)
	cab := w.service(t, func(c *ops.Config) { c.ApproverUsername = "cab.manager" }, ops.WithApprover(approver))
	if as := cab.DecidesAs(); as != "cab.manager" {
		t.Fatalf("decides as %q", as)
	}
	if _, err := cab.Decide(context.Background(), ops.DecideRequest{Change: u.ChangeNumber, Approve: true}); err != nil {
		t.Fatal(err)
	}
	// The integration-only process delivers what is due.
	st, err := w.svc.DeliverOutbox(context.Background())
	if err != nil || st.Failed != 1 {
		t.Fatalf("delivery %+v, %v", st, err)
	}
	d, _ := w.svc.Decision(context.Background(), u.ChangeNumber)
	if d.Item.State != ops.OutboxFailed || !strings.Contains(d.Item.LastError, "holds no credentials for cab.manager") ||
		!strings.Contains(d.Item.LastError, "discard outbox item #") || strings.Contains(d.Item.LastError, "`") {
		t.Fatalf("refused decision %+v", d.Item)
	}
	if ch := w.cs.change(u.ChangeNumber); ch.State != ops.ChangeAssess {
		t.Fatalf("sent as somebody else: change is %s", ch.State)
	}
	disc, err := w.svc.DiscardOutbox(context.Background(), d.Item.ID, "wrong approver")
	if err != nil || disc.State != ops.OutboxDiscarded {
		t.Fatalf("discard %+v, %v", disc, err)
	}
	// The integration user decides itself now.
	if _, err := w.svc.Decide(context.Background(), ops.DecideRequest{Change: u.ChangeNumber, Approve: true}); err != nil {
		t.Fatal(err)
	}
	later, _ := w.svc.Decision(context.Background(), u.ChangeNumber)
	if later.Item.ID == d.Item.ID || later.BlockedBy != nil {
		t.Fatalf("new decision %+v", later)
	}
	if evs := w.events(t, "outbox.discarded"); len(evs) != 1 || evs[0].Detail["reason"] != "wrong approver" {
		t.Fatalf("discard events %+v", evs)
	}
	if _, err := w.svc.DiscardOutbox(context.Background(), d.Item.ID, "twice"); err == nil {
		t.Fatal("a discarded item discarded again")
	}
	w.deliverAll(t)
	if ch := w.cs.change(u.ChangeNumber); ch.State != ops.ChangeScheduled {
		t.Fatalf("change %s after the integration user's own decision", ch.State)
	}
}

func TestOutboxBackoffAndRetryAfter(t *testing.T) {
	tests := map[string]struct {
		err      error
		min, max time.Duration
	}{
		"unavailable backs off 1-2s first": {err: ops.ErrUnavailable, min: time.Second, max: 2 * time.Second},
		"429 waits as long as it is told":  {err: &ops.RetryLaterError{After: 45 * time.Second, Err: ops.ErrUnavailable}, min: 45 * time.Second, max: 45 * time.Second},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w := newGatedWorld(t)
			w.cs.failNext, w.cs.failErr = 1, tc.err
			p, err := w.svc.Propose(context.Background(), ops.ProposeRequest{Environment: "production", Version: "1.0.0"})
			if err != nil {
				t.Fatal(err)
			}
			w.svc.Wait()
			// The background delivery after propose may have taken the
			// failure already; deliver until it has.
			items, _ := w.db.ListOutbox(context.Background(), ops.OutboxFilter{Key: p.Update.ID})
			if len(items) == 0 {
				t.Fatal("nothing queued")
			}
			if items[0].Attempts == 0 {
				if _, err := w.svc.DeliverOutbox(context.Background()); err != nil {
					t.Fatal(err)
				}
				items, _ = w.db.ListOutbox(context.Background(), ops.OutboxFilter{Key: p.Update.ID})
			}
			it := items[0]
			wait := it.NextAttempt.Sub(w.clk.Now())
			if it.Attempts != 1 || it.State != ops.OutboxPending || wait < tc.min || wait > tc.max || it.LastError == "" {
				t.Fatalf("item %+v: next attempt in %s, want %s..%s", it, wait, tc.min, tc.max)
			}
			// Not due yet: nothing is sent.
			calls := len(w.cs.calls)
			if st, err := w.svc.DeliverOutbox(context.Background()); err != nil || st.Delivered != 0 || len(w.cs.calls) != calls {
				t.Fatalf("delivered before due: %+v %v", st, err)
			}
			w.clk.Advance(tc.max)
			if st, err := w.svc.DeliverOutbox(context.Background()); err != nil || st.Delivered == 0 {
				t.Fatalf("due delivery %+v, %v", st, err)
			}
		})
	}
}

func TestOutboxRetryMakesARefusedWriteDueAgain(t *testing.T) {
	w := newGatedWorld(t)
	w.cs.refuse["create"] = true
	p, err := w.svc.Propose(context.Background(), ops.ProposeRequest{Environment: "production", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	w.svc.Wait()
	if _, err := w.svc.DeliverOutbox(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The approval request behind the refused create waits.
	items, _ := w.db.ListOutbox(context.Background(), ops.OutboxFilter{Key: p.Update.ID})
	if len(items) < 2 || items[0].State != ops.OutboxFailed || items[1].State != ops.OutboxPending {
		t.Fatalf("items %+v", items)
	}
	delete(w.cs.refuse, "create")
	n, st, err := w.svc.RetryOutbox(context.Background(), 0)
	if err != nil || n < 1 || st.Delivered < 2 {
		t.Fatalf("retry: %d %+v %v", n, st, err)
	}
	u, _ := w.svc.GetUpdate(context.Background(), p.Update.ID)
	if u.ChangeNumber == "" || w.cs.change(u.ChangeNumber).State != ops.ChangeAssess {
		t.Fatalf("after retry %+v", u)
	}
}
