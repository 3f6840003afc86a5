package itsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Sentinel errors. A *Error matches one or more of them with errors.Is, so
// callers branch on the class of failure without parsing text.
var (
	// ErrUnauthorized means the instance rejected the credentials (HTTP 401),
	// including OAuth token endpoint failures.
	ErrUnauthorized = errors.New("itsm: unauthorized")
	// ErrForbidden means an ACL denied the operation (HTTP 403 that is not a
	// business-rule abort).
	ErrForbidden = errors.New("itsm: forbidden")
	// ErrBusinessRule means a business rule aborted the write (ServiceNow
	// answers 403 "Operation Failed" ... "aborted by Business Rule"). It is not
	// an authorization problem; an illegal state transition is the usual cause.
	ErrBusinessRule = errors.New("itsm: aborted by business rule")
	// ErrNotFound means the record does not exist or an ACL hides it; ServiceNow
	// answers both with the same 404.
	ErrNotFound = errors.New("itsm: not found")
	// ErrRateLimited means the instance answered 429 and the wait it asked for
	// did not fit into the retry budget.
	ErrRateLimited = errors.New("itsm: rate limited")
	// ErrUnavailable means the instance could not be reached or did not answer
	// as a REST API: connection errors, 502/503/504, redirects and HTML pages
	// (hibernating developer instances, SSO login pages, maintenance pages).
	ErrUnavailable = errors.New("itsm: instance unavailable")
	// ErrBadRequest means the instance refused the request as malformed
	// (HTTP 400, 405, 406, 415).
	ErrBadRequest = errors.New("itsm: bad request")
	// ErrOutcomeUnknown means a non-idempotent request (a create) may or may
	// not have been applied: the connection dropped after sending, the call
	// timed out, or the answer was a 5xx or not an API answer. Look the record
	// up by correlation id before sending it again.
	ErrOutcomeUnknown = errors.New("itsm: outcome unknown")
	// ErrStateNotApplied means the instance answered a state change with
	// success but the record kept another state (lenient instances, workflows
	// that move the record back).
	ErrStateNotApplied = errors.New("itsm: state change not applied")
	// ErrIllegalTransition means no legal path leads from the change's current
	// state to the requested one without approval (or at all).
	ErrIllegalTransition = errors.New("itsm: illegal state transition")
	// ErrAmbiguous means a lookup by name matched several records; use the
	// sys_id instead.
	ErrAmbiguous = errors.New("itsm: ambiguous name")
)

// Error is a failed ServiceNow call. Status is the HTTP status, or 0 when no
// HTTP answer was received (connection error, timeout).
type Error struct {
	// Status is the HTTP status code, 0 for transport failures.
	Status int
	// Message and Detail come from the ServiceNow error envelope
	// {"error":{"message","detail"}} (detail may be null) or from the OAuth
	// error body, or describe the transport failure.
	Message string
	Detail  string
	// Method and Path identify the call (path without query string).
	Method string
	Path   string
	// RetryAfter is the wait the server asked for on a 429, if any.
	RetryAfter time.Duration
	// OutcomeUnknown is set when a non-idempotent request may have been
	// applied; it makes the error match ErrOutcomeUnknown.
	OutcomeUnknown bool
	// HTML is set when the instance answered with an HTML page.
	HTML bool
	// Err is the underlying transport error, if any.
	Err error
}

// Error implements error. It never contains credentials: the request body and
// headers are not part of it.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("servicenow ")
	b.WriteString(e.Method)
	b.WriteByte(' ')
	b.WriteString(e.Path)
	b.WriteString(": ")
	if e.Status != 0 {
		fmt.Fprintf(&b, "HTTP %d", e.Status)
		if e.Message != "" || e.Detail != "" {
			b.WriteString(": ")
		}
	}
	b.WriteString(e.Message)
	if e.Detail != "" && e.Detail != e.Message {
		if e.Message != "" {
			b.WriteString(" (")
			b.WriteString(e.Detail)
			b.WriteString(")")
		} else {
			b.WriteString(e.Detail)
		}
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " [retry after %s]", e.RetryAfter)
	}
	if e.OutcomeUnknown {
		b.WriteString(" [outcome unknown]")
	}
	return b.String()
}

