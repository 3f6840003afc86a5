package snowsim

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
)

// ErrNotFound is returned by Sim methods when a record does not exist.
var ErrNotFound = errors.New("snowsim: record not found")

// ErrNotApprover is returned by Approve and Reject when the user has no
// pending approval on the change.
var ErrNotApprover = errors.New("snowsim: user has no pending approval on the change")

// transitionRule is the business rule that guards change state moves; the
// sys_id is fixed so clients can match the whole message.
const (
	transitionRule   = "Change Model: Check State Transition"
	transitionRuleID = "5ab7c3e1c3a31010b1c5d8d0c1d3ae27"
)

// apiError is an error answered with the platform's JSON envelope
// {"error":{"message","detail"},"status":"failure"}. A nil detail is null.
type apiError struct {
	status  int
	message string
	detail  *string
	header  http.Header
}

func (e *apiError) Error() string {
	d := "null"
	if e.detail != nil {
		d = *e.detail
	}
	return fmt.Sprintf("%d %s: %s", e.status, e.message, d)
}

func newAPIError(status int, message, detail string) *apiError {
	return &apiError{status: status, message: message, detail: &detail}
}

func nullDetail(status int, message string) *apiError {
	return &apiError{status: status, message: message}
}

func errUnauthenticated() *apiError {
	e := newAPIError(http.StatusUnauthorized, "User Not Authenticated", "Required to provide Auth information")
	e.header = http.Header{"Www-Authenticate": {`BASIC realm="Service-now"`}}
	return e
}

func errNoRecord() *apiError {
	return newAPIError(http.StatusNotFound, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
}

// errACL is the write-denied envelope; op is Update, Insert or Delete.
func errACL(op string) *apiError {
	return newAPIError(http.StatusForbidden, "Operation Failed", "ACL Exception "+op+" Failed due to security constraints")
}

func errReadACL() *apiError {
	return nullDetail(http.StatusForbidden, "Insufficient rights to query records")
}

func errInvalidTable(name string) *apiError {
	return newAPIError(http.StatusBadRequest, "Invalid table "+name, "Table "+name+" does not exist")
}

func errNoResource() *apiError {
	return nullDetail(http.StatusBadRequest, "Requested URI does not represent any resource")
}

func errMethod() *apiError { return nullDetail(http.StatusMethodNotAllowed, "Method not Supported") }

func brDetail(tableName string) string {
	return fmt.Sprintf("Operation against file '%s' was aborted by Business Rule '%s^%s'. Business Rule Stack:%s",
		tableName, transitionRule, transitionRuleID, transitionRule)
}

// errBusinessRule is the Table API answer to an illegal state move.
func errBusinessRule(tableName string) *apiError {
	return newAPIError(http.StatusForbidden, "Operation Failed", brDetail(tableName))
}

// errChangeBusinessRule is the Change Management API variant (§4.3).
func errChangeBusinessRule() *apiError {
	return newAPIError(http.StatusForbidden, "Change Request record could not be updated. "+brDetail("change_request"), "")
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	for k, vs := range e.header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	var b bytes.Buffer
	b.WriteString(`{"error":{"message":`)
	jsonString(&b, e.message)
	b.WriteString(`,"detail":`)
	if e.detail == nil {
		b.WriteString("null")
	} else {
		jsonString(&b, *e.detail)
	}
	b.WriteString(`},"status":"failure"}`)
	writeJSON(w, e.status, b.Bytes())
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// asAPIError converts any error into an envelope (500 for unexpected ones).
func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	if errors.Is(err, ErrNotFound) {
		return errNoRecord()
	}
	return newAPIError(http.StatusInternalServerError, "Internal server error", err.Error())
}
