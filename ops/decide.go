package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// DecideRequest approves or rejects a change as the configured ServiceNow
// user.
type DecideRequest struct {
	Change  string // number or sys_id of a mirrored change
	Approve bool
	Comment string
}

// PendingApproval is one approval a change waits for now: who may decide
// it and, for a group approval, the group it was raised for.
type PendingApproval struct {
	ApproverID   string `json:"approver_id"` // sys_user sys_id
	Approver     string `json:"approver"`    // user name
	ApproverName string `json:"approver_name,omitempty"`
	Group        string `json:"group,omitempty"` // assignment group name
	barred       string // why this approver may not decide (four eyes), for refusals
}

// ApprovalReader is implemented by change systems that can read a change's
// pending approvals from the instance now. Decide and the delivery of a
// decision ask it, so that a decision by somebody who holds no pending
// approval is refused in words (who holds them) instead of by a bare 400.
type ApprovalReader interface {
	PendingApprovals(ctx context.Context, changeSysID string) ([]PendingApproval, error)
}

// decidePayload is a queued decision. As names the ServiceNow user who
// made it (its credentials are resolved at delivery, never stored here);
// AsID is that user's sys_id when it was known at decision time.
type decidePayload struct {
	ChangeSysID string `json:"change_sys_id"`
	Number      string `json:"number"`
	Approve     bool   `json:"approve"`
	Comment     string `json:"comment"`
	Actor       string `json:"actor"`
	As          string `json:"as"`
	AsID        string `json:"as_id,omitempty"`
	// Integration: made as the integration user, whose user name is not
	// configured (OAuth client credentials).
	Integration bool `json:"integration,omitempty"`
	FourEyes    bool `json:"four_eyes"`
}

// refusal is a write daytwo itself refuses to send (it would go out as the
// wrong person, or break four eyes). It is permanent like ErrRefused, but
// its text is only the reason: ServiceNow never saw it.
type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }

// Is makes a refusal permanent for the outbox (ErrRefused) and, for a
// command, a blocked action (ErrBlocked: exit code 3), without adding
// either's words to the reason.
func (r *refusal) Is(target error) bool { return target == ErrRefused || target == ErrBlocked }

func refusef(format string, args ...any) error { return &refusal{msg: fmt.Sprintf(format, args...)} }

// Decide queues an approval or rejection of a mirrored change, as the
// configured approver (servicenow.approver, else the integration user).
// With four eyes on, that user may not decide a change they requested or
// that daytwo's integration user raised. When ServiceNow answers, a user
// who holds no pending approval on the change is refused now, naming who
// holds them; offline, the decision is queued and the same checks run at
// delivery. Rejections need a comment (ServiceNow requires one). A refused
// earlier decision on the same change is superseded by this one.
func (s *Service) Decide(ctx context.Context, req DecideRequest) (Change, error) {
	cs, err := s.decider()
	if err != nil {
		return Change{}, err
	}
	as := s.deciderName()
	ch, err := s.store.GetChange(ctx, req.Change)
	if err != nil {
		return Change{}, withHint(fmt.Errorf("change %s is not in the local mirror: %w", req.Change, err), HintSync, req.Change)
	}
	if !req.Approve && strings.TrimSpace(req.Comment) == "" {
		return ch, withHint(fmt.Errorf("rejecting %s needs a comment", ch.Number), HintComment, ch.Number)
	}
	if ch.State != ChangeAssess && ch.State != ChangeAuthorize {
		return ch, fmt.Errorf("%s is in state %s: only changes in Assess or Authorize await a decision: %w", ch.Number, ch.State, ErrBlocked)
	}
	// Who daytwo decides as, on the instance. Unreachable: decide from the
	// mirror now and check again at delivery.
	me, err := cs.WhoAmI(ctx)
	online := err == nil
	switch {
	case online, errors.Is(err, ErrUnavailable):
	case s.cfg.FourEyes:
		return ch, fmt.Errorf("four eyes: cannot tell who daytwo acts as, so it cannot check that %s was requested by someone else: %w", ch.Number, err)
	}
	if s.cfg.FourEyes {
		if err := s.fourEyes(ch, as, me); err != nil {
			return ch, err
		}
	}
	if online {
		if err := s.holdsPendingApproval(ctx, cs, ch, as, me); err != nil && !errors.Is(err, ErrUnavailable) {
			return ch, err
		}
	}
	item, err := NewOutboxItem(ch.Number, OutboxDecide, decidePayload{
		ChangeSysID: ch.SysID, Number: ch.Number, Approve: req.Approve, Comment: req.Comment, Actor: s.cfg.Actor,
		As: as, AsID: me, FourEyes: s.cfg.FourEyes, Integration: as == "" && s.approver == nil,
	})
	if err != nil {
		return ch, err
	}
	err = s.store.Atomic(ctx, func(tx Tx) error {
		id, err := tx.Enqueue(ctx, item)
		if err != nil {
			return err
		}
		// A later decision replaces an earlier one ServiceNow (or daytwo)
		// refused: the refused one must not hold this one back.
		old, err := tx.SupersedeFailed(ctx, ch.Number, OutboxDecide, id)
		if err != nil || len(old) == 0 {
			return err
		}
		return s.audit(ctx, tx, Event{
			Action: "outbox.superseded", Subject: ch.Number, ChangeNumber: ch.Number, Result: "ok",
			Detail: map[string]any{"superseded": old, "by": id, "as": as},
		})
	})
	return ch, err
}

