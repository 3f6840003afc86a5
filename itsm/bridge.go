package itsm

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// Bridge adapts a Client to the ChangeSystem that ops declares: it maps
// ServiceNow records onto ops types and ServiceNow errors onto ops's
// retry-or-not classes.
type Bridge struct {
	c *Client
}

var _ ops.ChangeSystem = (*Bridge)(nil)

// NewBridge wraps c.
func NewBridge(c *Client) *Bridge { return &Bridge{c: c} }

// Client returns the wrapped client.
func (b *Bridge) Client() *Client { return b.c }

// opsErr classifies err for ops: refused writes are permanent, everything
// else (unreachable, rate limited, 5xx, unknown outcome, auth) is retried.
func opsErr(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, ErrBusinessRule), errors.Is(err, ErrForbidden), errors.Is(err, ErrBadRequest), errors.Is(err, ErrNotFound):
		return fmt.Errorf("%w: %w", ops.ErrRefused, err)
	default:
		wrapped := fmt.Errorf("%w: %w", ops.ErrUnavailable, err)
		var e *Error
		if errors.As(err, &e) && e.RetryAfter > 0 {
			return &ops.RetryLaterError{After: e.RetryAfter, Err: wrapped}
		}
		return wrapped
	}
}

func toOpsChange(ch *Change) ops.Change {
	if ch == nil {
		return ops.Change{}
	}
	out := ops.Change{
		SysID: ch.SysID, Number: ch.Number, Type: ops.ChangeType(ch.Type), State: ops.ChangeState(ch.State), Approval: ops.ApprovalState(ch.Approval),
		Risk: riskLabel(ch.Risk), ShortDescription: ch.ShortDescription, CmdbCI: firstNonEmpty(ch.CmdbCIName, ch.CmdbCI),
		AssignmentGroup: firstNonEmpty(ch.AssignmentGroupName, ch.AssignmentGroup),
		RequestedBy:     firstNonEmpty(ch.RequestedByName, ch.RequestedBy), RequestedByID: ch.RequestedBy,
		StartDate: ch.StartDate, EndDate: ch.EndDate, CorrelationID: ch.CorrelationID, Active: ch.Active,
		CloseCode: ch.CloseCode, SysUpdatedOn: ch.SysUpdatedOn, SysModCount: ch.SysModCount, Raw: ch.Raw,
		ConflictStatus: decodeConflictStatus(ch.ConflictStatus),
	}
	return out
}

