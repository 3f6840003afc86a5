package ops

import (
	"slices"
	"testing"
)

// reconcile reads only the rows reconcileFilter selects: every change
// shape on which changeOutcome moves a waiting update must be among them,
// or that update would wait for ever.
func TestReconcileFilterHoldsEveryMove(t *testing.T) {
	states := []ChangeState{ChangeNew, ChangeAssess, ChangeAuthorize, ChangeScheduled, ChangeImplement, ChangeReview, ChangeClosed, ChangeCanceled, ChangeState(99)}
	approvals := []ApprovalState{"", ApprovalNotRequested, ApprovalRequested, ApprovalApproved, ApprovalRejected, "cancelled"}
	moves := 0
	for _, us := range reconcileFilter.States {
		for _, cs := range states {
			for _, ap := range approvals {
				for _, typ := range ChangeTypes() {
					ch := Change{Number: "CHG1", State: cs, Approval: ap, Type: typ}
					next, _ := changeOutcome(Update{State: us}, ch)
					if next == "" || next == us || !us.CanTransition(next) {
						continue
					}
					moves++
					if !slices.Contains(reconcileFilter.ChangeStates, cs) && !slices.Contains(reconcileFilter.Approvals, ap) {
						t.Errorf("an update %s moves to %s on a %s change in state %v with approval %q, which reconcileFilter does not select",
							us, next, typ, cs, ap)
					}
				}
			}
		}
	}
	if moves == 0 {
		t.Fatal("no move enumerated: the test checks nothing")
	}
}
