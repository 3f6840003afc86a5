package itsm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ChangeInput describes a change request to create.
type ChangeInput struct {
	// Type is normal (default), standard or emergency.
	Type string
	// Template is the standard change template name (standard only).
	Template         string
	ShortDescription string
	Description      string
	// AssignmentGroup, CmdbCI and RequestedBy accept a name or a sys_id.
	AssignmentGroup string
	CmdbCI          string
	RequestedBy     string
	// Risk is a label or code (very high/high/moderate/low or 1..4); Impact
	// high/medium/low or 1..3. Empty leaves the instance default.
	Risk   string
	Impact string
	// StartDate and EndDate are the planned window (zero = unset).
	StartDate time.Time
	EndDate   time.Time
	// CorrelationID is daytwo's idempotency key ("<prefix>:<update id>",
	// at most 100 characters).
	CorrelationID string
}

// changeAPIMissing reports whether err says the Change Management API is not
// installed: 404, or 400 "Requested URI does not represent any resource".
// Once the API has answered on this client, no error counts as "missing".
// On record-scoped endpoints (/change/{id}/...) a "No Record found" 404 is
// about the record, not the API.
func (c *Client) changeAPIMissing(err error, recordScoped bool) bool {
	if c.changeAPI.Load() == changeAPIPresent {
		return false
	}
	var e *Error
	if !errors.As(err, &e) || e.HTML {
		return false
	}
	text := strings.ToLower(e.Message + " " + e.Detail)
	// A record-level 404 ("No Record found") comes from an installed API.
	missing := e.Status == http.StatusNotFound && (!recordScoped ||
		!strings.Contains(text, "no record found") && !strings.Contains(text, "record doesn't exist"))
	if e.Status == http.StatusBadRequest {
		missing = strings.Contains(text, "does not represent any resource") ||
			strings.Contains(text, "namespace") || strings.Contains(text, "no such api")
	}
	if missing {
		c.changeAPI.Store(changeAPIAbsent)
		c.log.Info("servicenow change management API not available; using the Table API", "status", e.Status)
	}
	return missing
}

// changeBody builds the create body from the input, resolving names.
func (c *Client) changeBody(ctx context.Context, in ChangeInput) (map[string]string, error) {
	body := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			body[k] = v
		}
	}
	set("short_description", in.ShortDescription)
	set("description", in.Description)
	set("correlation_id", in.CorrelationID)
	set("start_date", FormatTime(in.StartDate))
	set("end_date", FormatTime(in.EndDate))
	risk, err := ParseRisk(in.Risk)
	if err != nil {
		return nil, err
	}
	if risk > 0 {
		body["risk"] = strconv.Itoa(risk)
	}
	impact, err := ParseImpact(in.Impact)
	if err != nil {
		return nil, err
	}
	if impact > 0 {
		body["impact"] = strconv.Itoa(impact)
	}
	for _, ref := range []struct{ kind, field, val string }{
		{"group", "assignment_group", in.AssignmentGroup},
		{"ci", "cmdb_ci", in.CmdbCI},
		{"user", "requested_by", in.RequestedBy},
	} {
		id, err := c.resolveRef(ctx, ref.kind, ref.val)
		if err != nil {
			return nil, err
		}
		set(ref.field, id)
	}
	return body, nil
}