func riskLabel(r int) string {
	switch r {
	case 1:
		return "very high"
	case 2:
		return "high"
	case 3:
		return "moderate"
	case 4:
		return "low"
	}
	return ""
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// CreateChange implements ops.ChangeSystem.
func (b *Bridge) CreateChange(ctx context.Context, req ops.ChangeRequest) (ops.Change, error) {
	ch, _, err := b.c.CreateChangeIdempotent(ctx, ChangeInput{
		Type: string(req.Type), Template: req.Template, ShortDescription: req.ShortDescription, Description: req.Description,
		AssignmentGroup: req.AssignmentGroup, CmdbCI: req.CmdbCI, Risk: req.Risk, Impact: req.Impact,
		StartDate: req.Start, EndDate: req.End, CorrelationID: req.CorrelationID, Parent: req.Parent,
	})
	return toOpsChange(ch), opsErr(err)
}

// RequestApproval implements ops.ChangeSystem.
func (b *Bridge) RequestApproval(ctx context.Context, sysID string) (ops.Change, error) {
	ch, err := b.c.RequestApproval(ctx, sysID)
	return toOpsChange(ch), opsErr(err)
}

// MoveChange implements ops.ChangeSystem.
func (b *Bridge) MoveChange(ctx context.Context, sysID string, to ops.ChangeState) (ops.Change, error) {
	ch, err := b.c.MoveState(ctx, sysID, ChangeState(to))
	return toOpsChange(ch), opsErr(err)
}

// AddWorkNote implements ops.ChangeSystem.
func (b *Bridge) AddWorkNote(ctx context.Context, sysID, note string) error {
	return opsErr(b.c.AddWorkNote(ctx, sysID, note))
}

// AttachFile implements ops.ChangeSystem.
func (b *Bridge) AttachFile(ctx context.Context, sysID, name, contentType string, data []byte) error {
	_, err := b.c.AttachFile(ctx, TableChangeRequest, sysID, name, contentType, data)
	return opsErr(err)
}

// CloseChange implements ops.ChangeSystem.
func (b *Bridge) CloseChange(ctx context.Context, sysID, code, notes string) (ops.Change, error) {
	ch, err := b.c.CloseChange(ctx, sysID, code, notes)
	return toOpsChange(ch), opsErr(err)
}

// DecideChange implements ops.ChangeSystem.
func (b *Bridge) DecideChange(ctx context.Context, sysID string, approve bool, comment string) (ops.Change, error) {
	var (
		ch  *Change
		err error
	)
	if approve {
		ch, err = b.c.Approve(ctx, sysID, comment)
	} else {
		ch, err = b.c.Reject(ctx, sysID, comment)
	}
	return toOpsChange(ch), opsErr(err)
}

// CreateIncident implements ops.ChangeSystem.
func (b *Bridge) CreateIncident(ctx context.Context, req ops.IncidentRequest) (ops.Incident, error) {
	inc, _, err := b.c.CreateIncidentIdempotent(ctx, IncidentInput{
		ShortDescription: req.ShortDescription, Description: req.Description, CmdbCI: req.CmdbCI,
		AssignmentGroup: req.AssignmentGroup, Impact: req.Impact, Urgency: req.Urgency, CausedBy: req.CausedBy,
		CorrelationID: req.CorrelationID,
	})
	if err != nil {
		return ops.Incident{}, opsErr(err)
	}
	return ops.Incident{
		SysID: inc.SysID, Number: inc.Number, ChangeSysID: inc.CausedBy, State: strconv.Itoa(inc.State),
		ShortDescription: inc.ShortDescription, SysUpdatedOn: inc.SysUpdatedOn, Raw: inc.Raw,
	}, nil
}

// GetChange implements ops.ChangeSystem.
func (b *Bridge) GetChange(ctx context.Context, sysID string) (ops.Change, error) {
	ch, err := b.c.GetChange(ctx, sysID)
	return toOpsChange(ch), opsErr(err)
}

// MirrorChanges implements ops.ChangeSystem: one keyset run over
// change_request selecting daytwo's changes (correlation prefix) and, if
// given, every change on the CIs.
func (b *Bridge) MirrorChanges(ctx context.Context, req ops.MirrorRequest, fn func(page []ops.Change, cursor ops.Watermark) error) (ops.MirrorStats, error) {
	q := "correlation_idSTARTSWITH" + req.CorrelationPrefix
	resolved := map[string]string{}
	var unknown []string
	if len(req.CIs) > 0 {
		var cis []string
		// A CI the instance does not know (a typo in one service's
		// configuration, a CI retired in the CMDB) or cannot tell apart
		// (two CIs of that name: the configuration should use the sys_id)
		// leaves out only its own changes; it must not stop the mirror of
		// everything else.
		for _, n := range req.CIs {
			if id := req.KnownCIs[n]; id != "" {
				cis = append(cis, id)
				continue
			}
			ci, err := b.c.LookupCI(ctx, n)
			switch {
			case errors.Is(err, ErrNotFound), errors.Is(err, ErrAmbiguous):
				unknown = append(unknown, n)
				continue
			case err != nil:
				return ops.MirrorStats{}, opsErr(fmt.Errorf("look up CI %q: %w", n, err))
			}
			cis = append(cis, ci.SysID)
			resolved[n] = ci.SysID
		}
		if len(cis) > 0 {
			// ^OR binds to the condition before it: (prefix OR ci IN ...) AND the keyset terms.
			q += "^ORcmdb_ciIN" + strings.Join(cis, ",")
		}
	}
	st, err := b.c.SyncChanges(ctx, SyncRequest{
		Since: Watermark(req.Since), Query: q, Fields: ChangeFields(), PageSize: req.PageSize, NoFields: true,
	}, func(page []Change, cursor Watermark) error {
		out := make([]ops.Change, len(page))
		for i := range page {
			out[i] = toOpsChange(&page[i])
		}
		return fn(out, ops.Watermark(cursor))
	})
	return ops.MirrorStats{Requests: st.Requests, Rows: st.Rows, Cursor: ops.Watermark(st.Cursor), ResolvedCIs: resolved, UnknownCIs: unknown}, opsErr(err)
}

// AddAffectedCIs implements ops.AffectedCIAdder: it associates every CI (a
// name or a sys_id, resolved through the cached CI look-up) with the change
// as affected (task_ci). A CI already associated is not associated twice,
// so a retry is safe. An unknown or ambiguous CI is refused, naming it.
func (b *Bridge) AddAffectedCIs(ctx context.Context, changeSysID string, cis []string) error {
	ids, _, err := b.ciSysIDs(ctx, cis, nil)
	if err != nil {
		err = fmt.Errorf("itsm: add affected CIs to change %s: %w", changeSysID, err)
		if errors.Is(err, ErrAmbiguous) {
			return fmt.Errorf("%w: %w", ops.ErrRefused, err)
		}
		return opsErr(err)
	}
	if err := b.c.AddAffectedCIs(ctx, changeSysID, ids); err != nil {
		named := make([]string, len(cis))
		for i, n := range cis {
			named[i] = n
			if n != ids[i] {
				named[i] = n + " = " + ids[i]
			}
		}
		return opsErr(fmt.Errorf("CIs %s: %w", strings.Join(named, ", "), err))
	}
	return nil
}

// ciSysIDs resolves names to sys_ids, looking up only those not in known;
// it returns the sys_ids in order and the names it looked up.
func (b *Bridge) ciSysIDs(ctx context.Context, names []string, known map[string]string) ([]string, map[string]string, error) {
	var ids []string
	resolved := map[string]string{}
	for _, n := range names {
		if id := known[n]; id != "" {
			ids = append(ids, id)
			continue
		}
		ci, err := b.c.LookupCI(ctx, n)
		if err != nil {
			return nil, nil, fmt.Errorf("look up CI %q: %w", n, err)
		}
		ids = append(ids, ci.SysID)
		resolved[n] = ci.SysID
	}
	return ids, resolved, nil
}

// OpenApprovals implements ops.ChangeSystem.
func (b *Bridge) OpenApprovals(ctx context.Context, prefix string) ([]ops.Approval, error) {
	out, err := b.c.openOpsApprovals(ctx, prefix)
	if err != nil {
		return nil, opsErr(err)
	}
	return out, nil
}

// DeletedChanges implements ops.ChangeSystem.
func (b *Bridge) DeletedChanges(ctx context.Context, since time.Time) ([]string, error) {
	ds, err := b.c.ListDeletes(ctx, TableChangeRequest, since)
	if err != nil {
		return nil, opsErr(err)
	}
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.DocumentKey
	}
	return ids, nil
}

