package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/daytwo/daytwo/ops/policy"
)

// ProposeRequest asks to move an environment to a new release.
type ProposeRequest struct {
	Environment string
	Version     string
	// Set overrides keys of the environment's config map.
	Set map[string]string
	// ChangeType overrides the environment's change type.
	ChangeType ChangeType
	// Start and End are the planned change window; zero Start means now,
	// zero End means Start plus the environment's change window.
	Start, End time.Time
	// DryRun plans and evaluates policies without saving anything.
	DryRun bool
	// Rollback marks the update as a return to an earlier release, whose
	// whole config map is Config (Set is ignored).
	Rollback bool
	Config   map[string]string
	// Force proposes a release the environment already runs (the same
	// version and config), e.g. to redeploy it; refused otherwise.
	Force bool
	// Supersede cancels the environment's open update (not a running one)
	// in the same transaction, instead of refusing the proposal.
	Supersede bool
}

// Proposal is the outcome of Propose.
type Proposal struct {
	Update   Update           `json:"update"`
	Plan     Plan             `json:"plan"`
	Verdicts []policy.Verdict `json:"verdicts"`
	// Blocked is set when a blocking policy failed: nothing was raised.
	Blocked bool `json:"blocked"`
	// Queued lists the writes waiting for ServiceNow.
	Queued []OutboxKind `json:"queued,omitempty"`
	// Superseded lists the open updates this proposal canceled
	// (ProposeRequest.Supersede).
	Superseded []Update `json:"superseded,omitempty"`
}

var configKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Propose plans an update, evaluates policies and, unless a blocking
// policy fails or it is a dry run, stores the update. For a gated
// environment it queues the change creation and the approval request in
// the outbox, in the same transaction. A blocked proposal is stored (so
// the audit trail shows it) and returned with an error wrapping ErrBlocked.
func (s *Service) Propose(ctx context.Context, req ProposeRequest) (Proposal, error) {
	d, err := s.draftProposal(ctx, req, nil)
	if err != nil {
		return Proposal{}, err
	}
	env, u, plan, p, now, id := d.env, d.p.Update, d.p.Plan, d.p, d.now, d.p.Update.ID
	if req.DryRun {
		return p, blockedErr(p)
	}

	var outbox []OutboxItem
	if env.RequiresChange && !p.Blocked {
		start, end := req.Start, req.End
		if start.IsZero() {
			start = now
		}
		if end.IsZero() {
			end = start.Add(env.Change.Window)
		}
		if !end.After(start) {
			return Proposal{}, fmt.Errorf("change window ends (%s) before it starts (%s)", end.Format(time.RFC3339), start.Format(time.RFC3339))
		}
		creq := ChangeRequest{
			CorrelationID: s.correlationID(id), Type: env.Change.Type, Template: env.Change.Template,
			ShortDescription: shortDescription(u), Description: changeDescription(u, plan),
			CmdbCI: env.Change.CmdbCI, AssignmentGroup: env.Change.AssignmentGroup,
			Risk: env.Change.Risk, Impact: env.Change.Impact, Start: start, End: end,
		}
		for _, it := range []struct {
			kind    OutboxKind
			payload any
		}{
			{OutboxCreateChange, createChangePayload{UpdateID: id, Request: creq}},
			{OutboxRequestApproval, updatePayload{UpdateID: id}},
		} {
			item, err := NewOutboxItem(id, it.kind, it.payload)
			if err != nil {
				return Proposal{}, err
			}
			outbox = append(outbox, item)
			p.Queued = append(p.Queued, it.kind)
		}
		if env.Change.CheckConflicts {
			item, err := NewOutboxItem(id, OutboxCheckConflicts, updatePayload{UpdateID: id})
			if err != nil {
				return Proposal{}, err
			}
			outbox = append(outbox, item)
			p.Queued = append(p.Queued, OutboxCheckConflicts)
		}
	} else if !p.Blocked {
		u.State = UpdateApproved // ungated: nothing to wait for
		u.ApprovedDigest = u.PlanDigest
	}
	p.Update = u

	var superseded []Update
	err = s.store.Atomic(ctx, func(tx Tx) error {
		superseded = nil
		if !p.Blocked {
			// One open update per environment (the store's index is the
			// backstop): checked in the write transaction, so two
			// proposals racing cannot both pass.
			open, err := tx.OpenUpdates(ctx, env.Name)
			if err != nil {
				return err
			}
			for _, o := range open {
				if !req.Supersede || o.State == UpdateRunning {
					return openUpdateErr(o, req.Supersede)
				}
				c, err := s.cancelTx(ctx, tx, env, o, "superseded by "+id+" ("+req.Version+")")
				if err != nil {
					return err
				}
				superseded = append(superseded, c)
			}
		}
		if err := tx.InsertUpdate(ctx, u); err != nil {
			if errors.Is(err, ErrConflict) {
				return fmt.Errorf("%s has another open update (proposed at the same moment): %w", env.Name, ErrBlocked)
			}
			return err
		}
		for _, it := range outbox {
			if _, err := tx.Enqueue(ctx, it); err != nil {
				return err
			}
		}
		action, result := "update.proposed", "ok"
		if p.Blocked {
			action, result = "update.blocked", "blocked"
		}
		return s.audit(ctx, tx, Event{
			Action: action, Subject: id, Environment: env.Name, UpdateID: id, Result: result,
			Detail: map[string]any{
				"version": u.Version, "from_version": u.FromVersion, "plan_digest": u.PlanDigest,
				"state": string(u.State), "verdicts": verdictDetail(p.Verdicts), "queued": len(outbox),
			},
		})
	})
	if err != nil {
		return Proposal{}, fmt.Errorf("ops: propose %s %s: %w", env.Name, req.Version, err)
	}
	for _, c := range superseded {
		s.kickOutbox(ctx, c.ID)
	}
	p.Superseded = superseded
	return p, blockedErr(p)
}

