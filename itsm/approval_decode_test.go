package itsm

import (
	"reflect"
	"strings"
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

// FuzzApprovalSinkSame: the poll's one-pass decode into ops.Approvals
// equals decoding records, filtering on the dot-walked correlation id and
// converting each, on every body.
func FuzzApprovalSinkSame(f *testing.F) {
	addDecodeSeeds(f, approvalSinkSeeds...)
	f.Fuzz(func(t *testing.T, body []byte) { checkApprovalSinkSame(t, body) })
}

var approvalSinkSeeds = []string{
	`{"result":[{"sys_id":"a1","sysapproval":"c1","sysapproval.correlation_id":"daytwo:u1","approver":"u1","approver.name":"Ann",
		"approver.user_name":"ann","state":"requested","comments":"","sys_updated_on":"2026-05-01 10:00:01","sys_mod_count":"2"},
		{"sys_id":"a2","sysapproval":{"value":"c2","display_value":"CHG2"},"sysapproval.correlation_id":"other:u2","state":"approved"},
		{"sys_id":"a3","approver":{"value":"u3","display_value":"Bob"},"state":"rejected","sys_mod_count":3.0,"sys_updated_on":"garbage"}]}`,
	`{"result":{"sys_id":"one","sysapproval.correlation_id":"daytwo:x"}}`,
	`{"result":[{"sys_id":"b","sys_id":"a","sysapproval.correlation_id":"daytwo:1","sysapproval.correlation_id":"no"}]}`,
	`{"result":[{"sys_id":"\u0061"}]}`,
}

func checkApprovalSinkSame(t *testing.T, body []byte) {
	t.Helper()
	const prefix = "daytwo:"
	sink := approvalSink{prefix: prefix}
	n, last, err := sink.add(body)
	recs, _, wantErr := decodeBodyBytes(body)
	if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
		t.Fatalf("%q: error %v, via records %v", body, err, wantErr)
	}
	if err != nil {
		return
	}
	var want []ops.Approval
	wantLast := ""
	if len(recs) > 0 {
		wantLast = recs[len(recs)-1].Get("sys_id")
	}
	for _, r := range recs {
		if cid, ok := r["sysapproval.correlation_id"]; ok && !strings.HasPrefix(cid.Value, prefix) {
			continue
		}
		want = append(want, opsApprovalFromRecord(r))
	}
	if n != len(recs) || last != wantLast {
		t.Fatalf("%q: %d rows, last %q; via records %d, %q", body, n, last, len(recs), wantLast)
	}
	if !reflect.DeepEqual(sink.out, want) {
		t.Fatalf("%q: approvals\n%#v\nvia records\n%#v", body, sink.out, want)
	}
}

func TestApprovalSinkSameOnSeeds(t *testing.T) {
	if approvalSlots != len(opsApprovalFields) {
		t.Fatalf("approvalSlots %d, opsApprovalFields %d", approvalSlots, len(opsApprovalFields))
	}
	for i, f := range opsApprovalFields {
		if approvalSlot(f) != i {
			t.Errorf("approvalSlot(%q) = %d, want %d", f, approvalSlot(f), i)
		}
	}
	for _, s := range append(append([]string(nil), decodeSameSeeds...), approvalSinkSeeds...) {
		checkApprovalSinkSame(t, []byte(s))
	}
}