// CreateChange creates a change request. Normal and emergency changes go to
// POST /api/sn_chg_rest/change/{type}; standard changes look the template up
// by name and POST /api/sn_chg_rest/change/standard/{template}. Without the
// Change Management plugin it falls back to the Table API. The create is
// never blindly retried: on an unknown outcome the error matches
// ErrOutcomeUnknown (see CreateChangeIdempotent).
func (c *Client) CreateChange(ctx context.Context, in ChangeInput) (*Change, error) {
	typ := strings.ToLower(in.Type)
	if typ == "" {
		typ = TypeNormal
	}
	if typ != TypeNormal && typ != TypeStandard && typ != TypeEmergency {
		return nil, fmt.Errorf("itsm: create change: unknown type %q (want normal, standard or emergency)", in.Type)
	}
	if typ == TypeStandard && in.Template == "" {
		return nil, errors.New("itsm: create change: a standard change needs a template name")
	}
	if len(in.CorrelationID) > 100 {
		return nil, fmt.Errorf("itsm: create change: correlation id longer than 100 characters")
	}
	body, err := c.changeBody(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("itsm: create change %s: %w", in.CorrelationID, err)
	}
	var tpl *Template
	if typ == TypeStandard {
		if tpl, err = c.LookupTemplate(ctx, in.Template); err != nil {
			return nil, fmt.Errorf("itsm: create change %s: %w", in.CorrelationID, err)
		}
	}
	if c.changeAPI.Load() != changeAPIAbsent && (tpl == nil || tpl.Table == "std_change_record_producer") {
		path := "/api/sn_chg_rest/change/" + typ
		if tpl != nil {
			path = "/api/sn_chg_rest/change/standard/" + url.PathEscape(tpl.SysID)
		}
		rec, raw, err := c.write(ctx, http.MethodPost, path, nil, body, false)
		switch {
		case err == nil:
			c.changeAPI.Store(changeAPIPresent)
			ch := ChangeFromRecord(rec, raw)
			return &ch, nil
		case tpl == nil && c.changeAPIMissing(err, false):
			// The 404/400 is a definite refusal, so creating through the
			// Table API cannot duplicate anything.
		default:
			return nil, fmt.Errorf("itsm: create change %s: %w", in.CorrelationID, err)
		}
	}
	body["type"] = typ
	if tpl != nil {
		body["std_change_producer_version"] = tpl.SysID
	}
	rec, raw, err := c.write(ctx, http.MethodPost, tablePath(TableChangeRequest), changeQuery(), body, false)
	if err != nil {
		return nil, fmt.Errorf("itsm: create change %s: %w", in.CorrelationID, err)
	}
	ch := ChangeFromRecord(rec, raw)
	return &ch, nil
}

// FindChangeByCorrelationID returns the change whose correlation_id equals
// id, or an error matching ErrNotFound. Matches are verified client-side, so
// an instance that ignores the query term cannot make an unrelated change
// look like ours. With several matches (duplicates created before daytwo
// used this key) the oldest wins.
func (c *Client) FindChangeByCorrelationID(ctx context.Context, id string) (*Change, error) {
	v, err := queryValue("correlation id", id)
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, errors.New("itsm: find change: empty correlation id")
	}
	q := c.listParams("correlation_id="+v+"^ORDERBYsys_created_on^ORDERBYsys_id", changeFields, 10)
	recs, raws, err := c.listTable(ctx, TableChangeRequest, q)
	if err != nil {
		return nil, fmt.Errorf("itsm: find change %s: %w", id, err)
	}
	var found []Change
	for i, r := range recs {
		if r.Get("correlation_id") == id {
			found = append(found, ChangeFromRecord(r, raws[i]))
		}
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("itsm: find change %s: %w", id, ErrNotFound)
	}
	if len(found) > 1 {
		c.log.Warn("servicenow: several changes share a correlation id", "correlation_id", id, "count", len(found))
	}
	return &found[0], nil
}