// proposalDraft is a proposal planned and judged, not yet stored.
type proposalDraft struct {
	env Environment
	p   Proposal
	now time.Time
}

// draftProposal plans req's update and evaluates its policies and the
// proposal's blockers (freezes, promotion). releases, if given, are the
// current releases read once for several drafts (a bundle).
func (s *Service) draftProposal(ctx context.Context, req ProposeRequest, releases map[string]Release) (proposalDraft, error) {
	env, err := s.Environment(req.Environment)
	if err != nil {
		return proposalDraft{}, err
	}
	if err := ValidateVersion(req.Version); err != nil {
		return proposalDraft{}, err
	}
	config := map[string]string{}
	base := env.Config
	if req.Rollback {
		base, req.Set = req.Config, nil
	}
	for k, v := range base {
		config[k] = v
	}
	for k, v := range req.Set {
		if !configKeyRE.MatchString(k) {
			return proposalDraft{}, withHint(fmt.Errorf("config key %q: config keys use letters, digits and _", k), HintConfigKey, k)
		}
		config[k] = v
	}
	if req.ChangeType != "" {
		if !req.ChangeType.Valid() {
			return proposalDraft{}, fmt.Errorf("change type %q: want normal, standard or emergency", req.ChangeType)
		}
		if !env.RequiresChange {
			return proposalDraft{}, withHint(fmt.Errorf("environment %s is not gated by a change; a change type does not apply", env.Name), HintChangeType, env.Name)
		}
		if req.ChangeType == ChangeStandard && env.Change.Template == "" {
			return proposalDraft{}, fmt.Errorf("a standard change needs environments[%s].change.template", env.Name)
		}
		env.Change.Type = req.ChangeType
	}
	if env.RequiresChange {
		if _, err := s.changeSystem(); err != nil {
			return proposalDraft{}, fmt.Errorf("environment %s is gated by a ServiceNow change: %w", env.Name, err)
		}
	}
	if releases == nil {
		if releases, err = s.store.CurrentReleases(ctx); err != nil {
			return proposalDraft{}, err
		}
	}
	from := releases[env.Name]
	if from.Version != "" && !req.Force && !req.DryRun && from.Digest == ReleaseDigest(req.Version, config) {
		return proposalDraft{}, withHint(fmt.Errorf("%s already runs %s with this config (release %s): nothing to propose: %w",
			env.Name, req.Version, short(from.Digest), ErrNothingToDo), HintForce, env.Name)
	}
	plan, err := BuildPlan(env, from, req.Version, config)
	if err != nil {
		return proposalDraft{}, err
	}
	now := s.now()
	id := s.newID()
	u := Update{
		ID: id, Environment: env.Name, Version: req.Version, Config: config, FromVersion: from.Version,
		PlanDigest: plan.Digest(), State: UpdateProposed, CreatedBy: s.cfg.Actor, CreatedAt: now, Rollback: req.Rollback,
	}
	if env.RequiresChange {
		u.ChangeType = env.Change.Type
	}
	if u.Plan, err = json.Marshal(plan); err != nil {
		return proposalDraft{}, err
	}
	in, err := s.policyInput(ctx, env, u, Change{}, now)
	if err != nil {
		return proposalDraft{}, err
	}
	p := Proposal{Plan: plan, Verdicts: s.policies.Evaluate(in)}
	for _, v := range p.Verdicts {
		if v.Blocking() {
			p.Blocked = true
			u.Reason = appendReason(u.Reason, fmt.Sprintf("policy %s: %s", v.Policy, verdictText(v)))
		}
	}
	if !req.Rollback { // a rollback is how a non-compliant environment gets fixed
		blockers, err := s.proposalBlockers(ctx, env.Name)
		if err != nil {
			return proposalDraft{}, err
		}
		for _, b := range blockers {
			p.Blocked = true
			u.Reason = appendReason(u.Reason, b)
		}
	}
	if p.Blocked {
		u.State = UpdateBlocked
	}
	p.Update = u
	return proposalDraft{env: env, p: p, now: now}, nil
}

