package itsm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// Approval states (sysapproval_approver.state values).
const (
	ApprovalNotRequested = "not requested"
	ApprovalRequested    = "requested"
	ApprovalApproved     = "approved"
	ApprovalRejected     = "rejected"
	ApprovalCancelled    = "cancelled"
	ApprovalNotRequired  = "not_required"
)

// Approval is one approver's row (sysapproval_approver) on a change.
type Approval struct {
	SysID string
	// ChangeSysID is the approved task (sysapproval); ChangeNumber and
	// ChangeCorrelationID are filled from dot-walked fields when available.
	ChangeSysID         string
	ChangeNumber        string
	ChangeCorrelationID string
	Approver            string // sys_user sys_id
	ApproverName        string
	ApproverUserName    string
	Group               string // sysapproval_group sys_id, for group approvals
	State               string
	Comments            string // usually empty: journal fields read back empty
	DueDate             time.Time
	SysCreatedOn        time.Time
	SysUpdatedOn        time.Time
	SysModCount         int
	Fields              Record
}

var approvalFields = []string{
	"sys_id", "sysapproval", "sysapproval.number", "sysapproval.correlation_id",
	"approver", "approver.name", "approver.user_name", "group", "state", "comments",
	"due_date", "sys_created_on", "sys_updated_on", "sys_mod_count",
}

// opsApprovalFields are the fields opsApprovalFromRecord reads, and the
// correlation id the poll re-checks: the sync cycle's poll asks
// for these only (4 fewer than approvalFields, one of them dot-walked), a
// fifth less to serve, send and decode for every open approval, every cycle.
var opsApprovalFields = []string{
	"sys_id", "sysapproval", "sysapproval.correlation_id",
	"approver", "approver.name", "approver.user_name", "state", "comments",
	"sys_updated_on", "sys_mod_count",
}

// ApprovalFields returns the field list used for approval reads and the
// mirror.
func ApprovalFields() []string { return append([]string(nil), approvalFields...) }

// ApprovalFromRecord converts a sysapproval_approver record.
func ApprovalFromRecord(r Record) Approval {
	a := Approval{
		SysID:               r.Get("sys_id"),
		ChangeSysID:         r.Get("sysapproval"),
		ChangeNumber:        r.Get("sysapproval.number"),
		ChangeCorrelationID: r.Get("sysapproval.correlation_id"),
		Approver:            r.Get("approver"),
		ApproverName:        nameOf(r, "approver"),
		ApproverUserName:    r.Get("approver.user_name"),
		Group:               r.Get("group"),
		State:               r.Get("state"),
		Comments:            r.Get("comments"),
		DueDate:             r.Time("due_date"),
		SysCreatedOn:        r.Time("sys_created_on"),
		SysUpdatedOn:        r.Time("sys_updated_on"),
		Fields:              r,
	}
	if a.ChangeNumber == "" {
		if v := r["sysapproval"]; v.Display != "" && v.Display != v.Value {
			a.ChangeNumber = v.Display
		}
	}
	a.SysModCount, _ = r.Int("sys_mod_count")
	return a
}

// approvalsChunk bounds the sys_ids per sysapprovalIN query: 40 ids of 33
// characters keep the URL under ~2,000 characters with the field list, the
// length beyond which proxies and the Ansible client start to balk.
const approvalsChunk = 40