// DecidesAs names the ServiceNow user this process approves and rejects
// as: servicenow.approver, else the integration user.
func (s *Service) DecidesAs() string {
	if n := s.deciderName(); n != "" {
		return n
	}
	return "the integration user"
}

// fourEyes refuses a decision by the change's requester, or by daytwo's
// integration user on a change daytwo raised. asID may be empty (the
// instance was not reachable): the names decide then.
func (s *Service) fourEyes(ch Change, as, asID string) error {
	requester := orUnknown(ch.RequestedBy)
	switch {
	case asID != "" && asID == ch.RequestedByID,
		ch.RequestedByID == "" && as != "" && strings.EqualFold(ch.RequestedBy, as):
		return refusef("four eyes: %s was requested by %s, who may not also decide it (daytwo decides as %s); decide as another user (servicenow.approver or DAYTWO_SN_APPROVER_USER) or turn off servicenow.four_eyes",
			ch.Number, requester, orUnknown(as))
	case s.ours(ch) && as != "" && strings.EqualFold(as, s.cfg.Username):
		return refusef("four eyes: %s was raised by daytwo's integration user %s, who may not also decide it; decide as another user (servicenow.approver or DAYTWO_SN_APPROVER_USER) or turn off servicenow.four_eyes",
			ch.Number, as)
	}
	return nil
}

// ours reports whether daytwo raised the change (its correlation id).
func (s *Service) ours(ch Change) bool {
	return strings.HasPrefix(ch.CorrelationID, s.cfg.CorrelationPrefix+":")
}

// holdsPendingApproval asks the instance (when the change system can tell)
// whether the user daytwo decides as holds a pending approval on the
// change, and says in words who does when not.
func (s *Service) holdsPendingApproval(ctx context.Context, cs ChangeSystem, ch Change, as, asID string) error {
	ar, ok := cs.(ApprovalReader)
	if !ok || asID == "" {
		return nil
	}
	pending, err := ar.PendingApprovals(ctx, ch.SysID)
	switch {
	case errors.Is(err, ErrUnavailable):
		return err
	case err != nil:
		// Not allowed to read approvals, say: let ServiceNow decide.
		s.log.Warn("cannot read pending approvals", "change", ch.Number, "err", err)
		return nil
	}
	if slices.ContainsFunc(pending, func(p PendingApproval) bool { return p.ApproverID == asID }) {
		return nil
	}
	if s.cfg.FourEyes {
		for i, p := range pending {
			if p.ApproverID == ch.RequestedByID || s.ours(ch) && strings.EqualFold(p.Approver, s.cfg.Username) {
				pending[i].barred = "requester"
			}
		}
	}
	return &refusal{msg: notApproverText(ch.Number, as, pending)}
}