// Ping implements ops.ChangeSystem.
func (b *Bridge) Ping(ctx context.Context) error {
	return opsErr(b.c.Ping(ctx))
}

// Ping checks that the instance answers JSON and accepts our credentials,
// with the cheapest authenticated read there is: one sys_user row, one
// field.
func (c *Client) Ping(ctx context.Context) error {
	q := url.Values{}
	q.Set("sysparm_limit", "1")
	q.Set("sysparm_fields", "sys_id")
	q.Set("sysparm_suppress_pagination_header", "true")
	q.Set("sysparm_no_count", "true")
	_, _, _, err := c.listPageInto(ctx, "sys_user", q, &recordSink{})
	if err != nil {
		return fmt.Errorf("itsm: ping %s: %w", c.Instance(), err)
	}
	return nil
}

// WhoAmI implements ops.ChangeSystem: the sys_id of the configured user.
func (b *Bridge) WhoAmI(ctx context.Context) (string, error) {
	name := b.c.cfg.Auth.Username
	if name == "" {
		return "", fmt.Errorf("%w: no servicenow.auth.username configured (with client_credentials, name the OAuth application user)", ops.ErrNotFound)
	}
	u, err := b.c.LookupUser(ctx, name)
	if err != nil {
		return "", opsErr(err)
	}
	return u.SysID, nil
}

