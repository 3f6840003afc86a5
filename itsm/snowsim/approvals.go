package snowsim

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// transitions is the base-system state model per change type (§4.3); the
// first target is the "next" state.
var transitions = map[string]map[string][]string{
	"normal": {
		stNew: {stAssess, stCanceled}, stAssess: {stAuthorize, stScheduled, stNew, stCanceled},
		stAuthorize: {stScheduled, stNew, stCanceled}, stScheduled: {stImplement, stCanceled},
		stImplement: {stReview, stCanceled}, stReview: {stClosed},
	},
	"standard": {
		stNew: {stScheduled, stCanceled}, stScheduled: {stImplement, stCanceled},
		stImplement: {stReview, stCanceled}, stReview: {stClosed},
	},
	"emergency": {
		stNew: {stAuthorize, stScheduled, stCanceled}, stAuthorize: {stScheduled, stNew, stCanceled},
		stScheduled: {stImplement, stCanceled}, stImplement: {stReview, stCanceled}, stReview: {stClosed},
	},
}

// automatic reports the moves that only the approval workflow makes: a
// client asking for them is refused like any illegal jump.
func automatic(typ, from, to string) bool {
	switch typ {
	case "normal":
		return from == stAssess && (to == stAuthorize || to == stScheduled) || from == stAuthorize && to == stScheduled
	case "emergency":
		return (from == stNew || from == stAuthorize) && to == stScheduled
	}
	return false
}

func modelAllows(typ, from, to string) bool {
	m, ok := transitions[typ]
	if !ok {
		m = transitions["normal"]
	}
	return slices.Contains(m[from], to)
}

// clientMayMove decides whether a client write may move a change from one
// state to another.
func (s *Sim) clientMayMove(typ, from, to string) bool {
	return modelAllows(typ, from, to) && !automatic(typ, from, to)
}

func (s *Sim) hasApprovals(changeID string) bool {
	at := s.d.tables["sysapproval_approver"]
	for _, r := range at.rows {
		if at.get(r, "sysapproval") == changeID {
			return true
		}
	}
	return false
}

// moveChange is a workflow-driven state move: no transition check.
func (s *Sim) moveChange(r *record, state string, u *user) {
	t := s.d.tables["change_request"]
	old := t.get(r, "state")
	if old == state {
		return
	}
	t.set(r, "state", state)
	if state == stScheduled {
		t.set(r, "approval", "approved")
	}
	s.stateEffects(t, r, old, u)
	s.touch(t, r, u)
	s.onChangeState(r, old, u)
	s.markDirty()
}

// onChangeState raises or cancels approvals after a state move (§5.3).
func (s *Sim) onChangeState(r *record, oldState string, u *user) {
	t := s.d.tables["change_request"]
	typ, st := t.get(r, "type"), t.get(r, "state")
	switch {
	case st == stAssess && typ == "normal":
		s.setApproval(r, "requested")
		s.raise(r, t.get(r, "assignment_group"), nil, u)
	case st == stAuthorize && typ == "emergency" && oldState == stNew:
		s.setApproval(r, "requested")
		s.raise(r, s.d.groupByName("CAB Approval"), nil, u)
	case st == stNew && (oldState == stAssess || oldState == stAuthorize):
		s.cancelPending(r, u)
		if t.get(r, "approval") != "rejected" {
			s.setApproval(r, "not requested")
		}
	case st == stCanceled:
		s.cancelPending(r, u)
	}
}

func (s *Sim) setApproval(r *record, v string) {
	s.d.tables["change_request"].set(r, "approval", v)
}

// raise creates requested approvals for a group's members (group != "") or
// for the given users. With nobody to ask, the stage passes at once.
func (s *Sim) raise(chg *record, groupID string, users []string, u *user) {
	t := s.d.tables["change_request"]
	at := s.d.tables["sysapproval_approver"]
	gt := s.d.tables["sysapproval_group"]
	chgID := t.get(chg, "sys_id")
	now := fmtTime(s.now())
	groupRow := ""
	if groupID != "" {
		users = s.d.groupMembers(groupID)
		if len(users) > 0 {
			g := gt.newRecord()
			groupRow = newSysID()
			for k, v := range map[string]string{
				"sys_id": groupRow, "parent": chgID, "assignment_group": groupID,
				"approval": "requested", "sys_created_on": now, "sys_created_by": "system", "sys_updated_on": now,
				"sys_updated_by": "system", "sys_mod_count": "0",
			} {
				gt.set(g, k, v)
			}
			gt.add(g)
		}
	}
	if len(users) == 0 {
		s.advance(chg, "", u)
		return
	}
	for _, uid := range users {
		a := at.newRecord()
		for k, v := range map[string]string{
			"sys_id": newSysID(), "sysapproval": chgID, "document_id": chgID,
			"source_table": "change_request", "approver": uid, "group": groupRow, "state": "requested",
			"expected_start": now, "sys_created_on": now, "sys_created_by": "system", "sys_updated_on": now,
			"sys_updated_by": "system", "sys_mod_count": "0",
		} {
			at.set(a, k, v)
		}
		at.add(a)
	}
	if s.opts.AutoApprove.NormalAfter > 0 {
		s.schedule(chgID, s.opts.AutoApprove.NormalAfter)
	}
}

