package itsm

import (
	"context"
	"testing"

	"github.com/daytwo/daytwo/itsm/snowsim"
)

// TestEmergencyChangeNamesItsParent: an emergency change created with a
// parent (through the Change Management API, as daytwo does) stores the
// reference and follows the emergency state model: requesting approval moves
// it New → Authorize with a CAB approval requested, and it cannot be closed
// before that approval.
func TestEmergencyChangeNamesItsParent(t *testing.T) {
	ctx := context.Background()
	c, sim := simClient(t, snowsim.Options{}, 0, nil)
	orig, err := c.CreateChange(ctx, ChangeInput{ShortDescription: "release", CorrelationID: "daytwo:u-orig", CmdbCI: "checkout-service", AssignmentGroup: "Platform Ops"})
	if err != nil {
		t.Fatal(err)
	}
	em, err := c.CreateChange(ctx, ChangeInput{
		Type: TypeEmergency, ShortDescription: "emergency rollback", CorrelationID: "daytwo:u-orig-emergency",
		CmdbCI: "checkout-service", AssignmentGroup: "Platform Ops", Parent: orig.SysID,
	})
	if err != nil {
		t.Fatal(err)
	}
	rec, _, err := c.getOne(ctx, TableChangeRequest, em.SysID, []string{"parent", "type", "state"})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Get("parent") != orig.SysID || rec.Get("type") != TypeEmergency {
		t.Fatalf("emergency change: parent %q (want %q), type %q", rec.Get("parent"), orig.SysID, rec.Get("type"))
	}
	if got, err := c.findChanges(ctx, "daytwo:u-orig-emergency", true, ""); err != nil || len(got) != 1 {
		t.Fatalf("look-up by correlation id: %v, %v", got, err)
	}
	ch, err := c.RequestApproval(ctx, em.SysID)
	if err != nil {
		t.Fatal(err)
	}
	if ch.State != StateAuthorize || ch.Approval != "requested" {
		t.Fatalf("after the approval request: %s, approval %s; want Authorize, requested", ch.State, ch.Approval)
	}
	if _, err := c.CloseChange(ctx, em.SysID, CloseSuccessful, "done"); err == nil {
		t.Fatal("an emergency change awaiting authorization was closed")
	}
	if err := sim.Approve(ctx, em.Number, "cab.manager", "retrospective"); err != nil {
		t.Fatal(err)
	}
	closed, err := c.CloseChange(ctx, em.SysID, CloseSuccessful, "done")
	if err != nil || closed.State != StateClosed {
		t.Fatalf("close after authorization: %+v, %v", closed, err)
	}
}
