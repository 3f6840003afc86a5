package ops

import (
	"encoding/json"
	"strconv"
	"time"
)

// ChangeState is a ServiceNow change_request state code. ServiceNow stores
// the codes as strings of (often negative) integers; labels appear only in
// display values.
type ChangeState int

// Change states of the change model (SERVICENOW.md §4.2).
const (
	ChangeNew       ChangeState = -5
	ChangeAssess    ChangeState = -4
	ChangeAuthorize ChangeState = -3
	ChangeScheduled ChangeState = -2
	ChangeImplement ChangeState = -1
	ChangeReview    ChangeState = 0
	ChangeClosed    ChangeState = 3
	ChangeCanceled  ChangeState = 4
)

// String returns the state's label as ServiceNow displays it.
func (s ChangeState) String() string {
	switch s {
	case ChangeNew:
		return "New"
	case ChangeAssess:
		return "Assess"
	case ChangeAuthorize:
		return "Authorize"
	case ChangeScheduled:
		return "Scheduled"
	case ChangeImplement:
		return "Implement"
	case ChangeReview:
		return "Review"
	case ChangeClosed:
		return "Closed"
	case ChangeCanceled:
		return "Canceled"
	default:
		return "state " + strconv.Itoa(int(s))
	}
}

// ChangeType is a change_request's type (SERVICENOW.md §4.1).
type ChangeType string

// Change types.
const (
	ChangeNormal    ChangeType = "normal"
	ChangeStandard  ChangeType = "standard"
	ChangeEmergency ChangeType = "emergency"
)

// ChangeTypes lists the change types daytwo raises.
func ChangeTypes() []ChangeType { return []ChangeType{ChangeNormal, ChangeStandard, ChangeEmergency} }

// Valid reports whether t is one of ChangeTypes.
func (t ChangeType) Valid() bool {
	switch t {
	case ChangeNormal, ChangeStandard, ChangeEmergency:
		return true
	}
	return false
}

// ApprovalState is a change's approval roll-up (change_request.approval)
// or one approver's state (sysapproval_approver.state): the exact strings
// ServiceNow stores (SERVICENOW.md §4.2, §5.1).
type ApprovalState string

// Approval states.
const (
	ApprovalNotRequested ApprovalState = "not requested"
	ApprovalRequested    ApprovalState = "requested"
	ApprovalApproved     ApprovalState = "approved"
	ApprovalRejected     ApprovalState = "rejected"
)

// Change is the local mirror of a ServiceNow change_request.
type Change struct {
	SysID            string        `json:"sys_id"`
	Number           string        `json:"number"`
	Type             ChangeType    `json:"type"`
	State            ChangeState   `json:"state"`
	Approval         ApprovalState `json:"approval"`
	Risk             string        `json:"risk,omitempty"`
	ShortDescription string        `json:"short_description,omitempty"`
	CmdbCI           string        `json:"cmdb_ci,omitempty"`
	AssignmentGroup  string        `json:"assignment_group,omitempty"`
	RequestedBy      string        `json:"requested_by,omitempty"` // display name, else sys_id
	RequestedByID    string        `json:"requested_by_id,omitempty"`
	StartDate        time.Time     `json:"start_date,omitzero"`
	EndDate          time.Time     `json:"end_date,omitzero"`
	CorrelationID    string        `json:"correlation_id,omitempty"`
	Active           bool          `json:"active"`
	CloseCode        string        `json:"close_code,omitempty"`
	// ConflictStatus is ServiceNow's conflict_status of the change.
	ConflictStatus ConflictStatus `json:"conflict_status,omitempty"`
	SysUpdatedOn   time.Time      `json:"sys_updated_on"`
	SysModCount    int            `json:"sys_mod_count"`
	// Raw is the record as ServiceNow returned it, kept so that fields daytwo
	// does not model yet are never lost.
	Raw json.RawMessage `json:"-"`
}

// Approval is one approver's decision on a change (sysapproval_approver).
type Approval struct {
	SysID        string          `json:"sys_id"`
	ChangeSysID  string          `json:"change_sys_id"`
	Approver     string          `json:"approver"`
	ApproverName string          `json:"approver_name,omitempty"`
	State        ApprovalState   `json:"state"`
	Comments     string          `json:"comments,omitempty"`
	SysUpdatedOn time.Time       `json:"sys_updated_on"`
	SysModCount  int             `json:"sys_mod_count"`
	Raw          json.RawMessage `json:"-"`
}

// Approved reports whether the change's approval lets it be implemented:
// approved, or a standard change (pre-approved; its approval field often
// stays "not requested", SERVICENOW.md §5.3).
func (c Change) Approved() bool { return c.Approval == ApprovalApproved || c.Type == ChangeStandard }

// Rejected reports whether an approver rejected the change (it is back in
// New with approval rejected).
func (c Change) Rejected() bool { return c.Approval == ApprovalRejected }

// Incident is an incident daytwo opened after a failed rollout.
type Incident struct {
	SysID            string          `json:"sys_id"`
	Number           string          `json:"number"`
	ChangeSysID      string          `json:"change_sys_id,omitempty"`
	UpdateID         string          `json:"update_id,omitempty"`
	State            string          `json:"state,omitempty"`
	ShortDescription string          `json:"short_description,omitempty"`
	SysUpdatedOn     time.Time       `json:"sys_updated_on"`
	Raw              json.RawMessage `json:"-"`
}