// openUpdateErr refuses a proposal while o may still run.
func openUpdateErr(o Update, supersede bool) error {
	what := o.ID
	if o.ChangeNumber != "" {
		what += " (" + o.ChangeNumber + ")"
	}
	if o.State == UpdateRunning {
		return fmt.Errorf("%s is running update %s to %s; propose again once it has finished: %w", o.Environment, what, o.Version, ErrBlocked)
	}
	if supersede {
		return fmt.Errorf("%s already has an open update %s to %s (%s): one update per environment at a time; it cannot be superseded: %w",
			o.Environment, what, o.Version, o.State, ErrBlocked)
	}
	return withHint(fmt.Errorf("%s already has an open update %s to %s (%s): one update per environment at a time: %w",
		o.Environment, what, o.Version, o.State, ErrBlocked), HintSupersede, o.ID)
}

func blockedErr(p Proposal) error {
	if !p.Blocked {
		return nil
	}
	return fmt.Errorf("update %s blocked: %s: %w", p.Update.ID, p.Update.Reason, ErrBlocked)
}

func appendReason(reasons, r string) string {
	if reasons == "" {
		return r
	}
	return reasons + "; " + r
}

func verdictText(v policy.Verdict) string {
	if v.Error != "" {
		return "cannot be evaluated: " + v.Error
	}
	if v.Message != "" {
		return v.Message
	}
	return "failed"
}

func verdictDetail(vs []policy.Verdict) []any {
	out := make([]any, 0, len(vs))
	for _, v := range vs {
		out = append(out, map[string]any{"policy": v.Policy, "action": v.Action, "passed": v.Passed})
	}
	return out
}