// ListApprovals returns the approval rows of the given changes. It sends
// sysapprovalIN<ids> in chunks of 40 ids (one request for up to 40 changes,
// ceil(N/40) beyond). To read the approvals of every open daytwo change in
// one request whatever their number, use ListOpenApprovals.
func (c *Client) ListApprovals(ctx context.Context, changeSysIDs []string) ([]Approval, error) {
	ids := make([]string, 0, len(changeSysIDs))
	seen := map[string]bool{}
	for _, id := range changeSysIDs {
		if !isSysID(id) {
			return nil, fmt.Errorf("itsm: list approvals: %q is not a sys_id", id)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	var out []Approval
	for start := 0; start < len(ids); start += approvalsChunk {
		end := min(start+approvalsChunk, len(ids))
		chunk := ids[start:end]
		recs, err := c.listAll(ctx, TableApprover, "sysapprovalIN"+strings.Join(chunk, ","), approvalFields)
		if err != nil {
			return nil, fmt.Errorf("itsm: list approvals: %w", err)
		}
		want := map[string]bool{}
		for _, id := range chunk {
			want[id] = true
		}
		for _, r := range recs {
			if a := ApprovalFromRecord(r); want[a.ChangeSysID] {
				out = append(out, a)
			}
		}
	}
	return out, nil
}

// openApprovalsPageSize lets one request carry the approvals of a few
// thousand open changes (rows are small: a handful of fields), so that a
// sync cycle's approval poll stays one request as the number of open
// changes grows; it stays under the sizes where instances are reported to
// truncate answers (SERVICENOW.md §2.4).
const openApprovalsPageSize = 5000

// ListOpenApprovals returns the approval rows of every active change whose
// correlation_id starts with prefix (daytwo's own changes), in one request
// whatever the number of changes (more only if the rows exceed a page). It
// filters by dot-walking: sysapproval.active=true^sysapproval.correlation_id
// STARTSWITH<prefix>, and re-checks the dot-walked correlation id
// client-side in case the instance dropped the term.
func (c *Client) ListOpenApprovals(ctx context.Context, prefix string) ([]Approval, error) {
	var sink recordSink
	if err := c.listOpenApprovals(ctx, prefix, approvalFields, &sink); err != nil {
		return nil, err
	}
	out := make([]Approval, 0, len(sink.all))
	for _, r := range sink.all {
		if !ownApproval(r, prefix) {
			continue
		}
		out = append(out, ApprovalFromRecord(r))
	}
	return out, nil
}

// ownApproval re-checks the dot-walked correlation id, when the instance
// sent it, in case it dropped the query's term.
func ownApproval(r Record, prefix string) bool {
	cid, ok := r["sysapproval.correlation_id"]
	return !ok || strings.HasPrefix(cid.Value, prefix)
}

// listOpenApprovals is the query behind ListOpenApprovals and the sync
// cycle's poll (openOpsApprovals), into sink.
func (c *Client) listOpenApprovals(ctx context.Context, prefix string, fields []string, sink listSink) error {
	if prefix == "" {
		return errors.New("itsm: list open approvals: empty correlation prefix")
	}
	v, err := queryValue("correlation prefix", prefix)
	if err != nil {
		return err
	}
	if err := c.listAllInto(ctx, TableApprover,
		"sysapproval.active=true^sysapproval.correlation_idSTARTSWITH"+v, fields, openApprovalsPageSize, sink); err != nil {
		return fmt.Errorf("itsm: list open approvals: %w", err)
	}
	return nil
}

// openOpsApprovals is the sync cycle's poll: ListOpenApprovals with
// opsApprovalFields, decoded straight into ops.Approvals.
func (c *Client) openOpsApprovals(ctx context.Context, prefix string) ([]ops.Approval, error) {
	sink := approvalSink{prefix: prefix, out: []ops.Approval{}}
	if err := c.listOpenApprovals(ctx, prefix, opsApprovalFields, &sink); err != nil {
		return nil, err
	}
	return sink.out, nil
}

// opsApprovalFromRecord is ApprovalFromRecord then the bridge's mapping
// to ops.Approval, reading only the fields ops keeps: a sync cycle with
// 1,000 open changes converts 2,000 of these.
func opsApprovalFromRecord(r Record) ops.Approval {
	return opsApprovalFrom(func(f string) Value { return r[f] })
}

// opsApprovalFrom is opsApprovalFromRecord over any source of field
// values; absent fields are the zero Value.
func opsApprovalFrom(get func(string) Value) ops.Approval {
	name := get("approver.name").Value
	if v := get("approver"); name == "" && v.Display != "" && v.Display != v.Value {
		name = v.Display
	}
	updated, err := get("sys_updated_on").Time()
	if err != nil {
		updated = time.Time{}
	}
	a := ops.Approval{
		SysID: get("sys_id").Value, ChangeSysID: get("sysapproval").Value,
		Approver:     firstNonEmpty(get("approver.user_name").Value, get("approver").Value),
		ApproverName: name, State: ops.ApprovalState(get("state").Value), Comments: get("comments").Value,
		SysUpdatedOn: updated,
	}
	a.SysModCount, _ = get("sys_mod_count").Int()
	return a
}

// approvalSlots is len(opsApprovalFields), as a constant.
const approvalSlots = 10

// approvalSlot is the index of a field of opsApprovalFields, or -1.
func approvalSlot(name string) int {
	switch name {
	case "sys_id":
		return 0
	case "sysapproval":
		return 1
	case "sysapproval.correlation_id":
		return 2
	case "approver":
		return 3
	case "approver.name":
		return 4
	case "approver.user_name":
		return 5
	case "state":
		return 6
	case "comments":
		return 7
	case "sys_updated_on":
		return 8
	case "sys_mod_count":
		return 9
	}
	return -1
}

// approvalSink decodes the sync cycle's poll of open approvals straight
// into ops.Approvals (no map per row) and keeps those whose dot-walked
// correlation id, when the instance sent it, starts with prefix
// (ListOpenApprovals' check).
type approvalSink struct {
	prefix string
	out    []ops.Approval
}

func (s *approvalSink) add(body []byte) (int, string, error) {
	if n, last, ok := s.addFast(body); ok {
		return n, last, nil
	}
	recs, _, err := decodeBodyBytes(body)
	if err != nil || len(recs) == 0 {
		return 0, "", err
	}
	for _, r := range recs {
		if !ownApproval(r, s.prefix) {
			continue
		}
		s.out = append(s.out, opsApprovalFromRecord(r))
	}
	return len(recs), recs[len(recs)-1].Get("sys_id"), nil
}

// addFast is add in one pass; ok is false (and nothing kept) for a body
// the one-pass decoder leaves to encoding/json.
func (s *approvalSink) addFast(body []byte) (n int, last string, ok bool) {
	objs, ok := recordObjectsFast(body)
	if !ok {
		return 0, "", false
	}
	kept := len(s.out)
	var (
		slots [approvalSlots]Value
		seen  [approvalSlots]bool
	)
	set := func(name string, v Value) {
		if i := approvalSlot(name); i >= 0 {
			slots[i], seen[i] = v, true
		}
	}
	get := func(name string) Value {
		if i := approvalSlot(name); i >= 0 {
			return slots[i]
		}
		return Value{}
	}
	for _, obj := range objs {
		slots, seen = [approvalSlots]Value{}, [approvalSlots]bool{}
		if !eachFieldFast(obj, set) {
			s.out = s.out[:kept]
			return 0, "", false
		}
		last = slots[0].Value
		if seen[2] && !strings.HasPrefix(slots[2].Value, s.prefix) {
			continue
		}
		s.out = append(s.out, opsApprovalFrom(get))
	}
	return len(objs), last, true
}

// Approve approves the change as the configured user. See decide.
func (c *Client) Approve(ctx context.Context, sysID, comment string) (*Change, error) {
	ch, err := c.decide(ctx, sysID, ApprovalApproved, comment)
	if err != nil {
		return nil, fmt.Errorf("itsm: approve change %s: %w", sysID, err)
	}
	return ch, nil
}

// Reject rejects the change as the configured user; comment is required
// (the Change Management API refuses a reject without one).
func (c *Client) Reject(ctx context.Context, sysID, comment string) (*Change, error) {
	if strings.TrimSpace(comment) == "" {
		return nil, fmt.Errorf("itsm: reject change %s: a comment is required", sysID)
	}
	ch, err := c.decide(ctx, sysID, ApprovalRejected, comment)
	if err != nil {
		return nil, fmt.Errorf("itsm: reject change %s: %w", sysID, err)
	}
	return ch, nil
}

// decide uses PATCH /api/sn_chg_rest/change/{id}/approvals (acts for the
// authenticated user), falling back to the Table API: the user's requested
// sysapproval_approver rows on the change are PATCHed. A decision is not
// blindly retried; on an unknown outcome re-read the approvals.
func (c *Client) decide(ctx context.Context, sysID, state, comment string) (*Change, error) {
	if !isSysID(sysID) {
		return nil, fmt.Errorf("%q is not a sys_id", sysID)
	}
	body := map[string]string{"state": state}
	if comment != "" {
		body["comments"] = comment
	}
	if c.changeAPI.Load() != changeAPIAbsent {
		path := "/api/sn_chg_rest/change/" + url.PathEscape(sysID) + "/approvals"
		rec, raw, err := c.write(ctx, http.MethodPatch, path, nil, body, false)
		switch {
		case err == nil:
			c.changeAPI.Store(changeAPIPresent)
			if _, ok := rec["state"]; ok {
				ch := ChangeFromRecord(rec, raw)
				return &ch, nil
			}
			return c.GetChange(ctx, sysID)
		case c.changeAPIMissing(err, true):
		default:
			return nil, err
		}
	}
	me := c.cfg.Auth.Username
	if me == "" {
		return nil, errors.New("approving through the Table API needs servicenow.auth.username")
	}
	user, err := c.LookupUser(ctx, me)
	if err != nil {
		return nil, err
	}
	q := c.listParams("sysapproval="+sysID+"^approver="+user.SysID+"^state=requested", approvalFields, 0)
	recs, _, err := c.listTable(ctx, TableApprover, q)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, r := range recs {
		a := ApprovalFromRecord(r)
		if a.ChangeSysID != sysID || a.Approver != user.SysID || a.State != ApprovalRequested {
			continue
		}
		if _, _, err := c.write(ctx, http.MethodPatch, recordPath(TableApprover, a.SysID), nil, body, false); err != nil {
			return nil, err
		}
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: no requested approval for %s on this change", ErrNotFound, me)
	}
	return c.GetChange(ctx, sysID)
}

// PendingApproval is one requested approval on a change, with the group it
// was raised for (sysapproval_group.assignment_group) when it is a group
// approval.
type PendingApproval struct {
	SysID            string
	Approver         string // sys_user sys_id
	ApproverName     string
	ApproverUserName string
	GroupName        string
}

var pendingApprovalFields = []string{
	"sys_id", "sysapproval", "approver", "approver.name", "approver.user_name", "state",
	"group", "group.assignment_group", "group.assignment_group.name",
}

// ListPendingApprovals returns the change's approvals in state requested,
// read from the instance now (not the mirror): who may decide the change
// at this moment.
func (c *Client) ListPendingApprovals(ctx context.Context, changeSysID string) ([]PendingApproval, error) {
	if !isSysID(changeSysID) {
		return nil, fmt.Errorf("itsm: pending approvals: %q is not a sys_id", changeSysID)
	}
	recs, err := c.listAll(ctx, TableApprover, "sysapproval="+changeSysID+"^state=requested", pendingApprovalFields)
	if err != nil {
		return nil, fmt.Errorf("itsm: pending approvals of %s: %w", changeSysID, err)
	}
	var out []PendingApproval
	for _, r := range recs {
		if r.Get("sysapproval") != changeSysID || r.Get("state") != ApprovalRequested {
			continue // the instance dropped a query term
		}
		group := r.Get("group.assignment_group.name")
		if group == "" && r.Get("group") != "" {
			group = firstNonEmpty(r["group.assignment_group"].Display, r.Get("group.assignment_group"), r.Get("group"))
		}
		out = append(out, PendingApproval{
			SysID: r.Get("sys_id"), Approver: r.Get("approver"), ApproverName: nameOf(r, "approver"),
			ApproverUserName: r.Get("approver.user_name"), GroupName: group,
		})
	}
	return out, nil
}

// PendingApprovals implements ops.ApprovalReader.
func (b *Bridge) PendingApprovals(ctx context.Context, changeSysID string) ([]ops.PendingApproval, error) {
	as, err := b.c.ListPendingApprovals(ctx, changeSysID)
	if err != nil {
		return nil, opsErr(err)
	}
	out := make([]ops.PendingApproval, len(as))
	for i, a := range as {
		out[i] = ops.PendingApproval{
			ApproverID: a.Approver, Approver: firstNonEmpty(a.ApproverUserName, a.Approver),
			ApproverName: a.ApproverName, Group: a.GroupName,
		}
	}
	return out, nil
}

var _ ops.ApprovalReader = (*Bridge)(nil)
