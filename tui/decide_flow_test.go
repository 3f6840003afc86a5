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
	waitFor(t, tm, "Type "+chg+" to confirm")
	typeKeys(tm, "peer review ok", "tab", chg, "enter")
	waitFor(t, tm, "approved "+chg)

	f.sync(t) // the change moved on to Authorize: the manager's approval
	typeKeys(tm, ":", "approve "+chg, "enter")
	waitFor(t, tm, "Type "+chg+" to confirm")
	typeKeys(tm, "again", "tab", chg, "enter")
	waitFor(t, tm, "holds")
	out := strings.Join(strings.Fields(string(finish(t, f, tm))), " ")
	for _, want := range []string{
		"Approve " + chg + ": blocked: daytwo acted as daytwo, who holds no pending approval on " + chg,
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
