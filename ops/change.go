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

// Change is the local mirror of a ServiceNow change_request.
type Change struct {
	SysID            string      `json:"sys_id"`
	Number           string      `json:"number"`
	Type             string      `json:"type"`
	State            ChangeState `json:"state"`
	Approval         string      `json:"approval"`
	Risk             string      `json:"risk,omitempty"`
	ShortDescription string      `json:"short_description,omitempty"`
	CmdbCI           string      `json:"cmdb_ci,omitempty"`
	AssignmentGroup  string      `json:"assignment_group,omitempty"`
	RequestedBy      string      `json:"requested_by,omitempty"` // display name, else sys_id
	RequestedByID    string      `json:"requested_by_id,omitempty"`
	StartDate        time.Time   `json:"start_date,omitzero"`
	EndDate          time.Time   `json:"end_date,omitzero"`
	CorrelationID    string      `json:"correlation_id,omitempty"`
	Active           bool        `json:"active"`
	CloseCode        string      `json:"close_code,omitempty"`
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
	State        string          `json:"state"`
	Comments     string          `json:"comments,omitempty"`
	SysUpdatedOn time.Time       `json:"sys_updated_on"`
	SysModCount  int             `json:"sys_mod_count"`
	Raw          json.RawMessage `json:"-"`
}

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