// HasWorkNote implements ops.EvidenceChecker: whether the change already
// carries this work note (a write whose answer was lost may have landed).
func (b *Bridge) HasWorkNote(ctx context.Context, sysID, note string) (bool, error) {
	entries, err := b.c.ListJournal(ctx, sysID)
	if err != nil {
		return false, opsErr(err)
	}
	want := strings.TrimSpace(note)
	for _, e := range entries {
		if e.Element == "work_notes" && strings.TrimSpace(e.Value) == want {
			return true, nil
		}
	}
	return false, nil
}

// HasAttachment implements ops.EvidenceChecker: whether the change already
// has an attachment of that name.
func (b *Bridge) HasAttachment(ctx context.Context, sysID, name string) (bool, error) {
	atts, err := b.c.ListAttachments(ctx, TableChangeRequest, sysID)
	if err != nil {
		return false, opsErr(err)
	}
	for _, a := range atts {
		if a.FileName == name {
			return true, nil
		}
	}
	return false, nil
}

var _ ops.EvidenceChecker = (*Bridge)(nil)

// StartConflictCheck implements ops.ChangeSystem.
func (b *Bridge) StartConflictCheck(ctx context.Context, changeSysID string) (ops.ConflictCheck, error) {
	chk, err := b.c.StartConflictCheck(ctx, changeSysID)
	if err != nil {
		return ops.ConflictCheck{}, opsErr(err)
	}
	return ops.ConflictCheck{ChangeSysID: changeSysID, State: ops.ConflictRunning, Worker: chk.Worker, StartedAt: chk.Started}, nil
}

// PollConflictCheck implements ops.ChangeSystem.
func (b *Bridge) PollConflictCheck(ctx context.Context, chk ops.ConflictCheck, wait time.Duration) (ops.ConflictCheck, error) {
	res, err := b.c.PollConflictCheck(ctx, chk.ChangeSysID, ConflictCheck{Worker: chk.Worker, Started: chk.StartedAt}, wait)
	if err != nil {
		return chk, opsErr(err)
	}
	return toOpsConflictCheck(chk, res), nil
}

// toOpsConflictCheck maps a decoded check onto ops' record of it.
func toOpsConflictCheck(chk ops.ConflictCheck, res *ConflictResult) ops.ConflictCheck {
	out := chk
	out.Message, out.LastRun = res.Message, res.LastRun
	switch res.State {
	case ConflictRunning:
		out.State = ops.ConflictRunning
	case ConflictFailed:
		out.State = ops.ConflictFailed
	case ConflictFound:
		out.State = ops.ConflictFound
	default:
		out.State = ops.ConflictClear
	}
	out.Conflicts = make([]ops.Conflict, 0, len(res.Conflicts))
	for _, c := range res.Conflicts {
		out.Conflicts = append(out.Conflicts, ops.Conflict{
			Type: c.Type, Label: c.TypeLabel,
			With: firstNonEmpty(c.ConflictingNumber, c.Conflicting), Schedule: c.Schedule, CI: firstNonEmpty(c.CIName, c.CI),
		})
	}
	return out
}
