package tui

import (
	"context"
	"strings"
	"testing"

	"github.com/daytwo/daytwo/ops"
)

// TestFlowApproveThenRefusedInWords: the console decides as its
// configured approver (daytwo, a Platform Ops member; the change was raised
// by ops.lead). The first approval goes through; in the next stage only
// the group's manager, ops.lead, the requester, holds a pending approval,
// and the console says so at the moment of the action: whom daytwo acted
// as and who holds the pending approvals (issue 12, section 2, bullet 1).
func TestFlowApproveThenRefusedInWords(t *testing.T) {
	f := newFixture(t, fixtureOptions{approver: "daytwo"})
	ctx := context.Background()
	p, err := f.svc.Propose(ctx, proposeReq("production", "1.5.0"))
	if err != nil {
		t.Fatal(err)
	}
	f.sync(t)
	chg := changeOf(t, f, p.Update.ID)
	tm := startConsole(t, f, testOptions(), 100, 30)
	waitFor(t, tm, "production")

	typeKeys(tm, ":", "approve "+chg, "enter")
	waitFor(t, tm, "Type "+chg+" to confirm", "in ServiceNow as daytwo (servicenow.approver)")
	typeKeys(tm, "peer review ok", "tab", chg, "enter")
	waitFor(t, tm, "approved "+chg)

	f.sync(t) // the change moved on to Authorize: the manager's approval
	typeKeys(tm, ":", "approve "+chg, "enter")
	waitFor(t, tm, "Type "+chg+" to confirm")
	typeKeys(tm, "again", "tab", chg, "enter")
	waitFor(t, tm, "holds")
	out := strings.Join(strings.Fields(string(finish(t, f, tm))), " ")
	for _, want := range []string{
		"Approve " + chg + " as daytwo: blocked: daytwo acted as daytwo, who holds no pending approval on " + chg,
		"pending: users: ops.lead (requester)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the console does not say %q:\n%s", want, out)
		}
	}
	items, err := f.svc.Outbox(ctx, ops.OutboxFilter{Key: chg, States: []ops.OutboxState{ops.OutboxPending, ops.OutboxFailed, ops.OutboxDelivered}})
	if err != nil || len(items) != 1 || items[0].State != ops.OutboxDelivered {
		t.Fatalf("outbox for %s = %+v (%v); want only the delivered first decision", chg, items, err)
	}
}

// TestFlowDiscardOutboxItem: on the outbox screen, D gives the selected
// write up after its number is typed; it is then discarded, never sent.
func TestFlowDiscardOutboxItem(t *testing.T) {
	f := newFixture(t, fixtureOptions{offline: true})
	ctx := context.Background()
	if _, err := f.svc.Propose(ctx, proposeReq("production", "2.0.0")); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait() // its first, failed, delivery attempt is over: nothing holds the items
	opts := testOptions()
	opts.Instance = "http://127.0.0.1:1"
	tm := startConsole(t, f, opts, 100, 30)
	waitFor(t, tm, "production")
	typeKeys(tm, "6")
	waitFor(t, tm, "change.create")
	typeKeys(tm, "D")
	waitFor(t, tm, "Type 1 to confirm")
	typeKeys(tm, "raised by hand instead", "tab", "1", "enter")
	waitFor(t, tm, "discarded #1")
	finish(t, f, tm)
	it, err := f.svc.GetOutbox(ctx, 1)
	if err != nil || it.State != ops.OutboxDiscarded {
		t.Fatalf("item #1 = %+v (%v); want discarded", it, err)
	}
	evs, err := f.svc.AuditEvents(ctx, ops.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range evs {
		found = found || e.Action == "outbox.discarded" && e.Detail["reason"] == "raised by hand instead"
	}
	if !found {
		t.Fatalf("no outbox.discarded audit event with the reason: %+v", evs)
	}
}
