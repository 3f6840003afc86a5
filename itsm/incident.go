package itsm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// IncidentInput describes an incident to open, typically after a failed
// rollout.
type IncidentInput struct {
	ShortDescription string
	Description      string
	// Caller, CmdbCI and AssignmentGroup accept a name or a sys_id.
	Caller          string
	CmdbCI          string
	AssignmentGroup string
	// Impact and Urgency are high/medium/low or 1..3; the instance derives
	// priority from them.
	Impact  string
	Urgency string
	// CausedBy is the sys_id of the change that caused the incident; it goes
	// into caused_by and the change number into the description.
	CausedBy string
	// CorrelationID makes the create idempotent (see CreateIncidentIdempotent).
	CorrelationID string
}

// Incident is an incident record.
type Incident struct {
	SysID            string
	Number           string
	State            int // 1 New, 2 In Progress, 3 On Hold, 6 Resolved, 7 Closed, 8 Canceled
	Impact           int
	Urgency          int
	Priority         int
	ShortDescription string
	Description      string
	Caller           string
	CmdbCI           string
	AssignmentGroup  string
	CausedBy         string
	CorrelationID    string
	Active           bool
	SysCreatedOn     time.Time
	SysUpdatedOn     time.Time
	SysModCount      int
	Fields           Record
	Raw              json.RawMessage
}

var incidentFields = []string{
	"sys_id", "number", "state", "impact", "urgency", "priority", "short_description", "description",
	"caller_id", "cmdb_ci", "assignment_group", "caused_by", "correlation_id", "active",
	"sys_created_on", "sys_updated_on", "sys_mod_count",
}

// IncidentFields returns the field list used for incident reads and the
// mirror.
func IncidentFields() []string { return append([]string(nil), incidentFields...) }

// IncidentFromRecord converts an incident record.
func IncidentFromRecord(r Record, raw json.RawMessage) Incident {
	in := Incident{
		SysID: r.Get("sys_id"), Number: r.Get("number"),
		ShortDescription: r.Get("short_description"), Description: r.Get("description"),
		Caller: r.Get("caller_id"), CmdbCI: r.Get("cmdb_ci"), AssignmentGroup: r.Get("assignment_group"),
		CausedBy: r.Get("caused_by"), CorrelationID: r.Get("correlation_id"), Active: r.Bool("active"),
		SysCreatedOn: r.Time("sys_created_on"), SysUpdatedOn: r.Time("sys_updated_on"),
		Fields: r, Raw: raw,
	}
	in.State, _ = r.Int("state")
	in.Impact, _ = r.Int("impact")
	in.Urgency, _ = r.Int("urgency")
	in.Priority, _ = r.Int("priority")
	in.SysModCount, _ = r.Int("sys_mod_count")
	return in
}

// CreateIncident opens an incident through the Table API. When CausedBy is
// set, the change's number is looked up and appended to the description so
// the link survives instances where caused_by is hidden. Like every create,
// it is not blindly retried (ErrOutcomeUnknown).
func (c *Client) CreateIncident(ctx context.Context, in IncidentInput) (*Incident, error) {
	if strings.TrimSpace(in.ShortDescription) == "" {
		return nil, errors.New("itsm: create incident: short description is required")
	}
	body := map[string]string{"short_description": in.ShortDescription}
	desc := in.Description
	if in.CausedBy != "" {
		ch, err := c.GetChange(ctx, in.CausedBy)
		if err != nil {
			return nil, fmt.Errorf("itsm: create incident: %w", err)
		}
		body["caused_by"] = ch.SysID
		line := "Caused by change " + ch.Number
		if !strings.Contains(desc, ch.Number) {
			if desc != "" {
				desc += "\n\n"
			}
			desc += line
		}
	}
	if desc != "" {
		body["description"] = desc
	}
	if in.CorrelationID != "" {
		body["correlation_id"] = in.CorrelationID
	}
	for _, f := range []struct{ name, val string }{{"impact", in.Impact}, {"urgency", in.Urgency}} {
		n, err := ParseImpact(f.val)
		if err != nil {
			return nil, fmt.Errorf("itsm: create incident: %s: %w", f.name, err)
		}
		if n > 0 {
			body[f.name] = strconv.Itoa(n)
		}
	}
	for _, ref := range []struct{ kind, field, val string }{
		{"user", "caller_id", in.Caller},
		{"ci", "cmdb_ci", in.CmdbCI},
		{"group", "assignment_group", in.AssignmentGroup},
	} {
		id, err := c.resolveRef(ctx, ref.kind, ref.val)
		if err != nil {
			return nil, fmt.Errorf("itsm: create incident: %w", err)
		}
		if id != "" {
			body[ref.field] = id
		}
	}
	rec, raw, err := c.write(ctx, http.MethodPost, tablePath(TableIncident), nil, body, false)
	if err != nil {
		return nil, fmt.Errorf("itsm: create incident: %w", err)
	}
	inc := IncidentFromRecord(rec, raw)
	return &inc, nil
}

// FindIncidentByCorrelationID returns the incident with that correlation id,
// or an error matching ErrNotFound.
func (c *Client) FindIncidentByCorrelationID(ctx context.Context, id string) (*Incident, error) {
	v, err := queryValue("correlation id", id)
	if err != nil || id == "" {
		return nil, fmt.Errorf("itsm: find incident: bad correlation id %q", id)
	}
	q := c.listParams("correlation_id="+v+"^ORDERBYsys_created_on", incidentFields, 10)
	recs, raws, err := c.listTable(ctx, TableIncident, q)
	if err != nil {
		return nil, fmt.Errorf("itsm: find incident %s: %w", id, err)
	}
	for i, r := range recs {
		if r.Get("correlation_id") == id {
			inc := IncidentFromRecord(r, raws[i])
			return &inc, nil
		}
	}
	return nil, fmt.Errorf("itsm: find incident %s: %w", id, ErrNotFound)
}

// CreateIncidentIdempotent is CreateIncident guarded by a correlation id
// lookup before the create and after an unknown outcome.
func (c *Client) CreateIncidentIdempotent(ctx context.Context, in IncidentInput) (inc *Incident, created bool, err error) {
	if in.CorrelationID == "" {
		return nil, false, errors.New("itsm: create incident: idempotent create needs a correlation id")
	}
	if inc, err = c.FindIncidentByCorrelationID(ctx, in.CorrelationID); err == nil {
		return inc, false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	inc, err = c.CreateIncident(ctx, in)
	if err == nil {
		return inc, true, nil
	}
	if errors.Is(err, ErrOutcomeUnknown) {
		if found, ferr := c.FindIncidentByCorrelationID(ctx, in.CorrelationID); ferr == nil {
			return found, true, nil
		}
	}
	return nil, false, err
}