// pendingApprovals returns the change's approvals in state requested.
func (s *Sim) pendingApprovals(chgID string) []*record {
	at := s.d.tables["sysapproval_approver"]
	var out []*record
	for _, r := range at.rows {
		if at.get(r, "sysapproval") == chgID && at.get(r, "state") == "requested" {
			out = append(out, r)
		}
	}
	return out
}

func (s *Sim) setApprovalRow(a *record, state string, u *user) {
	at := s.d.tables["sysapproval_approver"]
	at.set(a, "state", state)
	s.touch(at, a, u)
}

func (s *Sim) setGroupRow(id, state string, u *user) {
	gt := s.d.tables["sysapproval_group"]
	if g := gt.byID[id]; g != nil && gt.get(g, "approval") == "requested" {
		gt.set(g, "approval", state)
		s.touch(gt, g, u)
	}
}

func (s *Sim) cancelPending(chg *record, u *user) {
	at := s.d.tables["sysapproval_approver"]
	for _, a := range s.pendingApprovals(s.d.tables["change_request"].get(chg, "sys_id")) {
		s.setApprovalRow(a, "cancelled", u)
		if g := at.get(a, "group"); g != "" {
			s.setGroupRow(g, "cancelled", u)
		}
	}
}

// onApprovalDecision rolls an approved/rejected approval up to its change:
// one approval per group is enough (the others become No Longer Required),
// all stage approvals approved advances the change, any rejection sends it
// back to New with approval=rejected and cancels what is still pending.
func (s *Sim) onApprovalDecision(a *record, u *user) {
	at := s.d.tables["sysapproval_approver"]
	ct := s.d.tables["change_request"]
	chg := ct.byID[at.get(a, "sysapproval")]
	if chg == nil {
		return
	}
	st := ct.get(chg, "state")
	if st != stAssess && st != stAuthorize {
		return
	}
	group := at.get(a, "group")
	if at.get(a, "state") == "rejected" {
		if group != "" {
			s.setGroupRow(group, "rejected", u)
		}
		s.cancelPending(chg, u)
		s.setApproval(chg, "rejected")
		s.moveChange(chg, stNew, u)
		return
	}
	chgID := ct.get(chg, "sys_id")
	if group != "" {
		for _, p := range s.pendingApprovals(chgID) {
			if at.get(p, "group") == group {
				s.setApprovalRow(p, "not_required", u)
			}
		}
		s.setGroupRow(group, "approved", u)
	}
	if len(s.pendingApprovals(chgID)) == 0 {
		s.advance(chg, at.get(a, "approver"), u)
	}
}

// advance moves a change past a completed approval stage. approverID is the
// user who completed the stage (used to skip Authorize when the group
// manager already approved in Assess).
func (s *Sim) advance(chg *record, approverID string, u *user) {
	ct := s.d.tables["change_request"]
	typ, st := ct.get(chg, "type"), ct.get(chg, "state")
	if typ != "normal" || st != stAssess {
		s.moveChange(chg, stScheduled, u)
		return
	}
	// normal: Assess -> Authorize with CAB (risk Very High/High/Moderate) or
	// the assignment group's manager.
	ct.set(chg, "state", stAuthorize)
	s.touch(ct, chg, u)
	risk := ct.get(chg, "risk")
	if risk == "1" || risk == "2" || risk == "3" {
		s.raise(chg, s.d.groupByName("CAB Approval"), nil, u)
		return
	}
	gt := s.d.tables["sys_user_group"]
	manager := ""
	if g := gt.byID[ct.get(chg, "assignment_group")]; g != nil {
		manager = gt.get(g, "manager")
	}
	if manager == "" || manager == approverID {
		s.moveChange(chg, stScheduled, u)
		return
	}
	s.raise(chg, "", []string{manager}, u)
}

// decide records one approver's decision with an optional comment.
func (s *Sim) decide(a *record, state, comment string, u *user) {
	at := s.d.tables["sysapproval_approver"]
	s.setApprovalRow(a, state, u)
	if comment != "" {
		s.addJournal(at, a, "comments", comment, u.userName)
	}
	s.onApprovalDecision(a, u)
	s.markDirty()
}

