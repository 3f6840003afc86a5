package ops_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// TestUpdateStatusesGateEveryUpdate: the statuses of many updates (one
// read of releases and leases for all) say for each whether it may run.
func TestUpdateStatusesGateEveryUpdate(t *testing.T) {
	w := newGatedWorld(t)
	done := w.proposeApproved(t, "1.0.0")
	if _, err := w.svc.Run(context.Background(), ops.RunRequest{Update: done.ID}); err != nil {
		t.Fatal(err)
	}
	w.deliverAll(t)
	canceled := w.raised(t, "1.1.0")
	if _, err := w.svc.Cancel(context.Background(), canceled.ID, "wrong build"); err != nil {
		t.Fatal(err)
	}
	w.deliverAll(t)
	waiting := w.raised(t, "1.2.0")

	sts, err := w.svc.UpdateStatuses(context.Background(), ops.UpdateFilter{})
	if err != nil || len(sts) != 3 {
		t.Fatalf("statuses %+v, %v", sts, err)
	}
	text := map[string]string{}
	for _, st := range sts {
		text[st.Update.ID] = st.GateText
	}
	if text[done.ID] != "succeeded" || text[canceled.ID] != "canceled: wrong build" ||
		!strings.HasPrefix(text[waiting.ID], "pending: change "+waiting.ChangeNumber+" is in Assess, awaiting approval") {
		t.Fatalf("gate texts %q", text)
	}
	w.cs.approve(waiting.ChangeNumber)
	w.sync(t)
	d, err := w.svc.UpdateDetail(context.Background(), waiting.ChangeNumber)
	if err != nil || d.GateText != "open: ready to run" || !d.Gate.Open || d.Change == nil || d.Change.Approval != ops.ApprovalApproved {
		t.Fatalf("detail %+v, %v", d.UpdateStatus, err)
	}
	if len(d.Plan.Batches) != 2 {
		t.Fatalf("detail plan %+v", d.Plan)
	}
}

// approvalReader is the change system that can tell who holds a change's
// pending approvals.
type approvalReader struct {
	*fakeChanges
	pending []ops.PendingApproval
}

func (a *approvalReader) PendingApprovals(context.Context, string) ([]ops.PendingApproval, error) {
	return a.pending, nil
}

func TestDecideByWhoHoldsNoApprovalSaysWhoDoes(t *testing.T) {
	lead := ops.PendingApproval{ApproverID: "sys-user-lead", Approver: "ops.lead", Group: "Platform Ops"}
	cab := ops.PendingApproval{ApproverID: "sys-user-cab", Approver: "cab.manager"}
	self := ops.PendingApproval{ApproverID: "sys-user-daytwo", Approver: "daytwo", Group: "Platform Ops"}
	tests := map[string]struct {
		pending  []ops.PendingApproval
		fourEyes bool
		msg      string // "" : the decision is queued
	}{
		"holds one":   {pending: []ops.PendingApproval{lead, self}},
		"nobody":      {msg: "daytwo acted as daytwo, but CHG0000001 has no pending approvals: nobody can decide it now; sync to see its state"},
		"others hold": {pending: []ops.PendingApproval{lead, cab}, msg: "daytwo acted as daytwo, who holds no pending approval on CHG0000001; pending: group Platform Ops (ops.lead); users: cab.manager (decide as one of them: servicenow.approver)"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w := newGatedWorld(t)
			u := w.raised(t, "1.0.0")
			reader := &approvalReader{fakeChanges: w.cs, pending: tc.pending}
			svc := w.service(t, func(c *ops.Config) { c.FourEyes = tc.fourEyes }, ops.WithApprover(reader))
			_, err := svc.Decide(context.Background(), ops.DecideRequest{Change: u.ChangeNumber, Approve: true})
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("decide: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tc.msg {
				t.Fatalf("err %v\nwant %s", err, tc.msg)
			}
		})
	}
}

// A conflict check still running when its delivery is done is polled by
// the sync cycle until it completes.
func TestConflictCheckStillRunningIsPolledBySync(t *testing.T) {
	w := newGatedWorld(t, func(e *ops.Environment, _ *ops.Config) { e.Change.CheckConflicts = true })
	w.cs.setConflict(ops.ConflictRunning)
	u := w.raised(t, "1.0.0")
	w.cs.approve(u.ChangeNumber)
	w.sync(t)
	g := w.gate(t, w.svc, u)
	if r, ok := reasonWith(g, ops.GateConflict); !ok || !strings.Contains(r.Message, "still running") {
		t.Fatalf("gate %q, want the check running", g.Summary())
	}
	w.cs.setConflict(ops.ConflictFound, ops.Conflict{Type: "blackout", Label: "Blackout", Schedule: "Year-end freeze"})
	w.clk.Advance(2 * time.Second)
	w.sync(t)
	g = w.gate(t, w.svc, u)
	r, ok := reasonWith(g, ops.GateConflict)
	if !ok || r.Queued || r.Message != "ServiceNow reports conflicts for "+u.ChangeNumber+": Blackout (Year-end freeze)" {
		t.Fatalf("gate %+v, want the conflict found", g.Reasons)
	}
	chk, err := w.db.ConflictCheck(context.Background(), u.ID)
	if err != nil || chk.State != ops.ConflictFound || len(chk.Conflicts) != 1 {
		t.Fatalf("record %+v, %v", chk, err)
	}
}
