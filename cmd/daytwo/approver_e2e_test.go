package main

import (
	"strings"
	"testing"
)

// TestApproverWithoutPasswordBreaksOnlyDecisions: an approver user
// without a password leaves reads (and proposals) working; approving says
// which key and variable are missing, never servicenow.auth.password.
func TestApproverWithoutPasswordBreaksOnlyDecisions(t *testing.T) {
	w := newEngineWorld(t, "0s")
	w.env = append(w.env, "DAYTWO_SN_APPROVER_USER=cab.manager")
	p := w.propose(t, "production", "1.1.0")
	for _, args := range [][]string{{"update", "list"}, {"change", "list"}, {"update", "show", p.ID}, {"sync", "--once"}} {
		if r := daytwo(t, w.env, args...); r.code != 0 {
			t.Errorf("%v with an approver lacking a password: %+v", args, r)
		}
	}
	r := daytwo(t, w.env, "change", "approve", p.Change, "--comment", "ok")
	if r.code != exitUsage || !strings.Contains(r.stderr, "servicenow.approver.username") ||
		!strings.Contains(r.stderr, "DAYTWO_SN_APPROVER_PASSWORD") || strings.Contains(r.stderr, "servicenow.auth.password") {
		t.Fatalf("approve: %+v", r)
	}
	w.env = append(w.env, "DAYTWO_SN_APPROVER_PASSWORD=cab.manager")
	if r := daytwo(t, w.env, "change", "approve", p.Change, "--comment", "ok"); r.code == exitUsage {
		t.Fatalf("approve with the approver's password: %+v", r)
	}
}