// CreateChangeIdempotent creates the change unless one with the same
// correlation id exists: lookup, create, and after an unknown outcome look
// up again. created reports whether this call created it. If the outcome is
// still unknown (the second lookup found nothing yet) the error matches
// ErrOutcomeUnknown and the caller retries later, starting with the lookup.
func (c *Client) CreateChangeIdempotent(ctx context.Context, in ChangeInput) (ch *Change, created bool, err error) {
	if in.CorrelationID == "" {
		return nil, false, errors.New("itsm: create change: idempotent create needs a correlation id")
	}
	ch, err = c.FindChangeByCorrelationID(ctx, in.CorrelationID)
	if err == nil {
		return ch, false, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	ch, err = c.CreateChange(ctx, in)
	if err == nil {
		return ch, true, nil
	}
	if !errors.Is(err, ErrOutcomeUnknown) {
		return nil, false, err
	}
	found, ferr := c.FindChangeByCorrelationID(ctx, in.CorrelationID)
	if ferr == nil {
		c.log.Info("servicenow create outcome was unknown; change found by correlation id",
			"correlation_id", in.CorrelationID, "number", found.Number)
		return found, true, nil
	}
	return nil, false, err
}

// changeQuery asks a Table API answer about a change for the same fields
// the mirror reads, dot-walked names included: every path that stores a
// change stores the same CI, group and requester names (a record without
// them would show raw sys_ids until the change next moves).
func changeQuery() url.Values {
	return url.Values{"sysparm_fields": {strings.Join(changeFields, ",")}}
}

// GetChange fetches a change by sys_id.
func (c *Client) GetChange(ctx context.Context, sysID string) (*Change, error) {
	rec, raw, err := c.getOne(ctx, TableChangeRequest, sysID, changeFields)
	if err != nil {
		return nil, fmt.Errorf("itsm: get change %s: %w", sysID, err)
	}
	ch := ChangeFromRecord(rec, raw)
	return &ch, nil
}

// GetChangeByNumber fetches a change by number (CHG0030042).
func (c *Client) GetChangeByNumber(ctx context.Context, number string) (*Change, error) {
	v, err := queryValue("number", number)
	if err != nil {
		return nil, err
	}
	recs, raws, err := c.listTable(ctx, TableChangeRequest, c.listParams("number="+v, nil, 5))
	if err != nil {
		return nil, fmt.Errorf("itsm: get change %s: %w", number, err)
	}
	for i, r := range recs {
		if strings.EqualFold(r.Get("number"), number) {
			ch := ChangeFromRecord(r, raws[i])
			return &ch, nil
		}
	}
	return nil, fmt.Errorf("itsm: get change %s: %w", number, ErrNotFound)
}

// approvalTarget is the state a change of each type moves to when approval
// is requested right after creation.
func approvalTarget(typ string) ChangeState {
	switch typ {
	case TypeEmergency:
		return StateAuthorize
	case TypeStandard:
		return StateScheduled
	}
	return StateAssess
}

// RequestApproval moves a new change to the state that requests approval:
// normal New→Assess, emergency New→Authorize, standard New→Scheduled. A
// change already past New is returned unchanged.
func (c *Client) RequestApproval(ctx context.Context, sysID string) (*Change, error) {
	ch, err := c.GetChange(ctx, sysID)
	if err != nil {
		return nil, fmt.Errorf("itsm: request approval %s: %w", sysID, err)
	}
	if ch.State != StateNew {
		return ch, nil
	}
	target := approvalTarget(ch.Type)
	got, err := c.patchState(ctx, ch.SysID, target, nil)
	if err != nil {
		return nil, fmt.Errorf("itsm: request approval %s: %w", ch.Number, err)
	}
	// A workflow may move the change on at once (auto-approval); anything
	// but New means the request took.
	if got.State == StateNew {
		return nil, fmt.Errorf("itsm: request approval %s: %w: still New after setting %s", ch.Number, ErrStateNotApplied, target)
	}
	return got, nil
}

// patchState sets state (plus extra fields) through the Table API with the
// numeric code as a string, and returns the stored record. When the instance
// sends no body, it reads the record back.
func (c *Client) patchState(ctx context.Context, sysID string, to ChangeState, extra map[string]string) (*Change, error) {
	body := map[string]string{"state": to.Code()}
	for k, v := range extra {
		body[k] = v
	}
	rec, raw, err := c.write(ctx, http.MethodPatch, recordPath(TableChangeRequest, sysID), changeQuery(), body, true)
	if err != nil {
		return nil, err
	}
	if _, ok := rec["state"]; !ok {
		return c.GetChange(ctx, sysID)
	}
	ch := ChangeFromRecord(rec, raw)
	return &ch, nil
}

// statePath returns the states to set, in order, to go from one state to
// another along the moves a client may make (SERVICENOW.md §4.3): request
// approval from New, Scheduled→Implement→Review→Closed, and Canceled from
// any state before Review. Moves that approvals make (Assess→Authorize→
// Scheduled) are not the client's, so no path crosses them.
func statePath(typ string, from, to ChangeState) ([]ChangeState, error) {
	if from == to {
		return nil, nil
	}
	next := func(s ChangeState) []ChangeState {
		var out []ChangeState
		switch s {
		case StateNew:
			out = append(out, approvalTarget(typ))
		case StateScheduled:
			out = append(out, StateImplement)
		case StateImplement:
			out = append(out, StateReview)
		case StateReview:
			out = append(out, StateClosed)
		}
		switch s {
		case StateNew, StateAssess, StateAuthorize, StateScheduled, StateImplement:
			out = append(out, StateCanceled)
		}
		return out
	}
	prev := map[ChangeState]ChangeState{from: from}
	queue := []ChangeState{from}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, n := range next(s) {
			if _, seen := prev[n]; seen {
				continue
			}
			prev[n] = s
			if n == to {
				var path []ChangeState
				for x := to; x != from; x = prev[x] {
					path = append([]ChangeState{x}, path...)
				}
				return path, nil
			}
			queue = append(queue, n)
		}
	}
	why := "no legal path"
	switch from {
	case StateAssess, StateAuthorize:
		why = "awaiting approval"
	case StateClosed, StateCanceled:
		why = "change is finished"
	case StateReview:
		if to == StateCanceled {
			why = "a change in Review cannot be canceled"
		}
	}
	return nil, fmt.Errorf("%w: %s → %s (%s)", ErrIllegalTransition, from, to, why)
}