// notApproverText says that as holds no pending approval on number and who
// does: "CHG0001 has no pending approval for cab.manager (daytwo acted as
// cab.manager); pending: Platform Ops group (daytwo, ops.lead)".
func notApproverText(number, as string, pending []PendingApproval) string {
	if len(pending) == 0 {
		return fmt.Sprintf("daytwo acted as %s, but %s has no pending approvals: nobody can decide it now; sync to see its state", orUnknown(as), number)
	}
	pending = slices.Clone(pending)
	slices.SortStableFunc(pending, func(a, b PendingApproval) int { return strings.Compare(a.Approver, b.Approver) })
	var groups []string
	members := map[string][]string{}
	var users []string
	for _, p := range pending {
		who := orUnknown(p.Approver)
		if p.barred != "" {
			who += " (" + p.barred + ")"
		}
		if p.Group == "" {
			users = append(users, who)
			continue
		}
		if _, seen := members[p.Group]; !seen {
			groups = append(groups, p.Group)
		}
		members[p.Group] = append(members[p.Group], who)
	}
	var parts []string
	for _, g := range groups {
		parts = append(parts, fmt.Sprintf("group %s (%s)", g, strings.Join(members[g], ", ")))
	}
	if len(users) > 0 {
		parts = append(parts, "users: "+strings.Join(users, ", "))
	}
	hint := "decide as one of them: servicenow.approver"
	if !slices.ContainsFunc(pending, func(p PendingApproval) bool { return p.barred == "" }) {
		hint = "only the requester holds one: four eyes leaves nobody to decide this stage from daytwo"
	}
	return fmt.Sprintf("daytwo acted as %s, who holds no pending approval on %s; pending: %s (%s)",
		orUnknown(as), number, strings.Join(parts, "; "), hint)
}

// identityFor returns the change system that acts as user name, if this
// process holds that user's credentials: the configured approver or the
// integration user. Nobody else's.
func (s *Service) identityFor(name string) (ChangeSystem, bool) {
	switch {
	case name == "":
		return nil, false
	case s.approver != nil && strings.EqualFold(name, s.cfg.ApproverUsername):
		return s.approver, true
	case s.changes != nil && s.cfg.Username != "" && strings.EqualFold(name, s.cfg.Username):
		return s.changes, true
	}
	return nil, false
}

// identities names who this process can act as, for refusals.
func (s *Service) identities() string {
	var ids []string
	if s.changes != nil {
		ids = append(ids, orUnknown(s.cfg.Username)+" (integration user)")
	}
	if s.approver != nil && s.cfg.ApproverUsername != "" {
		ids = append(ids, s.cfg.ApproverUsername+" (servicenow.approver)")
	}
	if len(ids) == 0 {
		return "nobody"
	}
	return strings.Join(ids, " and ")
}