// Approve approves, as userName, that user's pending approval on the change
// with the given number.
func (s *Sim) Approve(ctx context.Context, changeNumber, userName, comment string) error {
	return s.decideAs(ctx, changeNumber, userName, "approved", comment)
}

// Reject rejects, as userName, that user's pending approval on the change;
// the change returns to New with approval=rejected.
func (s *Sim) Reject(ctx context.Context, changeNumber, userName, comment string) error {
	return s.decideAs(ctx, changeNumber, userName, "rejected", comment)
}

func (s *Sim) decideAs(ctx context.Context, number, userName, state, comment string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("snowsim: %s %s: %w", state, number, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ct := s.d.tables["change_request"]
	chg := ct.find("number", number)
	if chg == nil {
		chg = ct.byID[number]
	}
	if chg == nil {
		return fmt.Errorf("snowsim: change %s: %w", number, ErrNotFound)
	}
	u, aerr := s.userInfo(userName)
	if aerr != nil {
		return fmt.Errorf("snowsim: user %s: %w", userName, ErrNotFound)
	}
	return s.decideOn(chg, u, state, comment)
}

// decideOn is decideAs with the lock held.
func (s *Sim) decideOn(chg *record, u *user, state, comment string) error {
	at := s.d.tables["sysapproval_approver"]
	for _, a := range s.pendingApprovals(s.d.tables["change_request"].get(chg, "sys_id")) {
		if at.get(a, "approver") == u.id {
			s.decide(a, state, comment, u)
			return nil
		}
	}
	return fmt.Errorf("snowsim: %s on %s: %w", u.userName, s.d.tables["change_request"].get(chg, "number"), ErrNotApprover)
}

// autoTask is a scheduled automatic approval.
type autoTask struct {
	changeID string
	due      time.Time
}

// schedule queues an automatic approval; callers hold s.mu.
func (s *Sim) schedule(chgID string, after time.Duration) {
	s.pending = append(s.pending, autoTask{changeID: chgID, due: s.now().Add(after)})
	s.timerMu.Lock()
	defer s.timerMu.Unlock()
	if s.closed {
		return
	}
	// A real-time timer wakes the simulator; with an injected clock the
	// due check also runs on every API request (and RunDue).
	s.autoTimer = time.AfterFunc(after+10*time.Millisecond, s.runDue)
}

// RunDue performs the automatic approvals whose time has come on the
// simulator's clock. It runs by itself on timers and before each API
// request; tests with a fake clock may call it after advancing the clock.
func (s *Sim) RunDue() { s.runDue() }

func (s *Sim) runDue() {
	s.mu.RLock()
	n := len(s.pending)
	s.mu.RUnlock()
	if n == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var keep, due []autoTask
	for _, tk := range s.pending {
		if now.Before(tk.due) {
			keep = append(keep, tk)
		} else {
			due = append(due, tk)
		}
	}
	s.pending = keep
	for _, tk := range due {
		s.autoApprove(tk.changeID)
	}
}

// autoApprove approves every pending approval of a change: as the
// configured approver when they are the approver, else as a CAB member who
// is, else as the approver named on the row.
func (s *Sim) autoApprove(chgID string) {
	ct := s.d.tables["change_request"]
	at := s.d.tables["sysapproval_approver"]
	chg := ct.byID[chgID]
	if chg == nil {
		return
	}
	cab := s.d.groupMembers(s.d.groupByName("CAB Approval"))
	named := s.d.userByName(s.opts.AutoApprove.NormalApprover)
	namedID := ""
	if named != nil {
		namedID = s.d.tables["sys_user"].get(named, "sys_id")
	}
	for range 16 { // each decision may resolve several rows; bound the loop
		pending := s.pendingApprovals(chgID)
		if len(pending) == 0 {
			return
		}
		pick := pending[0]
		for _, p := range pending {
			if at.get(p, "approver") == namedID {
				pick = p
				break
			}
			if slices.Contains(cab, at.get(p, "approver")) && !slices.Contains(cab, at.get(pick, "approver")) {
				pick = p
			}
		}
		approverName := ""
		if ur := s.d.tables["sys_user"].byID[at.get(pick, "approver")]; ur != nil {
			approverName = s.d.tables["sys_user"].get(ur, "user_name")
		}
		u, aerr := s.userInfo(approverName)
		if aerr != nil {
			u = &user{id: at.get(pick, "approver"), userName: "system"}
		}
		stage := ct.get(chg, "state")
		s.decide(pick, "approved", "Automatic approval", u)
		s.log.Info("snowsim auto-approved", "change", ct.get(chg, "number"), "as", u.userName)
		if ct.get(chg, "state") != stage {
			return // the next stage schedules its own approval
		}
	}
}