// MoveState moves a change to target one legal step at a time (never a
// jump). A change already in target is success without any write (a second
// PATCH to the current state can fail on real instances). If a step is
// refused but the change has meanwhile reached target (a workflow moved it),
// that is success too.
func (c *Client) MoveState(ctx context.Context, sysID string, target ChangeState) (*Change, error) {
	ch, err := c.GetChange(ctx, sysID)
	if err != nil {
		return nil, fmt.Errorf("itsm: move change %s to %s: %w", sysID, target, err)
	}
	ch, err = c.moveFrom(ctx, ch, target, nil)
	if err != nil {
		return nil, fmt.Errorf("itsm: move change %s to %s: %w", numberOr(ch, sysID), target, err)
	}
	return ch, nil
}

// moveFrom walks from ch's state to target; last (optional) adds fields to
// the final PATCH (close_code, close_notes).
func (c *Client) moveFrom(ctx context.Context, ch *Change, target ChangeState, last map[string]string) (*Change, error) {
	for guard := 0; guard < 10; guard++ {
		if ch.State == target {
			return ch, nil
		}
		path, err := statePath(ch.Type, ch.State, target)
		if err != nil {
			return ch, err
		}
		step := path[0]
		var extra map[string]string
		if step == target {
			extra = last
		}
		got, err := c.patchState(ctx, ch.SysID, step, extra)
		if err != nil {
			// Refused: maybe someone else moved it (Octopus#9545). Re-read
			// and continue from wherever it is now.
			cur, gerr := c.GetChange(ctx, ch.SysID)
			if gerr != nil || cur.State == ch.State {
				return ch, err
			}
			ch = cur
			continue
		}
		if got.State == ch.State {
			return got, fmt.Errorf("%w: still %s after setting %s", ErrStateNotApplied, got.State, step)
		}
		ch = got
	}
	return ch, fmt.Errorf("%w: %s → %s did not settle", ErrStateNotApplied, ch.State, target)
}

func numberOr(ch *Change, fallback string) string {
	if ch != nil && ch.Number != "" {
		return ch.Number
	}
	return fallback
}

// AddWorkNote appends a work note. It is not idempotent (a retry after an
// unknown outcome could add the note twice), so an unknown outcome is
// reported as ErrOutcomeUnknown instead of retried.
func (c *Client) AddWorkNote(ctx context.Context, sysID, note string) error {
	if strings.TrimSpace(note) == "" {
		return errors.New("itsm: add work note: empty note")
	}
	_, _, err := c.write(ctx, http.MethodPatch, recordPath(TableChangeRequest, sysID), nil,
		map[string]string{"work_notes": note}, false)
	if err != nil {
		return fmt.Errorf("itsm: add work note to %s: %w", sysID, err)
	}
	return nil
}

// CloseChange moves a change through Review to Closed and sets close_code
// (successful, successful_issues, unsuccessful) and close_notes in the
// closing write. A change already Closed is returned unchanged.
func (c *Client) CloseChange(ctx context.Context, sysID, code, notes string) (*Change, error) {
	switch code {
	case CloseSuccessful, CloseSuccessfulIssues, CloseUnsuccessful:
	default:
		return nil, fmt.Errorf("itsm: close change %s: unknown close code %q", sysID, code)
	}
	if strings.TrimSpace(notes) == "" {
		return nil, fmt.Errorf("itsm: close change %s: close notes are required", sysID)
	}
	ch, err := c.GetChange(ctx, sysID)
	if err != nil {
		return nil, fmt.Errorf("itsm: close change %s: %w", sysID, err)
	}
	ch, err = c.moveFrom(ctx, ch, StateClosed, map[string]string{"close_code": code, "close_notes": notes})
	if err != nil {
		return nil, fmt.Errorf("itsm: close change %s: %w", numberOr(ch, sysID), err)
	}
	return ch, nil
}
