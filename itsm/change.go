package itsm

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ChangeState is a change_request state code (SERVICENOW.md §4.2). Codes are
// negative numbers for the open states; queries and writes use the code.
type ChangeState int

// The base-system change states. StateUnknown marks a missing or
// unparseable state (0 is a real state, Review).
const (
	StateNew       ChangeState = -5
	StateAssess    ChangeState = -4
	StateAuthorize ChangeState = -3
	StateScheduled ChangeState = -2
	StateImplement ChangeState = -1
	StateReview    ChangeState = 0
	StateClosed    ChangeState = 3
	StateCanceled  ChangeState = 4
	StateUnknown   ChangeState = -1000
)

// String returns the state's label ("Implement"), "Unknown", or "State(n)"
// for codes outside the base model (e.g. legacy task states).
func (s ChangeState) String() string {
	switch s {
	case StateNew:
		return "New"
	case StateAssess:
		return "Assess"
	case StateAuthorize:
		return "Authorize"
	case StateScheduled:
		return "Scheduled"
	case StateImplement:
		return "Implement"
	case StateReview:
		return "Review"
	case StateClosed:
		return "Closed"
	case StateCanceled:
		return "Canceled"
	case StateUnknown:
		return "Unknown"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Code returns the state code as ServiceNow expects it in JSON and queries
// ("-1").
func (s ChangeState) Code() string { return strconv.Itoa(int(s)) }

// Terminal reports whether no further state change is possible.
func (s ChangeState) Terminal() bool { return s == StateClosed || s == StateCanceled }

// ParseChangeState accepts a code ("-2", "-2.0"), a label ("Scheduled") or a
// state-model name ("draft", "implement"), case-insensitively.
func ParseChangeState(s string) (ChangeState, error) {
	v := Value{Value: strings.TrimSpace(s)}
	if n, ok := v.Int(); ok {
		return ChangeState(n), nil
	}
	switch strings.ToLower(v.Value) {
	case "new", "draft":
		return StateNew, nil
	case "assess":
		return StateAssess, nil
	case "authorize", "authorise":
		return StateAuthorize, nil
	case "scheduled":
		return StateScheduled, nil
	case "implement":
		return StateImplement, nil
	case "review":
		return StateReview, nil
	case "closed":
		return StateClosed, nil
	case "canceled", "cancelled":
		return StateCanceled, nil
	}
	return StateUnknown, fmt.Errorf("itsm: unknown change state %q", s)
}

// Change types.
const (
	TypeNormal    = "normal"
	TypeStandard  = "standard"
	TypeEmergency = "emergency"
)

// Close codes for CloseChange.
const (
	CloseSuccessful       = "successful"
	CloseSuccessfulIssues = "successful_issues"
	CloseUnsuccessful     = "unsuccessful"
)

// Change is a change_request as received from either API. Reference fields
// hold sys_ids; the *Name fields are filled when the instance sent a display
// value or the dot-walked name. Zero times mean "unset".
type Change struct {
	SysID               string
	Number              string
	Type                string
	State               ChangeState
	Approval            string // not requested, requested, approved, rejected
	Risk                int    // 1 Very High, 2 High, 3 Moderate, 4 Low; 0 unset
	Impact              int    // 1 High, 2 Medium, 3 Low; 0 unset
	Priority            int
	ShortDescription    string
	Description         string
	AssignmentGroup     string
	AssignmentGroupName string
	CmdbCI              string
	CmdbCIName          string
	RequestedBy         string
	RequestedByName     string
	StartDate           time.Time // planned window
	EndDate             time.Time
	WorkStart           time.Time // actual start/end, stamped by the instance
	WorkEnd             time.Time
	CloseCode           string
	CloseNotes          string
	CorrelationID       string
	Active              bool
	OnHold              bool
	ConflictStatus      string
	SysCreatedOn        time.Time
	SysUpdatedOn        time.Time
	SysModCount         int
	// Fields is the record as received, every field leniently decoded.
	Fields Record
	// Raw is the record's JSON as received.
	Raw json.RawMessage
}

// changeFields is the explicit field list the client requests for changes
// (sysparm_fields). Dot-walked names fill the *Name fields.
var changeFields = []string{
	"sys_id", "number", "type", "state", "approval", "risk", "impact", "priority",
	"short_description", "description", "assignment_group", "assignment_group.name",
	"cmdb_ci", "cmdb_ci.name", "requested_by", "requested_by.name",
	"start_date", "end_date", "work_start", "work_end", "close_code", "close_notes",
	"correlation_id", "active", "on_hold", "conflict_status",
	"sys_created_on", "sys_updated_on", "sys_mod_count",
}

// ChangeFields returns the field list used for change reads and the mirror.
func ChangeFields() []string { return append([]string(nil), changeFields...) }

// ChangeFromRecord converts a decoded record (Table API value mode, display
// values, or Change Management API {value, display_value} objects) into a
// Change.
func ChangeFromRecord(r Record, raw json.RawMessage) Change {
	ch := changeFrom(func(f string) Value { return r[f] }, raw)
	ch.Fields = r
	return ch
}

// changeFrom is ChangeFromRecord over any source of field values (a
// record's map, or a page decoded straight into changeSlots); absent
// fields are the zero Value.
func changeFrom(get func(string) Value, raw json.RawMessage) Change {
	str := func(f string) string { return get(f).Value }
	at := func(f string) time.Time {
		t, err := get(f).Time()
		if err != nil {
			return time.Time{}
		}
		return t
	}
	name := func(f string) string {
		if n := str(f + ".name"); n != "" {
			return n
		}
		if v := get(f); v.Display != "" && v.Display != v.Value {
			return v.Display
		}
		return ""
	}
	ch := Change{
		SysID:               str("sys_id"),
		Number:              str("number"),
		Type:                strings.ToLower(str("type")),
		State:               stateOf(get("state")),
		Approval:            str("approval"),
		ShortDescription:    str("short_description"),
		Description:         str("description"),
		AssignmentGroup:     str("assignment_group"),
		AssignmentGroupName: name("assignment_group"),
		CmdbCI:              str("cmdb_ci"),
		CmdbCIName:          name("cmdb_ci"),
		RequestedBy:         str("requested_by"),
		RequestedByName:     name("requested_by"),
		StartDate:           at("start_date"),
		EndDate:             at("end_date"),
		WorkStart:           at("work_start"),
		WorkEnd:             at("work_end"),
		CloseCode:           str("close_code"),
		CloseNotes:          str("close_notes"),
		CorrelationID:       str("correlation_id"),
		Active:              get("active").Bool(),
		OnHold:              get("on_hold").Bool(),
		ConflictStatus:      str("conflict_status"),
		SysCreatedOn:        at("sys_created_on"),
		SysUpdatedOn:        at("sys_updated_on"),
		Raw:                 raw,
	}
	ch.Risk, _ = get("risk").Int()
	ch.Impact, _ = get("impact").Int()
	ch.Priority, _ = get("priority").Int()
	ch.SysModCount, _ = get("sys_mod_count").Int()
	return ch
}

// changeSlots holds the fields changeFrom reads, decoded from one record
// object without a map (DecodeChanges).
type changeSlots [29]Value // one per changeSlot index (changeFields)

// changeSlot is the index of a field changeFrom reads, or -1.
func changeSlot(name string) int {
	switch name {
	case "sys_id":
		return 0
	case "number":
		return 1
	case "type":
		return 2
	case "state":
		return 3
	case "approval":
		return 4
	case "risk":
		return 5
	case "impact":
		return 6
	case "priority":
		return 7
	case "short_description":
		return 8
	case "description":
		return 9
	case "assignment_group":
		return 10
	case "assignment_group.name":
		return 11
	case "cmdb_ci":
		return 12
	case "cmdb_ci.name":
		return 13
	case "requested_by":
		return 14
	case "requested_by.name":
		return 15
	case "start_date":
		return 16
	case "end_date":
		return 17
	case "work_start":
		return 18
	case "work_end":
		return 19
	case "close_code":
		return 20
	case "close_notes":
		return 21
	case "correlation_id":
		return 22
	case "active":
		return 23
	case "on_hold":
		return 24
	case "conflict_status":
		return 25
	case "sys_created_on":
		return 26
	case "sys_updated_on":
		return 27
	case "sys_mod_count":
		return 28
	}
	return -1
}

func (s *changeSlots) get(name string) Value {
	if i := changeSlot(name); i >= 0 {
		return (*s)[i]
	}
	return Value{}
}

// DecodeChanges decodes a page of change_request records straight into
// Changes, as ChangeFromRecord(DecodeRecords(body)) would but without a
// map per record: Fields is nil (Raw keeps every field). The mirror
// decodes 1,000 changes a page this way. A body the one-pass decoder does
// not take goes through DecodeRecords, so results and errors are the same
// (FuzzDecodeChangesSame compares them).
func DecodeChanges(body []byte) ([]Change, error) {
	if out, ok := decodeChangesFast(body); ok {
		return out, nil
	}
	recs, raws, err := decodeRecordsSlow(body)
	if err != nil {
		return nil, err
	}
	var out []Change
	if recs != nil {
		out = make([]Change, len(recs))
	}
	for i, r := range recs {
		out[i] = ChangeFromRecord(r, raws[i])
		out[i].Fields = nil
	}
	return out, nil
}

func decodeChangesFast(body []byte) ([]Change, bool) {
	objs, ok := recordObjectsFast(body)
	if !ok {
		return nil, false
	}
	if objs == nil {
		return nil, true
	}
	out := make([]Change, len(objs))
	var slots changeSlots
	set := func(name string, v Value) {
		if j := changeSlot(name); j >= 0 {
			slots[j] = v
		}
	}
	for i, obj := range objs {
		slots = changeSlots{}
		if !eachFieldFast(obj, set) {
			return nil, false
		}
		out[i] = changeFrom(slots.get, obj)
	}
	return out, true
}

// stateOf decodes a state that may be a code string, a float, or a label.
func stateOf(v Value) ChangeState {
	if n, ok := v.Int(); ok {
		return ChangeState(n)
	}
	if s, err := ParseChangeState(v.Value); err == nil {
		return s
	}
	if s, err := ParseChangeState(v.Display); err == nil {
		return s
	}
	return StateUnknown
}

// nameOf returns the dot-walked name of a reference field, else its display
// value when that differs from the sys_id.
func nameOf(r Record, field string) string {
	if n := r.Get(field + ".name"); n != "" {
		return n
	}
	if v := r[field]; v.Display != "" && v.Display != v.Value {
		return v.Display
	}
	return ""
}

// ParseRisk maps a risk label or code to its code: very high 1, high 2,
// moderate 3, low 4 (SERVICENOW.md §4.1; the docs' field table is wrong).
func ParseRisk(s string) (int, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return 0, nil
	case "1", "very high", "very_high", "critical":
		return 1, nil
	case "2", "high":
		return 2, nil
	case "3", "moderate", "medium":
		return 3, nil
	case "4", "low":
		return 4, nil
	}
	return 0, fmt.Errorf("itsm: unknown risk %q (want very high, high, moderate or low)", s)
}

// ParseImpact maps an impact or urgency label or code to its code: high 1,
// medium 2, low 3.
func ParseImpact(s string) (int, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return 0, nil
	case "1", "high":
		return 1, nil
	case "2", "medium", "moderate":
		return 2, nil
	case "3", "low":
		return 3, nil
	}
	return 0, fmt.Errorf("itsm: unknown impact/urgency %q (want high, medium or low)", s)
}
