package itsm

import (
	"reflect"
	"testing"

	"github.com/daytwo/daytwo/ops"
)

// The bridge converts approval records straight to ops.Approval; the
// result is what ApprovalFromRecord and its old mapping gave.
func TestOpsApprovalFromRecordSameAsViaApproval(t *testing.T) {
	bodies := []string{
		`{"result":[{"sys_id":"a1","sysapproval":"c1","sysapproval.number":"CHG1","sysapproval.correlation_id":"daytwo:u1",
			"approver":"u1","approver.name":"Ann","approver.user_name":"ann","group":"","state":"requested","comments":"",
			"due_date":"","sys_created_on":"2026-05-01 10:00:00","sys_updated_on":"2026-05-01 10:00:01","sys_mod_count":"2"}]}`,
		`{"result":[{"sys_id":"a2","sysapproval":{"value":"c2","display_value":"CHG2"},"approver":{"value":"u2","display_value":"Bob"},
			"state":"approved","comments":"fine","sys_updated_on":"2026-05-01T10:00:01","sys_mod_count":3.0}]}`,
		`{"result":[{"sys_id":"a3","sysapproval":"c3","approver":"u3","state":"rejected","sys_updated_on":"garbage","sys_mod_count":"x"}]}`,
		`{"result":[{"sys_id":"a4"}]}`,
	}
	for _, body := range bodies {
		recs, _, err := DecodeRecords([]byte(body))
		if err != nil || len(recs) != 1 {
			t.Fatalf("decode %s: %v", body, err)
		}
		a := ApprovalFromRecord(recs[0])
		want := ops.Approval{
			SysID: a.SysID, ChangeSysID: a.ChangeSysID, Approver: firstNonEmpty(a.ApproverUserName, a.Approver),
			ApproverName: a.ApproverName, State: ops.ApprovalState(a.State), Comments: a.Comments, SysUpdatedOn: a.SysUpdatedOn, SysModCount: a.SysModCount,
		}
		if got := opsApprovalFromRecord(recs[0]); !reflect.DeepEqual(got, want) {
			t.Errorf("opsApprovalFromRecord = %+v, want %+v", got, want)
		}
		// The poll asks for opsApprovalFields only: what it reads must be
		// among them.
		narrow := Record{}
		for _, f := range opsApprovalFields {
			if v, ok := recs[0][f]; ok {
				narrow[f] = v
			}
		}
		if got := opsApprovalFromRecord(narrow); !reflect.DeepEqual(got, want) {
			t.Errorf("opsApprovalFromRecord of the polled fields only = %+v, want %+v", got, want)
		}
	}
}
