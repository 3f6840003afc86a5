package snowsim

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// walkedRecord is how writeTableRecord rendered sysparm_fields before the
// paths were resolved once per answer: each entry walked for each row. It
// is kept as the oracle of TestResolvedFieldsRenderAsWalked.
func (s *Sim) walkedRecord(b *bytes.Buffer, d *db, t *table, r *record, o *renderOpts) {
	walk := func(t *table, r *record, path string) (*table, *record, *field, bool) {
		parts := strings.Split(path, ".")
		for n, p := range parts {
			f := t.sch.field(p)
			if f == nil || f.kind == kPassword {
				return nil, nil, nil, false
			}
			if n == len(parts)-1 {
				return t, r, f, true
			}
			if f.kind != kRef {
				return nil, nil, nil, false
			}
			next := d.tables[f.ref]
			if next == nil {
				return nil, nil, nil, false
			}
			if r != nil {
				r = next.byID[r.vals[t.sch.idx[p]]]
			}
			t = next
		}
		return nil, nil, nil, false
	}
	ob := openObj(b)
	for _, name := range o.fields {
		ft, fr, f, ok := walk(t, r, name)
		if !ok {
			continue
		}
		v := ""
		if fr != nil {
			v = fr.vals[ft.sch.idx[f.name]]
		}
		s.writeTableField(ob, d, ft, fr, f, name, v, o)
	}
	ob.close()
}

// TestResolvedFieldsRenderAsWalked renders rows with field lists that walk
// one and two references, through empty and dangling references, into a
// password, through a field that is no reference, and name no field, in
// every display mode, and compares each with the per-row walk.
func TestResolvedFieldsRenderAsWalked(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.GenerateChanges(40, GenerateOptions{}); err != nil {
		t.Fatal(err)
	}
	tb := s.d.tables["change_request"]
	tb.set(tb.rows[3], "assignment_group", "")
	tb.set(tb.rows[4], "assignment_group", "d21000000000000000000000000000ff") // dangling
	tb.set(tb.rows[5], "requested_by", "")
	fields := strings.Split("sys_id,number,assignment_group.name,assignment_group.manager.name,assignment_group.manager.user_name,"+
		"requested_by.user_password,requested_by.name,number.name,cmdb_ci.support_group.manager,nope,nope.name,"+
		"cmdb_ci,cmdb_ci.name,parent.number,parent.assignment_group.name,sys_updated_on,state,comments", ",")
	for _, mode := range []displayMode{dvFalse, dvTrue, dvAll} {
		for _, excl := range []bool{true, false} {
			o := renderOpts{mode: mode, excludeLink: excl, fields: fields, baseURL: "https://x", loc: time.UTC}
			var walked renderOpts = o
			for _, r := range tb.rows {
				var got, want bytes.Buffer
				s.writeTableRecord(&got, s.d, tb, r, &o)
				s.walkedRecord(&want, s.d, tb, r, &walked)
				if got.String() != want.String() {
					t.Fatalf("mode %d exclude %v %s:\n got %s\nwant %s", mode, excl, tb.get(r, "number"), got.String(), want.String())
				}
			}
			if len(o.paths) == 0 || len(o.paths) == len(fields) {
				t.Fatalf("%d of %d fields resolved; the list holds some that name no field", len(o.paths), len(fields))
			}
		}
	}
}
