package itsm

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecodeChangesSame: a page decoded straight into Changes equals the
// page decoded into records and converted one by one, on every body (the
// same changes, raw JSON, and success or failure).
func FuzzDecodeChangesSame(f *testing.F) {
	addDecodeSeeds(f, decodeChangesSeeds...)
	f.Fuzz(func(t *testing.T, body []byte) { checkDecodeChangesSame(t, body) })
}

var decodeChangesSeeds = []string{
	`{"result":[{"sys_id":"a","number":"CHG1","type":"Normal","state":"-4","approval":"requested","risk":"3","impact":"2.0",
		"priority":"x","short_description":"d","assignment_group":{"value":"g1","display_value":"Ops"},"assignment_group.name":"",
		"cmdb_ci":"ci1","cmdb_ci.name":"payments","requested_by":{"value":"u1","display_value":"u1"},"start_date":"2026-05-01 10:00:00",
		"end_date":"garbage","work_start":"","active":"true","on_hold":false,"conflict_status":"No Conflict",
		"sys_created_on":"2026-05-01 09:00:00","sys_updated_on":"2026-05-01 10:00:01","sys_mod_count":"7","extra":"kept in raw"}]}`,
	`{"result":{"sys_id":"one","state":"Implement","active":{"value":"false"}}}`,
	`{"result":[{"sys_id":"a","sys_id":"b","state":-2.0,"sys_mod_count":3}]}`,
	`{"result":[{"number":"CHG\u0031"}]}`,
}

func checkDecodeChangesSame(t *testing.T, body []byte) {
	t.Helper()
	got, err := DecodeChanges(body)
	recs, raws, wantErr := DecodeRecords(body)
	if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
		t.Fatalf("%q: error %v, via records %v", body, err, wantErr)
	}
	if err != nil {
		return
	}
	if (got == nil) != (recs == nil) || len(got) != len(recs) {
		t.Fatalf("%q: %d changes (nil %v), via records %d (nil %v)", body, len(got), got == nil, len(recs), recs == nil)
	}
	for i, r := range recs {
		want := ChangeFromRecord(r, raws[i])
		want.Fields = nil
		if !bytes.Equal(got[i].Raw, want.Raw) {
			t.Fatalf("%q: change %d raw %q, via records %q", body, i, got[i].Raw, want.Raw)
		}
		g := got[i]
		g.Raw, want.Raw = nil, nil
		if !reflect.DeepEqual(g, want) {
			t.Fatalf("%q: change %d\n%#v\nvia records\n%#v", body, i, g, want)
		}
	}
}

// Every field the mirror asks for has its slot, at its place in the list,
// and nothing else has one: the typed decoder sees what a record holds.
func TestChangeSlotsAreTheChangeFields(t *testing.T) {
	if len(changeFields) != len(changeSlots{}) {
		t.Fatalf("%d change fields, %d slots", len(changeFields), len(changeSlots{}))
	}
	for i, f := range changeFields {
		if got := changeSlot(f); got != i {
			t.Errorf("changeSlot(%q) = %d, want %d", f, got, i)
		}
	}
	for _, f := range []string{"", "sys_class_name", "Sys_id", "assignment_group.display"} {
		if got := changeSlot(f); got != -1 {
			t.Errorf("changeSlot(%q) = %d, want -1", f, got)
		}
	}
}

func TestDecodeChangesSameOnSeeds(t *testing.T) {
	for _, s := range append(append([]string(nil), decodeSameSeeds...), decodeChangesSeeds...) {
		checkDecodeChangesSame(t, []byte(s))
	}
}
