package snowsim

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseQuery(t *testing.T) {
	q := parseQuery("active=true^stateIN-1,0^ORshort_descriptionLIKEapp^NQnumber!=CHG1^ORDERBYnumber^ORDERBYDESCsys_updated_on^bad term^EQ")
	if len(q.groups) != 2 || len(q.groups[0]) != 2 || len(q.groups[0][1]) != 2 || len(q.groups[1]) != 1 {
		t.Fatalf("groups = %+v", q.groups)
	}
	if q.groups[0][1][1] != (term{"short_description", "LIKE", "app"}) {
		t.Fatalf("OR term = %+v", q.groups[0][1][1])
	}
	if len(q.order) != 2 || q.order[0].field != "number" || !q.order[1].desc {
		t.Fatalf("order = %+v", q.order)
	}
	for tok, want := range map[string]term{
		"descriptionNOT LIKEx":   {"description", "NOT LIKE", "x"},
		"stateNOT IN3,4":         {"state", "NOT IN", "3,4"},
		"cmdb_ciISEMPTY":         {"cmdb_ci", "ISEMPTY", ""},
		"sys_updated_on>=2026":   {"sys_updated_on", ">=", "2026"},
		"assignment_group.name=": {"assignment_group.name", "=", ""},
	} {
		if got, ok := parseTerm(tok); !ok || got != want {
			t.Errorf("parseTerm(%q) = %+v %v", tok, got, ok)
		}
	}
}

func TestEncodedQueries(t *testing.T) {
	e := newEnv(t, Options{})
	mk := func(f map[string]any) { e.createChange(f) }
	mk(map[string]any{"short_description": "Roll out checkout", "risk": "2", "start_date": "2026-05-01 10:00:00"})
	mk(map[string]any{"short_description": "Patch payments", "cmdb_ci": idPayments, "risk": "4", "start_date": "2026-05-03 10:00:00"})
	mk(map[string]any{"short_description": "Config tweak", "cmdb_ci": "", "assignment_group": idCABGroup, "risk": "3"})
	tests := map[string]struct {
		query string
		want  []string // numbers in order
	}{
		"equals":            {"risk=2", []string{"CHG0000001"}},
		"not equals":        {"risk!=2^ORDERBYnumber", []string{"CHG0000002", "CHG0000003"}},
		"like":              {"short_descriptionLIKEpay", []string{"CHG0000002"}},
		"not like":          {"short_descriptionNOT LIKEpay^ORDERBYnumber", []string{"CHG0000001", "CHG0000003"}},
		"startswith":        {"short_descriptionSTARTSWITHroll", []string{"CHG0000001"}},
		"endswith":          {"short_descriptionENDSWITHtweak", []string{"CHG0000003"}},
		"in":                {"riskIN2,3^ORDERBYDESCnumber", []string{"CHG0000003", "CHG0000001"}},
		"not in":            {"riskNOT IN2,3", []string{"CHG0000002"}},
		"isempty":           {"cmdb_ciISEMPTY", []string{"CHG0000003"}},
		"isnotempty":        {"cmdb_ciISNOTEMPTY^ORDERBYnumber", []string{"CHG0000001", "CHG0000002"}},
		"numeric lt":        {"risk<3", []string{"CHG0000001"}},
		"numeric ge":        {"risk>=3^ORDERBYrisk", []string{"CHG0000003", "CHG0000002"}},
		"date gt":           {"start_date>2026-05-02 00:00:00", []string{"CHG0000002"}},
		"date le empty":     {"start_date<=2026-05-02 00:00:00", []string{"CHG0000001"}},
		"or":                {"risk=2^ORrisk=4^ORDERBYnumber", []string{"CHG0000001", "CHG0000002"}},
		"nq":                {"risk=2^NQcmdb_ci=" + idPayments + "^ORDERBYnumber", []string{"CHG0000001", "CHG0000002"}},
		"dot-walk":          {"assignment_group.name=CAB Approval", []string{"CHG0000003"}},
		"dot-walk like":     {"cmdb_ci.nameLIKEpay", []string{"CHG0000002"}},
		"ref display":       {"cmdb_ci=payments-api", []string{"CHG0000002"}},
		"invalid dropped":   {"nmber=CHG0000001^risk=2", []string{"CHG0000001"}},
		"case sensitive op": {"short_descriptionlikepay^ORDERBYnumber", []string{"CHG0000001", "CHG0000002", "CHG0000003"}},
		"javascript date":   {"start_date>=javascript:gs.dateGenerate('2026-05-02','00:00:00')", []string{"CHG0000002"}},
		"between":           {"start_dateBETWEEN2026-05-01 00:00:00@2026-05-02 00:00:00", []string{"CHG0000001"}},
		"orderby dotwalk":   {"ORDERBYDESCcmdb_ci.name^cmdb_ciISNOTEMPTY", []string{"CHG0000002", "CHG0000001"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rows := e.call("daytwo", "GET", "/api/now/table/change_request?sysparm_fields=number&sysparm_query="+urlEscape(tc.query), nil).must(t, 200).list(t)
			if tc.want == nil {
				return
			}
			var got []string
			for _, r := range rows {
				got = append(got, r["number"].(string))
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("%s = %v, want %v", tc.query, got, tc.want)
			}
		})
	}
}

func urlEscape(s string) string {
	r := strings.NewReplacer("%", "%25", " ", "%20", "^", "%5E", "=", "%3D", "&", "%26", "+", "%2B", "'", "%27", "#", "%23")
	return r.Replace(s)
}

// FuzzParseQuery checks the parser and evaluator never panic and that
// parsing is deterministic.
func FuzzParseQuery(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "queries", "*.txt"))
	for _, p := range seeds {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			f.Add(line)
		}
	}
	f.Add("active=true^ORDERBYnumber")
	sim, err := New(Options{})
	if err != nil {
		f.Fatal(err)
	}
	d := sim.d
	t := d.tables["change_request"]
	r := t.newRecord()
	for i, fd := range t.sch.fields {
		r.vals[i] = fd.def
	}
	t.set(r, "assignment_group", idPlatformOps)
	f.Fuzz(func(tt *testing.T, s string) {
		a, b := parseQuery(s), parseQuery(s)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			tt.Fatalf("non-deterministic parse of %q", s)
		}
		q := d.compile(t, a, time.Unix(0, 0))
		_ = q.match(r)
		q.selectRows([]*record{r, r}, 0, 1)
	})
}
