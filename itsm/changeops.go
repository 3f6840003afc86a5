package itsm

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/daytwo/daytwo/ops"
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
	// Parent is the sys_id of a change this one follows from (the parent
	// reference change_request inherits from task).
	Parent string
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
	set("parent", in.Parent)
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

// createSettleFactor and createSettleFloor set how long after a create
// whose outcome is unknown a look-up that finds nothing is trusted: ten
// request timeouts, and never less than two minutes. An instance commits a
// slow create after the client gave up waiting (the answer is lost, the
// record appears later); a re-create before that commit duplicates the
// change. ServiceNow cancels REST transactions after 60 s (SERVICENOW.md
// §2.4), so the floor covers any commit even with a short timeout, and with
// the default 30 s timeout the 5 minutes are well beyond it; commits
// observed 5× the timeout late (issue 11) fall well inside.
const (
	createSettleFactor = 10
	createSettleFloor  = 2 * time.Minute
)

// CreateSettle is how long after a create whose outcome is unknown the
// client waits (looking the change up meanwhile) before it may send the
// create again.
func (c *Client) CreateSettle() time.Duration {
	return max(createSettleFactor*c.cfg.Timeout, createSettleFloor)
}

// ErrFieldsNotApplied means the instance accepted a write but the stored
// record does not carry the values written (a standard change template
// that drops fields, an instance that ignores them).
var ErrFieldsNotApplied = errors.New("itsm: fields not applied")

// ErrCreatePending means an earlier create of this change has an unknown
// outcome and may still commit, so no create is sent yet; it matches
// ErrOutcomeUnknown. Retry later: look-ups continue until
// CreateSettle has passed since that create.
var ErrCreatePending = fmt.Errorf("%w: an earlier create may still commit", ErrOutcomeUnknown)

// creation is a create prepared once per attempt: the type, the resolved
// body and the standard change template.
type creation struct {
	in   ChangeInput
	typ  string
	body map[string]string
	tpl  *Template
}

// standardMarker is the text a standard change's short description carries
// so that daytwo can find it again when the template dropped its
// correlation id (trap 21) and the follow-up PATCH has not landed yet.
func standardMarker(correlationID string) string { return "[" + correlationID + "]" }

func (c *Client) prepareCreate(ctx context.Context, in ChangeInput) (*creation, error) {
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
	if typ == TypeStandard && in.CorrelationID != "" {
		if _, err := queryValue("correlation id", in.CorrelationID); err != nil {
			return nil, err
		}
		if m := standardMarker(in.CorrelationID); !strings.Contains(in.ShortDescription, m) {
			in.ShortDescription = strings.TrimSpace(in.ShortDescription + " " + m)
		}
	}
	body, err := c.changeBody(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("itsm: create change %s: %w", in.CorrelationID, err)
	}
	cr := &creation{in: in, typ: typ, body: body}
	if typ == TypeStandard {
		if cr.tpl, err = c.LookupTemplate(ctx, in.Template); err != nil {
			return nil, fmt.Errorf("itsm: create change %s: %w", in.CorrelationID, err)
		}
	}
	return cr, nil
}

// CreateChange creates a change request. Normal and emergency changes go to
// POST /api/sn_chg_rest/change/{type}; standard changes look the template up
// by name and POST /api/sn_chg_rest/change/standard/{template}. Without the
// Change Management plugin it falls back to the Table API (for a standard
// change: an insert naming std_change_producer_version). A standard change
// keeps only what its template defines, and the Table API insert takes the
// template's values over ours, so the fields daytwo needs (correlation id,
// window, CI, description) are then set with a follow-up PATCH and checked
// on the stored record; if that fails the error is a *FollowUpError that
// names the change. The create is never blindly retried: on an unknown
// outcome — including an answer without a sys_id and number — the error
// matches ErrOutcomeUnknown (see CreateChangeIdempotent).
func (c *Client) CreateChange(ctx context.Context, in ChangeInput) (*Change, error) {
	cr, err := c.prepareCreate(ctx, in)
	if err != nil {
		return nil, err
	}
	ch, err := c.sendCreate(ctx, cr)
	if err != nil {
		return nil, err
	}
	return c.completeFields(ctx, cr, ch)
}

// FollowUpError reports a change that was created but whose follow-up
// write (the fields its template dropped) failed. Change is the created
// change; the caller keeps its sys_id so that a retry finds it.
type FollowUpError struct {
	Change *Change
	Err    error
}

func (e *FollowUpError) Error() string {
	return fmt.Sprintf("itsm: change %s created, setting its fields failed: %v", e.Change.Number, e.Err)
}