// policyInput builds what CEL policies see. env.promote_from carries the
// source environment's succeeded versions (its release history, minus
// rolled-back releases).
func (s *Service) policyInput(ctx context.Context, env Environment, u Update, ch Change, now time.Time) (policy.Input, error) {
	return s.policyInputFrom(ctx, env, u, ch, now, nil)
}

// policyInputFrom is policyInput with the promotion source's releases
// kept in sources across calls (nil: read each time).
func (s *Service) policyInputFrom(ctx context.Context, env Environment, u Update, ch Change, now time.Time, sources map[string][]Release) (policy.Input, error) {
	cfg := map[string]any{}
	for k, v := range u.Config {
		cfg[k] = v
	}
	envMap := map[string]any{
		"name": env.StageName(), "service": env.Service, "key": env.Name, "tier": env.Tier, "requires_change": env.RequiresChange,
		"targets": len(env.Targets), "current_version": u.FromVersion,
		"promote_from": map[string]any{"name": "", "succeeded_versions": []any{}, "current_version": ""},
	}
	scope := policy.Input{Environment: env.StageName(), Key: env.Name, Service: env.Service}
	if env.PromoteFrom != "" && s.policies.Mentions(scope, "promote_from") {
		rels, cached := sources[env.PromoteFrom]
		if !cached {
			var err error
			if rels, err = s.store.Releases(ctx, env.PromoteFrom, 0); err != nil {
				return policy.Input{}, err
			}
			if sources != nil {
				sources[env.PromoteFrom] = rels
			}
		}
		var versions []any
		current := ""
		for _, r := range rels {
			if r.Status == ReleaseActive {
				current = r.Version
			}
			if r.Status != ReleaseRolledBack && !slices.Contains(versions, any(r.Version)) {
				versions = append(versions, r.Version)
			}
		}
		envMap["promote_from"] = map[string]any{"name": env.PromoteFrom, "succeeded_versions": orEmptyList(versions), "current_version": current}
	}
	in := policy.Input{
		Environment: env.StageName(), Key: env.Name, Service: env.Service,
		Update: map[string]any{
			"id": u.ID, "environment": u.Environment, "version": u.Version,
			"from_version": u.FromVersion, "config": cfg, "change_type": u.ChangeType,
		},
		Env: envMap,
		Now: now,
	}
	if ch.SysID != "" {
		in.Change = map[string]any{
			"number": ch.Number, "type": ch.Type, "state": ch.State.String(),
			"approval": ch.Approval, "risk": ch.Risk, "cmdb_ci": ch.CmdbCI,
		}
	}
	return in, nil
}

func orEmptyList(l []any) []any {
	if l == nil {
		return []any{}
	}
	return l
}

func shortDescription(u Update) string {
	from := u.FromVersion
	if from == "" {
		from = "new"
	}
	if u.Rollback {
		return fmt.Sprintf("daytwo: roll %s back from %s to %s", u.Environment, from, u.Version)
	}
	return fmt.Sprintf("daytwo: %s %s → %s", u.Environment, from, u.Version)
}

// changeDescription is what approvers read: the whole plan, its digest and
// the update id, so they see exactly what will happen.
func changeDescription(u Update, p Plan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Raised by daytwo for update %s (proposed by %s).\n\n", u.ID, orUnknown(u.CreatedBy))
	b.WriteString(p.Text())
	fmt.Fprintf(&b, "\nApproving this change approves plan sha256:%s. If the plan changes, daytwo raises a new change.\n", u.PlanDigest)
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// Outbox payloads.
type (
	createChangePayload struct {
		UpdateID string        `json:"update_id"`
		Request  ChangeRequest `json:"request"`
		// Members are a bundle's updates, which all get the change.
		Members []string `json:"members,omitempty"`
	}
	updatePayload struct {
		UpdateID string `json:"update_id"`
	}
)

// errNoChange reports an outbox item for an update whose change has not
// been created yet (it waits behind the create on the same key).
var errNoChange = errors.New("update has no change yet")
