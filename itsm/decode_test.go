package itsm

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Traps 1 and 2: values change JSON type between APIs and records.
func TestValueDecoding(t *testing.T) {
	tests := map[string]struct {
		in      string
		value   string
		display string
		link    string
		null    bool
	}{
		"string number (Table API)":   {in: `"3"`, value: "3"},
		"negative state string":       {in: `"-5"`, value: "-5"},
		"float (Change API)":          {in: `3.0`, value: "3"},
		"negative float":              {in: `-2.0`, value: "-2"},
		"fraction kept":               {in: `1.25`, value: "1.25"},
		"integer":                     {in: `10`, value: "10"},
		"bool true":                   {in: `true`, value: "true"},
		"bool false":                  {in: `false`, value: "false"},
		"null":                        {in: `null`, null: true},
		"empty reference":             {in: `""`, value: ""},
		"reference link+value":        {in: `{"link":"https://x/api/now/table/sys_user_group/287e","value":"287e"}`, value: "287e", link: "https://x/api/now/table/sys_user_group/287e"},
		"display_value=all reference": {in: `{"display_value":"Network","link":"https://x/l","value":"287e"}`, value: "287e", display: "Network", link: "https://x/l"},
		"change api typed float":      {in: `{"value":3.0,"display_value":"Closed"}`, value: "3", display: "Closed"},
		"change api typed bool":       {in: `{"value":false,"display_value":"false"}`, value: "false", display: "false"},
		"change api date internal":    {in: `{"value":"2026-05-02 22:00:00","display_value":"2026-05-02 15:00:00","display_value_internal":"2026-05-02 15:00:00"}`, value: "2026-05-02 22:00:00", display: "2026-05-02 15:00:00"},
		"value null in object":        {in: `{"value":null,"display_value":""}`, null: true},
		"display only (display=true)": {in: `{"display_value":"Network","link":"https://x/l"}`, value: "Network", display: "Network", link: "https://x/l"},
		"nested value object":         {in: `{"value":{"value":"x"}}`, value: "x"},
		"array kept as json":          {in: `[1, 2]`, value: "[1,2]"},
		"other object kept as json":   {in: `{"a": 1}`, value: `{"a":1}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var v Value
			if err := json.Unmarshal([]byte(tc.in), &v); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if v.Value != tc.value || v.Display != tc.display || v.Link != tc.link || v.Null != tc.null {
				t.Errorf("got %+v, want value=%q display=%q link=%q null=%v", v, tc.value, tc.display, tc.link, tc.null)
			}
		})
	}
}

func TestValueConversions(t *testing.T) {
	if n, ok := (Value{Value: "-5"}).Int(); !ok || n != -5 {
		t.Errorf("Int(-5) = %d, %v", n, ok)
	}
	if n, ok := (Value{Value: "3.0"}).Int(); !ok || n != 3 {
		t.Errorf("Int(3.0) = %d, %v", n, ok)
	}
	if _, ok := (Value{Value: ""}).Int(); ok {
		t.Error("Int(\"\") ok")
	}
	if _, ok := (Value{Value: "Moderate"}).Int(); ok {
		t.Error("Int(label) ok")
	}
	if !(Value{Value: "true"}).Bool() || (Value{Value: "false"}).Bool() || (Value{}).Bool() {
		t.Error("Bool")
	}
}

// Trap 3: date-times are UTC without zone marker.
func TestParseTime(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		"servicenow value": {in: "2026-05-01 14:03:22", want: time.Date(2026, 5, 1, 14, 3, 22, 0, time.UTC)},
		"empty":            {in: "", want: time.Time{}},
		"date only":        {in: "2026-05-01", want: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)},
		"rfc3339 offset":   {in: "2026-05-01T16:03:22+02:00", want: time.Date(2026, 5, 1, 14, 3, 22, 0, time.UTC)},
		"garbage":          {in: "May 1st", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseTime(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if !got.Equal(tc.want) || (!got.IsZero() && got.Location() != time.UTC) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	berlin := time.FixedZone("CEST", 2*3600)
	if got := FormatTime(time.Date(2026, 5, 1, 16, 3, 22, 0, berlin)); got != "2026-05-01 14:03:22" {
		t.Errorf("FormatTime = %q", got)
	}
	if FormatTime(time.Time{}) != "" {
		t.Error("FormatTime(zero) not empty")
	}
}

// Trap 11: result is an object, a one-element array or a list.
func TestDecodeRecordsShapes(t *testing.T) {
	tests := map[string]struct {
		body string
		n    int
	}{
		"object":             {`{"result":{"sys_id":"a"}}`, 1},
		"one-element array":  {`{"result":[{"sys_id":"a"}]}`, 1},
		"list":               {`{"result":[{"sys_id":"a"},{"sys_id":"b"}]}`, 2},
		"empty list":         {`{"result":[]}`, 0},
		"null":               {`{"result":null}`, 0},
		"absent":             {`{}`, 0},
		"non-object entries": {`{"result":["x",{"sys_id":"a"}]}`, 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			recs, raws, err := DecodeRecords([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != tc.n || len(raws) != tc.n {
				t.Errorf("got %d records, %d raws, want %d", len(recs), len(raws), tc.n)
			}
		})
	}
	if _, _, err := DecodeRecords([]byte(`{"result":"x"}`)); err == nil {
		t.Error("string result: no error")
	}
}

// Traps 1-4 together: the same change from the Table API (strings, link
// objects, "" references) and the Change API (typed {value, display_value}).
func TestChangeFromBothAPIs(t *testing.T) {
	for _, name := range []string{"table_change.json", "chgapi_create_normal.json", "display_all_change.json"} {
		t.Run(name, func(t *testing.T) {
			recs, raws, err := DecodeRecords([]byte(fixture(t, name)))
			if err != nil || len(recs) != 1 {
				t.Fatalf("decode: %v (%d)", err, len(recs))
			}
			ch := ChangeFromRecord(recs[0], raws[0])
			if ch.SysID != "1c87925347c12200e0ef563dbb9a7177" || ch.Number != "CHG0030042" {
				t.Errorf("ids: %q %q", ch.SysID, ch.Number)
			}
			if ch.AssignmentGroup != "287ebd7da9fe198100f92cc8d1d2154e" {
				t.Errorf("assignment_group = %q", ch.AssignmentGroup)
			}
			if len(ch.Raw) == 0 || ch.Fields == nil {
				t.Error("raw record not kept")
			}
			switch name {
			case "table_change.json":
				if ch.State != StateImplement || ch.Risk != 3 || ch.Impact != 2 || !ch.Active || ch.SysModCount != 4 {
					t.Errorf("table change: %+v", ch)
				}
				if ch.CmdbCI != "" || !ch.WorkEnd.IsZero() {
					t.Error("empty reference/date not empty")
				}
				if !ch.WorkStart.Equal(time.Date(2026, 5, 2, 22, 1, 7, 0, time.UTC)) {
					t.Errorf("work_start = %v", ch.WorkStart)
				}
			case "chgapi_create_normal.json":
				if ch.State != StateNew || ch.Risk != 3 || ch.Impact != 3 || !ch.Active || ch.OnHold || ch.Type != "normal" {
					t.Errorf("change api: %+v", ch)
				}
				if ch.AssignmentGroupName != "Platform Ops" {
					t.Errorf("group name = %q", ch.AssignmentGroupName)
				}
				if !ch.StartDate.Equal(time.Date(2026, 5, 2, 22, 0, 0, 0, time.UTC)) {
					t.Errorf("start_date must come from value (UTC), not display: %v", ch.StartDate)
				}
			case "display_all_change.json":
				if ch.State != StateImplement || ch.AssignmentGroupName != "Network" {
					t.Errorf("display all: %+v", ch)
				}
				if !ch.StartDate.Equal(time.Date(2026, 5, 1, 14, 0, 0, 0, time.UTC)) {
					t.Errorf("start_date = %v", ch.StartDate)
				}
			}
		})
	}
}

// Trap 4: states are negative codes; labels only with display values.
func TestChangeState(t *testing.T) {
	tests := map[string]ChangeState{
		"-5": StateNew, "-4.0": StateAssess, "Authorize": StateAuthorize, "scheduled": StateScheduled,
		"implement": StateImplement, "0": StateReview, "Closed": StateClosed, "cancelled": StateCanceled,
		"draft": StateNew,
	}
	for in, want := range tests {
		got, err := ParseChangeState(in)
		if err != nil || got != want {
			t.Errorf("ParseChangeState(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if StateImplement.String() != "Implement" || StateImplement.Code() != "-1" || ChangeState(1).String() != "State(1)" {
		t.Error("String/Code")
	}
	if r, _ := ParseRisk("moderate"); r != 3 {
		t.Errorf("risk moderate = %d, want 3 (not Low)", r)
	}
	// A state missing from the record is Unknown, not Review (0).
	if s := stateOf(Value{}); s != StateUnknown {
		t.Errorf("missing state = %v", s)
	}
}

// The fixed-layout fast path of ParseTime answers exactly what
// time.ParseInLocation(TimeLayout, …, UTC) answers, and leaves the rest to
// the general path.
func TestParseTimeLayoutSameAsParse(t *testing.T) {
	for _, s := range []string{
		"2026-05-01 14:03:22", "2024-02-29 23:59:59", "0000-01-01 00:00:00", "9999-12-31 23:59:59",
		"2026-04-31 10:00:00", "2023-02-29 10:00:00", "2026-13-01 10:00:00", "2026-00-01 10:00:00",
		"2026-11-00 10:00:00", "2026-11-26 24:00:00", "2026-11-26 10:60:00", "2026-11-26 10:00:60",
		"2026-11-26T10:00:00", "2026-11-26 10:00:0x", "+026-11-26 10:00:00", "2026-1-26 10:00:00 ",
		" 2026-11-26 10:00:00", "2026-11-26 10:00:00Z", "2026/11/26 10:00:00",
	} {
		want, wantErr := time.ParseInLocation(TimeLayout, s, time.UTC)
		got, ok := parseTimeLayout(s)
		if ok && (wantErr != nil || !got.Equal(want) || got.Location() != time.UTC) {
			t.Errorf("parseTimeLayout(%q) = %v; time.Parse %v, %v", s, got, want, wantErr)
		}
		if !ok && wantErr == nil && len(s) == len(TimeLayout) && s[10] == ' ' {
			t.Errorf("parseTimeLayout(%q) left a plain value to the slow path", s)
		}
		full, err := ParseTime(s)
		slowWant, slowErr := parseTimeSlow(s)
		if (err != nil) != (slowErr != nil) || !full.Equal(slowWant) {
			t.Errorf("ParseTime(%q) = %v, %v; without the fast path %v, %v", s, full, err, slowWant, slowErr)
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	for i := range 2000 {
		tm := now.Add(time.Duration(i) * 797 * time.Hour).Add(time.Duration(i) * 10473 * time.Second)
		got, err := ParseTime(FormatTime(tm))
		if err != nil || !got.Equal(tm) {
			t.Fatalf("round trip of %v: %v, %v", tm, got, err)
		}
	}
}

// parseTimeSlow is ParseTime as it was before the fast path.
func parseTimeSlow(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{TimeLayout, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("bad time %q", s)
}