func (e *FollowUpError) Unwrap() error { return e.Err }

// sendCreate sends the create once.
func (c *Client) sendCreate(ctx context.Context, cr *creation) (*Change, error) {
	body := maps.Clone(cr.body)
	tpl := cr.tpl
	if c.changeAPI.Load() != changeAPIAbsent && (tpl == nil || tpl.Table == "std_change_record_producer") {
		path := "/api/sn_chg_rest/change/" + cr.typ
		if tpl != nil {
			path = "/api/sn_chg_rest/change/standard/" + url.PathEscape(tpl.SysID)
		}
		rec, raw, err := c.write(ctx, http.MethodPost, path, nil, body, false)
		switch {
		case err == nil:
			c.changeAPI.Store(changeAPIPresent)
			return createdChange(http.MethodPost, path, rec, raw)
		case tpl == nil && c.changeAPIMissing(err, false):
			// The 404/400 is a definite refusal, so creating through the
			// Table API cannot duplicate anything.
		default:
			return nil, fmt.Errorf("itsm: create change %s: %w", cr.in.CorrelationID, err)
		}
	}
	body["type"] = cr.typ
	if tpl != nil {
		body["std_change_producer_version"] = tpl.SysID
	}
	path := tablePath(TableChangeRequest)
	rec, raw, err := c.write(ctx, http.MethodPost, path, changeQuery(), body, false)
	if err != nil {
		return nil, fmt.Errorf("itsm: create change %s: %w", cr.in.CorrelationID, err)
	}
	return createdChange(http.MethodPost, path, rec, raw)
}

// createdChange turns a create's answer into the change. An answer without
// sys_id and number ({"result":{}}, {"result":null}, an empty body) does
// not say what happened: the outcome is unknown, to be resolved by look-up.
func createdChange(method, path string, rec Record, raw json.RawMessage) (*Change, error) {
	ch := ChangeFromRecord(rec, raw)
	if ch.SysID == "" || ch.Number == "" {
		return nil, &Error{
			Method: method, Path: path, Message: "create answered without a sys_id and number",
			OutcomeUnknown: true,
		}
	}
	return &ch, nil
}

// wantFields are the fields of a create the stored change must carry:
// what daytwo relies on later (correlation id for look-ups, the window for
// the gate, the CI for conflicts, its own description and plan).
var wantFields = []string{"short_description", "description", "correlation_id", "start_date", "end_date", "cmdb_ci", "assignment_group"}

// missingFields returns what ch does not carry of the create's body.
func (cr *creation) missingFields(ch *Change) map[string]string {
	diff := map[string]string{}
	for _, k := range wantFields {
		v, ok := cr.body[k]
		if !ok || v == "" {
			continue
		}
		if ch.Fields.Get(k) != v {
			diff[k] = v
		}
	}
	return diff
}

// completeFields sets, with one PATCH, what a standard change lacks of the
// create (its template dropped it or overwrote it), then reads the change
// back and checks it. Normal and emergency changes keep what the create
// sent; a change that already carries everything costs no request.
func (c *Client) completeFields(ctx context.Context, cr *creation, ch *Change) (*Change, error) {
	if cr.typ != TypeStandard {
		return ch, nil
	}
	diff := cr.missingFields(ch)
	if len(diff) == 0 {
		return ch, nil
	}
	if _, _, err := c.write(ctx, http.MethodPatch, recordPath(TableChangeRequest, ch.SysID), nil, diff, true); err != nil {
		return nil, &FollowUpError{Change: ch, Err: err}
	}
	got, err := c.GetChange(ctx, ch.SysID)
	if err != nil {
		return nil, &FollowUpError{Change: ch, Err: err}
	}
	if left := cr.missingFields(got); len(left) > 0 {
		keys := slices.Sorted(maps.Keys(left))
		return nil, &FollowUpError{Change: got, Err: fmt.Errorf("%w: %s still differ on the stored record", ErrFieldsNotApplied, strings.Join(keys, ", "))}
	}
	c.log.Info("servicenow change fields set after create", "number", got.Number, "fields", strings.Join(slices.Sorted(maps.Keys(diff)), ","))
	return got, nil
}