// deliverDecision sends a queued decision as the user who made it, after
// checking again that the user may decide it (four eyes, a pending
// approval). A decision this process cannot send as its maker is refused,
// never sent as somebody else.
func (s *Service) deliverDecision(ctx context.Context, it OutboxItem) error {
	var p decidePayload
	if err := json.Unmarshal(it.Payload, &p); err != nil {
		return fmt.Errorf("%w: bad payload: %v", ErrRefused, err)
	}
	if p.As == "" && !p.Integration {
		return refusef("the decision on %s was queued by an older daytwo that did not record who made it, so it cannot be sent as its maker: decide again (the new decision supersedes it) or discard outbox item #%d",
			p.Number, it.ID)
	}
	cs, ok := s.identityFor(p.As)
	if p.As == "" && p.Integration && s.changes != nil {
		cs, ok = s.changes, true
	}
	if !ok {
		return refusef("the decision on %s was made as %s, but this process holds no credentials for %s (it acts as %s); it is never sent as anybody else. Deliver it from a process configured as %s (servicenow.approver.username or DAYTWO_SN_APPROVER_USER, with DAYTWO_SN_APPROVER_PASSWORD or servicenow.approver.password_file) and retry outbox item #%d there; or decide again, or discard outbox item #%d",
			p.Number, p.As, p.As, s.identities(), p.As, it.ID, it.ID)
	}
	me, err := cs.WhoAmI(ctx)
	fourEyes := p.FourEyes || s.cfg.FourEyes
	switch {
	case err == nil:
	case errors.Is(err, ErrUnavailable):
		return err
	case p.Integration && !fourEyes:
		// No user name to look up, and nothing to check it against.
	default:
		return refusef("the decision on %s was made as %s, but daytwo cannot tell which ServiceNow user those credentials are: %v", p.Number, p.As, err)
	}
	if p.AsID != "" && me != p.AsID {
		return refusef("the decision on %s was made as %s (sys_id %s), but the credentials configured here for %s sign in as another user (sys_id %s): not sent",
			p.Number, p.As, p.AsID, p.As, me)
	}
	cur, err := cs.GetChange(ctx, p.ChangeSysID)
	if err != nil {
		return err
	}
	if cur.Number == "" {
		cur.Number = p.Number
	}
	if fourEyes {
		if err := s.fourEyes(cur, p.As, me); err != nil {
			return refusef("%v: not sent", err)
		}
	}
	if err := s.holdsPendingApproval(ctx, cs, cur, p.As, me); err != nil {
		return err
	}
	ch, err := cs.DecideChange(ctx, p.ChangeSysID, p.Approve, p.Comment)
	if err != nil {
		return err
	}
	ctx = context.WithoutCancel(ctx) // ServiceNow acted: record it even if the caller gave up
	return s.store.Atomic(ctx, func(tx Tx) error {
		if ch.SysID != "" {
			if _, err := tx.UpsertChanges(ctx, []Change{ch}); err != nil {
				return err
			}
		}
		if err := tx.MarkDelivered(ctx, it.ID, map[string]string{"number": p.Number, "state": ch.State.String(), "as": p.As}); err != nil {
			return err
		}
		action := "change.approved"
		if !p.Approve {
			action = "change.rejected"
		}
		return s.audit(ctx, tx, Event{
			Actor: p.Actor, Action: action, Subject: p.Number, ChangeNumber: p.Number,
			Result: "ok", Detail: map[string]any{"comment": p.Comment, "as": p.As},
		})
	})
}

// DecisionStatus is where the newest decision on a change stands in the
// outbox, and what holds it back.
type DecisionStatus struct {
	Item OutboxItem `json:"item"`
	// BlockedBy is a refused item queued before it on the same key: the
	// decision is not delivered until an operator retries or discards it.
	BlockedBy *OutboxItem `json:"blocked_by,omitempty"`
}

// Decision returns the status of the newest decision queued on a change.
func (s *Service) Decision(ctx context.Context, number string) (DecisionStatus, error) {
	items, err := s.store.ListOutbox(ctx, OutboxFilter{Key: number, States: []OutboxState{OutboxPending, OutboxFailed, OutboxDelivered}})
	if err != nil {
		return DecisionStatus{}, err
	}
	var st DecisionStatus
	found := false
	for _, it := range items {
		if it.Kind == OutboxDecide {
			st.Item, found = it, true
		}
	}
	if !found {
		return st, fmt.Errorf("no decision on %s in the outbox: %w", number, ErrNotFound)
	}
	if b, ok := s.blocker(items, st.Item); ok {
		st.BlockedBy = &b
	}
	return st, nil
}

// blocker returns the first refused item queued before it on its key.
func (s *Service) blocker(sameKey []OutboxItem, it OutboxItem) (OutboxItem, bool) {
	for _, b := range sameKey {
		if b.ID < it.ID && b.Key == it.Key && b.State == OutboxFailed {
			return b, true
		}
	}
	return OutboxItem{}, false
}