// Unwrap returns the underlying transport error.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether the error belongs to the class of target.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrOutcomeUnknown:
		return e.OutcomeUnknown
	case ErrUnavailable:
		return e.HTML || e.Status == 0 || e.Status == http.StatusBadGateway ||
			e.Status == http.StatusServiceUnavailable || e.Status == http.StatusGatewayTimeout ||
			(e.Status >= 300 && e.Status < 400)
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrBusinessRule:
		return !e.HTML && e.isBusinessRule()
	case ErrForbidden:
		return !e.HTML && e.Status == http.StatusForbidden && !e.isBusinessRule()
	case ErrNotFound:
		return !e.HTML && e.Status == http.StatusNotFound
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	case ErrBadRequest:
		return !e.HTML && !e.isBusinessRule() && (e.Status == http.StatusBadRequest ||
			e.Status == http.StatusMethodNotAllowed || e.Status == http.StatusNotAcceptable ||
			e.Status == http.StatusUnsupportedMediaType)
	}
	return false
}

// isBusinessRule recognises a business-rule abort. The Table API sends it as
// 403 "Operation Failed"; the Change Management API folds the same text into
// message with an unspecified status, so the text decides, for any 4xx.
func (e *Error) isBusinessRule() bool {
	if e.Status < 400 || e.Status >= 500 {
		return false
	}
	text := strings.ToLower(e.Message + " " + e.Detail)
	return strings.Contains(text, "aborted by business rule") ||
		strings.Contains(text, "business rule stack")
}

// envelope is the ServiceNow error body. detail may be null and, in the
// Change Management API, error may carry its own status string. The OAuth
// endpoint uses error/error_description at top level instead.
type envelope struct {
	Error json.RawMessage `json:"error"`
	// OAuth error shape.
	ErrorDescription string `json:"error_description"`
	Status           any    `json:"status"`
}

type envelopeError struct {
	Message Value `json:"message"`
	Detail  Value `json:"detail"`
	Status  Value `json:"status"`
}

// parseErrorBody fills Message and Detail from a JSON error body. It never
// fails: unknown shapes leave a short excerpt of the body as Message.
func parseErrorBody(e *Error, body []byte) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		e.Message = excerpt(body)
		return
	}
	if len(env.Error) > 0 {
		var inner envelopeError
		if json.Unmarshal(env.Error, &inner) == nil && (inner.Message.Value != "" || inner.Detail.Value != "") {
			e.Message = inner.Message.Value
			e.Detail = inner.Detail.Value
			return
		}
		// OAuth: "error":"server_error" next to "error_description".
		var code string
		if json.Unmarshal(env.Error, &code) == nil {
			e.Message = env.ErrorDescription
			e.Detail = code
			if e.Message == "" {
				e.Message = code
			}
			return
		}
	}
	if env.ErrorDescription != "" {
		e.Message = env.ErrorDescription
		return
	}
	e.Message = excerpt(body)
}

// excerpt returns a short, single-line prefix of a body for error messages.
func excerpt(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	const max = 160
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// htmlTitle extracts the <title> of an HTML page, to say which page answered
// (e.g. "Instance Hibernating page", "Log in | ServiceNow").
func htmlTitle(body []byte) string {
	s := string(body)
	// Lower-case ASCII only, so byte offsets in lower are offsets in s
	// (strings.ToLower rewrites invalid UTF-8 and changes lengths).
	lower := asciiLower(s)
	i := strings.Index(lower, "<title")
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(lower[i:], '>')
	if j < 0 {
		return ""
	}
	start := i + j + 1
	k := strings.Index(lower[start:], "</title")
	if k < 0 {
		return ""
	}
	t := strings.Join(strings.Fields(strings.ToValidUTF8(s[start:start+k], "\uFFFD")), " ")
	if r := []rune(t); len(r) > 120 {
		t = string(r[:120]) + "…"
	}
	return t
}

// asciiLower lower-cases A-Z byte by byte, keeping every other byte (and
// so every offset) as it is.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}