// FindChangeByCorrelationID returns the change whose correlation_id equals
// id, or an error matching ErrNotFound. Matches are verified client-side, so
// an instance that ignores the query term cannot make an unrelated change
// look like ours. With several matches (duplicates created before daytwo
// used this key) the oldest wins.
func (c *Client) FindChangeByCorrelationID(ctx context.Context, id string) (*Change, error) {
	if id == "" {
		return nil, errors.New("itsm: find change: empty correlation id")
	}
	found, err := c.findChanges(ctx, id, false, "")
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("itsm: find change %s: %w", id, ErrNotFound)
	}
	if len(found) > 1 {
		c.log.Warn("servicenow: several changes share a correlation id", "correlation_id", id, "count", len(found))
	}
	return &found[0], nil
}

// findChanges returns every change that is the create of correlation id
// id, oldest first: by correlation_id, by the standard change marker in
// the short description (withMarker), and the change known by sys_id (an
// earlier answer named it; "" for none).
func (c *Client) findChanges(ctx context.Context, id string, withMarker bool, known string) ([]Change, error) {
	v, err := queryValue("correlation id", id)
	if err != nil {
		return nil, err
	}
	cond := "correlation_id=" + v
	if withMarker {
		cond += "^ORshort_descriptionLIKE" + standardMarker(v)
	}
	q := c.listParams(cond+"^ORDERBYsys_created_on^ORDERBYsys_id", changeFields, 50)
	recs, raws, err := c.listTable(ctx, TableChangeRequest, q)
	if err != nil {
		return nil, fmt.Errorf("itsm: find change %s: %w", id, err)
	}
	var found []Change
	seen := map[string]bool{}
	for i, r := range recs {
		if r.Get("correlation_id") == id || withMarker && strings.Contains(r.Get("short_description"), standardMarker(id)) {
			found = append(found, ChangeFromRecord(r, raws[i]))
			seen[r.Get("sys_id")] = true
		}
	}
	if known != "" && !seen[known] {
		ch, err := c.GetChange(ctx, known)
		switch {
		case err == nil:
			found = append(found, *ch)
		case !errors.Is(err, ErrNotFound):
			return nil, err
		}
	}
	slices.SortStableFunc(found, func(a, b Change) int {
		// Numbers grow with creation, and break ties within a second.
		if c := a.SysCreatedOn.Compare(b.SysCreatedOn); c != 0 {
			return c
		}
		if c := cmp.Compare(len(a.Number), len(b.Number)); c != 0 {
			return c
		}
		if c := strings.Compare(a.Number, b.Number); c != 0 {
			return c
		}
		return strings.Compare(a.SysID, b.SysID)
	})
	return found, nil
}

// CreateOutcome is what one CreateChangeResumable call did.
type CreateOutcome struct {
	// Created reports that this call's create made the change.
	Created bool
	// Sent reports that a create was sent whose outcome is still unknown:
	// the caller must not allow another before CreateSettle has passed.
	Sent bool
	// SysID and Number name the change once an answer named it, even when
	// the call then failed (a standard change whose follow-up PATCH did
	// not land): the caller passes SysID back as known.
	SysID, Number string
	// Duplicates lists the numbers of changes of the same create that were
	// canceled as duplicates.
	Duplicates []string
}

// CreateChangeIdempotent creates the change unless one with the same
// correlation id exists. created reports whether this call created it. See
// CreateChangeResumable, of which it is one attempt with nothing known.
func (c *Client) CreateChangeIdempotent(ctx context.Context, in ChangeInput) (ch *Change, created bool, err error) {
	ch, out, err := c.CreateChangeResumable(ctx, in, "", true)
	return ch, out.Created, err
}

// CreateChangeResumable is one attempt at raising a change exactly once,
// across attempts and processes; the caller keeps the outcome between
// attempts (the outbox item). It looks the change up — the one an earlier
// answer named (known), by correlation id, and for a standard change by
// the marker in its short description — and creates it only when nothing
// is found and mayCreate holds. The caller allows a create only when no
// earlier one can still commit: never within CreateSettle of a create whose
// outcome was unknown (a slow instance commits after the client gave up;
// a look-up before that commit finds nothing). Otherwise the error is
// ErrCreatePending. After an unknown outcome it looks up once more. Once
// the change is found or made, other changes of the same create are
// canceled with a work note naming the one kept (the oldest), and the
// fields a standard change's template dropped are set and verified.
func (c *Client) CreateChangeResumable(ctx context.Context, in ChangeInput, known string, mayCreate bool) (*Change, CreateOutcome, error) {
	var out CreateOutcome
	if in.CorrelationID == "" {
		return nil, out, errors.New("itsm: create change: idempotent create needs a correlation id")
	}
	cr, err := c.prepareCreate(ctx, in)
	if err != nil {
		return nil, out, err
	}
	withMarker := cr.typ == TypeStandard
	found, err := c.findChanges(ctx, in.CorrelationID, withMarker, known)
	if err != nil {
		return nil, out, err
	}
	if len(found) == 0 {
		if !mayCreate {
			return nil, out, fmt.Errorf("itsm: create change %s: %w; looking it up until it may be sent again", in.CorrelationID, ErrCreatePending)
		}
		ch, err := c.sendCreate(ctx, cr)
		switch {
		case err == nil:
			out.Created, out.SysID, out.Number = true, ch.SysID, ch.Number
			// Look again: the create is visible, and so is any duplicate
			// an earlier attempt's late commit left.
			if found, err = c.findChanges(ctx, in.CorrelationID, withMarker, ch.SysID); err != nil {
				return nil, out, err
			}
		case errors.Is(err, ErrOutcomeUnknown):
			out.Sent = true
			if found, _ = c.findChanges(ctx, in.CorrelationID, withMarker, ""); len(found) == 0 {
				return nil, out, err
			}
			c.log.Info("servicenow create outcome was unknown; change found by correlation id",
				"correlation_id", in.CorrelationID, "number", found[0].Number)
			out.Sent, out.Created = false, true
		default:
			return nil, out, err
		}
	}
	keep := pickKeeper(found)
	out.SysID, out.Number = keep.SysID, keep.Number
	if out.Duplicates, err = c.cancelDuplicates(ctx, in.CorrelationID, keep, found); err != nil {
		return nil, out, err
	}
	ch, err := c.completeFields(ctx, cr, keep)
	if err != nil {
		return nil, out, fmt.Errorf("itsm: create change %s: %w", in.CorrelationID, err)
	}
	return ch, out, nil
}

// pickKeeper chooses, among the changes of one create (oldest first), the
// one to keep: the oldest that is not canceled. Every attempt and process
// picks the same one.
func pickKeeper(found []Change) *Change {
	for i := range found {
		if found[i].State != StateCanceled {
			return &found[i]
		}
	}
	return &found[0]
}

// cancelDuplicates cancels every change of the create but keep that is
// still open, with a work note naming keep. A duplicate that can no longer
// be canceled (someone moved it past Implement) is reported in the log and
// left.
func (c *Client) cancelDuplicates(ctx context.Context, correlationID string, keep *Change, found []Change) ([]string, error) {
	var canceled []string
	for i := range found {
		d := &found[i]
		if d.SysID == keep.SysID || d.State.Terminal() {
			continue
		}
		note := fmt.Sprintf("daytwo: duplicate of %s (same correlation id %s, created while an earlier create's answer was lost); canceled.", keep.Number, correlationID)
		if _, err := c.moveFrom(ctx, d, StateCanceled, map[string]string{"work_notes": note}); err != nil {
			if errors.Is(err, ErrIllegalTransition) {
				c.log.Warn("servicenow duplicate change cannot be canceled", "number", d.Number, "duplicate_of", keep.Number, "err", err)
				continue
			}
			return canceled, fmt.Errorf("itsm: cancel duplicate %s of %s: %w", d.Number, keep.Number, err)
		}
		c.log.Warn("servicenow duplicate change canceled", "number", d.Number, "duplicate_of", keep.Number, "correlation_id", correlationID)
		canceled = append(canceled, d.Number)
	}
	return canceled, nil
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

var _ ops.ResumableCreator = (*Bridge)(nil)

// CreateSettle implements ops.ResumableCreator.
func (b *Bridge) CreateSettle() time.Duration { return b.c.CreateSettle() }

// ResumeCreateChange implements ops.ResumableCreator with
// CreateChangeResumable.
func (b *Bridge) ResumeCreateChange(ctx context.Context, req ops.ChangeRequest, known string, mayCreate bool) (ops.Change, ops.CreateOutcome, error) {
	ch, out, err := b.c.CreateChangeResumable(ctx, changeInput(req), known, mayCreate)
	res := ops.CreateOutcome{Sent: out.Sent, SysID: out.SysID, Number: out.Number, Duplicates: out.Duplicates}
	return toOpsChange(ch), res, opsErr(err)
}

func changeInput(req ops.ChangeRequest) ChangeInput {
	return ChangeInput{
		Type: string(req.Type), Template: req.Template, ShortDescription: req.ShortDescription, Description: req.Description,
		AssignmentGroup: req.AssignmentGroup, CmdbCI: req.CmdbCI, Risk: req.Risk, Impact: req.Impact,
		StartDate: req.Start, EndDate: req.End, CorrelationID: req.CorrelationID, Parent: req.Parent,
	}
}
