package ops

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Gate reason codes, stable for scripts (`run -o json`).
const (
	GateApproval = "approval"
	GateState    = "state"
	GateWindow   = "window"
	GateFreeze   = "freeze"
	GateConflict = "conflict"
	GatePlan     = "plan"
	GatePolicy   = "policy"
	GateLease    = "lease"
)

// GateReason is one reason an update may not run now.
type GateReason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Until is when this reason clears by itself (zero: it does not, or
	// not predictably).
	Until time.Time `json:"until,omitzero"`
	// Queued is set when the reason clears once a queued write reaches
	// ServiceNow (nothing for the operator to do but wait).
	Queued bool `json:"queued,omitempty"`
	// Hint is what the operator can do about it (zero: nothing but wait or
	// read the message); the CLI and the console phrase it.
	Hint Hint `json:"hint,omitzero"`
}

// GateResult answers "may this update run now?".
type GateResult struct {
	Open bool `json:"open"`
	// Pending is set when an approval is missing and everything else in
	// the way clears by itself in time.
	Pending bool         `json:"pending"`
	Reasons []GateReason `json:"reasons"`
	// NextOpen is the earliest time every time-bound reason clears, when
	// all reasons are time-bound (zero otherwise).
	NextOpen time.Time `json:"next_open,omitzero"`
	// Plan is the plan rebuilt from today's configuration and release.
	Plan Plan `json:"-"`
}

// Summary renders the result in one line: "open", or the reasons.
func (g GateResult) Summary() string {
	if g.Open {
		return "open"
	}
	msgs := make([]string, len(g.Reasons))
	for i, r := range g.Reasons {
		msgs[i] = r.Message
	}
	s := strings.Join(msgs, "; ")
	if !g.NextOpen.IsZero() {
		s += fmt.Sprintf(" (opens %s)", fmtTime(g.NextOpen))
	}
	return s
}

// Err is nil when the gate is open, else an error wrapping
// ErrApprovalPending (only approval missing) or ErrBlocked, carrying the
// first reason's hint if any.
func (g GateResult) Err() error {
	var err error
	switch {
	case g.Open:
		return nil
	case g.Pending:
		err = fmt.Errorf("%s: %w", g.Summary(), ErrApprovalPending)
	default:
		err = fmt.Errorf("%s: %w", g.Summary(), ErrBlocked)
	}
	for _, r := range g.Reasons {
		if !r.Hint.IsZero() {
			return &HintError{Err: err, Hint: r.Hint}
		}
	}
	return err
}

// gateFacts are what the gates of one pass read once, whatever the number
// of updates: every environment's current release and every lease, and
// (when a policy needs them) a promotion source's releases.
type gateFacts struct {
	releases map[string]Release
	leases   []Lease
	sources  map[string][]Release
}

func (s *Service) gateFacts(ctx context.Context) (gateFacts, error) {
	releases, err := s.store.CurrentReleases(ctx)
	if err != nil {
		return gateFacts{}, err
	}
	leases, err := s.store.Leases(ctx)
	if err != nil {
		return gateFacts{}, err
	}
	return gateFacts{releases: releases, leases: leases, sources: map[string][]Release{}}, nil
}

// Gate checks every condition for running u now and returns all that fail:
// the change is approved and implementable, now is inside its planned
// window and outside every freeze, ServiceNow reports no conflict, the plan
// is the one approved, no blocking policy fails, and no other process holds
// the environment.
func (s *Service) Gate(ctx context.Context, u Update) (GateResult, error) {
	facts, err := s.gateFacts(ctx)
	if err != nil {
		return GateResult{}, err
	}
	return s.gate(ctx, u, facts)
}

// GateAll gates many updates, reading releases and leases once.
func (s *Service) GateAll(ctx context.Context, ups []Update) ([]GateResult, error) {
	facts, err := s.gateFacts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]GateResult, len(ups))
	for i, u := range ups {
		if out[i], err = s.gate(ctx, u, facts); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// gate is Gate with the facts of this pass: one check per function, each
// adding its reasons.
func (s *Service) gate(ctx context.Context, u Update, facts gateFacts) (GateResult, error) {
	now := s.now()
	env, err := s.Environment(u.Environment)
	if err != nil {
		return GateResult{}, err
	}
	var g GateResult
	g.add(gateUpdateState(u, env)...)

	var ch Change
	if env.RequiresChange && u.ChangeSysID != "" {
		ch, err = s.store.GetChange(ctx, u.ChangeSysID)
		switch {
		case errors.Is(err, ErrNotFound):
			g.add(GateReason{Code: GateApproval, Message: fmt.Sprintf("change %s not mirrored yet", u.ChangeNumber), Hint: Hint{Kind: HintSync}})
		case err != nil:
			return g, err
		default:
			waiting := u.State == UpdateProposed || u.State == UpdateAwaitingApproval
			g.add(gateApproval(ch, waiting)...)
			g.add(gateWindow(ch, now)...)
			// With daytwo's own check configured, its result (the list of
			// conflicts) is the authority, not the record's conflict_status.
			if !env.Change.CheckConflicts {
				g.add(gateConflictStatus(ch)...)
			}
		}
	}
	if env.RequiresChange && env.Change.CheckConflicts && u.ChangeSysID != "" && !u.State.Terminal() && u.State != UpdateRunning {
		r, ok, err := s.gateConflictCheck(ctx, s.bundleLead(ctx, u))
		if err != nil {
			return g, err
		} else if ok {
			g.add(r)
		}
	}
	g.add(gateFreezes(s.cfg.Freezes, env, now)...)

	var reasons []GateReason
	if g.Plan, reasons, err = gatePlan(env, u, facts.releases[env.Name]); err != nil {
		return g, err
	}
	g.add(reasons...)
	if reasons, err = s.gatePolicies(ctx, env, u, ch, now, facts.sources); err != nil {
		return g, err
	}
	g.add(reasons...)
	g.add(gateLeases(env.Name, facts.leases)...)
	g.settle()
	return g, nil
}

func (g *GateResult) add(rs ...GateReason) { g.Reasons = append(g.Reasons, rs...) }

// settle decides Open, Pending and NextOpen from the reasons, and sorts
// them by code. Pending: an approval is missing and nothing else stands
// in the way that time alone will not clear (a window opening later still
// counts as waiting for the approval first).
func (g *GateResult) settle() {
	g.Open = len(g.Reasons) == 0
	g.Pending = false
	g.NextOpen = time.Time{}
	waitable := true
	timed := !g.Open
	for _, r := range g.Reasons {
		switch {
		case r.Code == GateApproval:
			g.Pending = true
		case r.Until.IsZero() && !r.Queued:
			waitable = false
		}
		if r.Until.IsZero() {
			timed = false
		} else if r.Until.After(g.NextOpen) {
			g.NextOpen = r.Until
		}
	}
	g.Pending = g.Pending && waitable
	if !timed {
		g.NextOpen = time.Time{}
	}
	sort.SliceStable(g.Reasons, func(i, j int) bool { return g.Reasons[i].Code < g.Reasons[j].Code })
}

// gateUpdateState: the update is approved or scheduled. A gated update
// still waiting is judged from its mirrored change (gateApproval).
func gateUpdateState(u Update, env Environment) []GateReason {
	switch u.State {
	case UpdateApproved, UpdateScheduled:
	case UpdateProposed, UpdateAwaitingApproval:
		switch {
		case u.ChangeNumber == "":
			return []GateReason{{Code: GateApproval, Message: "change not raised yet (queued for ServiceNow)"}}
		case !env.RequiresChange:
			return []GateReason{{Code: GateApproval, Message: fmt.Sprintf("awaiting approval of %s", u.ChangeNumber)}}
		}
	default:
		return []GateReason{{Code: GateState, Message: fmt.Sprintf("update is %s", u.State)}}
	}
	return nil
}

// gateApproval: the mirrored change is approved and implementable. waiting
// is set while the update has not yet recorded an approval its change has.
func gateApproval(ch Change, waiting bool) []GateReason {
	switch {
	case ch.State == ChangeNew && ch.Rejected():
		return []GateReason{{Code: GateState, Message: fmt.Sprintf("change %s was rejected", ch.Number)}}
	case ch.State == ChangeNew || ch.State == ChangeAssess || ch.State == ChangeAuthorize:
		return []GateReason{{Code: GateApproval, Message: fmt.Sprintf("change %s is in %s, awaiting approval", ch.Number, ch.State)}}
	case ch.State == ChangeScheduled || ch.State == ChangeImplement:
		if !ch.Approved() {
			return []GateReason{{Code: GateApproval, Message: fmt.Sprintf("change %s is %s but its approval is %q", ch.Number, ch.State, ch.Approval)}}
		} else if waiting {
			return []GateReason{{Code: GateApproval, Message: fmt.Sprintf("change %s is approved; the next sync records it", ch.Number)}}
		}
		return nil
	default:
		return []GateReason{{Code: GateState, Message: fmt.Sprintf("change %s is %s", ch.Number, ch.State)}}
	}
}

// gateWindow: now is inside the change's planned window, a closed
// interval; an empty bound is unbounded.
func gateWindow(ch Change, now time.Time) []GateReason {
	switch {
	case !ch.StartDate.IsZero() && now.Before(ch.StartDate):
		return []GateReason{{Code: GateWindow, Message: fmt.Sprintf("outside the change window, opens %s", fmtTime(ch.StartDate)), Until: ch.StartDate}}
	case !ch.EndDate.IsZero() && now.After(ch.EndDate):
		return []GateReason{{Code: GateWindow, Message: fmt.Sprintf("the change window closed at %s; it needs a new change", fmtTime(ch.EndDate))}}
	}
	return nil
}

// gateConflictStatus: the change's own conflict_status, when daytwo runs
// no check of its own.
func gateConflictStatus(ch Change) []GateReason {
	if ch.ConflictStatus == ConflictStatusConflict {
		return []GateReason{{Code: GateConflict, Message: fmt.Sprintf("ServiceNow reports a conflict for %s (blackout or overlapping change)", ch.Number)}}
	}
	return nil
}

// gateFreezes: now is outside every freeze that applies to env.
func gateFreezes(freezes []Freeze, env Environment, now time.Time) []GateReason {
	var out []GateReason
	for _, f := range freezes {
		if !f.Applies(env) {
			continue
		}
		if until, frozen, err := freezeUntil(f, now); err != nil {
			out = append(out, GateReason{Code: GateFreeze, Message: fmt.Sprintf("freeze %s cannot be evaluated: %v", f.Name, err)})
		} else if frozen {
			out = append(out, GateReason{Code: GateFreeze, Message: fmt.Sprintf("freeze %s until %s", f.Name, fmtTime(until)), Until: until})
		}
	}
	return out
}

// gatePlan rebuilds the plan from today's configuration and the current
// release: for a gated environment it must be the one proposed and
// approved. Only an approved plan is frozen: an ungated update is
// re-planned at run time.
func gatePlan(env Environment, u Update, current Release) (Plan, []GateReason, error) {
	plan, err := BuildPlan(env, current, u.Version, u.Config)
	if err != nil {
		return plan, nil, err
	}
	if !env.RequiresChange {
		return plan, nil, nil
	}
	switch digest := plan.Digest(); {
	case digest != u.PlanDigest:
		return plan, []GateReason{{Code: GatePlan, Message: fmt.Sprintf("plan changed since it was proposed (sha256 %s… now %s…): the configuration or the current release changed; propose again for a new approval",
			short(u.PlanDigest), short(digest))}}, nil
	case u.ApprovedDigest != "" && u.ApprovedDigest != digest:
		return plan, []GateReason{{Code: GatePlan, Message: fmt.Sprintf("plan sha256 %s… is not the approved plan %s…; propose again for a new approval", short(digest), short(u.ApprovedDigest))}}, nil
	}
	return plan, nil, nil
}

// gatePolicies: no blocking policy fails.
func (s *Service) gatePolicies(ctx context.Context, env Environment, u Update, ch Change, now time.Time, sources map[string][]Release) ([]GateReason, error) {
	in, err := s.policyInputFrom(ctx, env, u, ch, now, sources)
	if err != nil {
		return nil, err
	}
	var out []GateReason
	for _, v := range s.policies.Evaluate(in) {
		if v.Blocking() {
			out = append(out, GateReason{Code: GatePolicy, Message: fmt.Sprintf("policy %s: %s", v.Policy, verdictText(v))})
		}
	}
	return out, nil
}

// gateLeases: no process holds the environment.
func gateLeases(env string, leases []Lease) []GateReason {
	var out []GateReason
	for _, l := range leases {
		if l.Environment == env {
			out = append(out, GateReason{Code: GateLease, Message: fmt.Sprintf("%s is being rolled by %s (run %s) until %s", env, l.Holder, l.RunID, fmtClock(l.ExpiresAt)), Until: l.ExpiresAt})
		}
	}
	return out
}

var freezeCron = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// freezeUntil reports whether f covers now and, if so, when it ends.
// Overlapping occurrences of a recurring freeze extend each other.
func freezeUntil(f Freeze, now time.Time) (time.Time, bool, error) {
	if f.Cron == "" {
		if !now.Before(f.Start) && now.Before(f.End) {
			return f.End, true, nil
		}
		return time.Time{}, false, nil
	}
	loc := time.UTC
	if f.Timezone != "" {
		var err error
		if loc, err = time.LoadLocation(f.Timezone); err != nil {
			return time.Time{}, false, err
		}
	}
	sched, err := freezeCron.Parse(f.Cron)
	if err != nil {
		return time.Time{}, false, err
	}
	local := now.In(loc)
	var until time.Time
	// Occurrences that started within the last Duration cover now.
	for t := sched.Next(local.Add(-f.Duration)); !t.After(local); t = sched.Next(t) {
		if end := t.Add(f.Duration); end.After(local) && end.After(until) {
			until = end
		}
	}
	if until.IsZero() {
		return time.Time{}, false, nil
	}
	// An occurrence starting before this one ends extends the freeze
	// (bounded: a schedule denser than its duration freezes for good).
	for i, t := 0, sched.Next(local); t.Before(until) && i < 10000; i, t = i+1, sched.Next(t) {
		if end := t.Add(f.Duration); end.After(until) {
			until = end
		}
	}
	return until.UTC(), true, nil
}

func short(digest string) string {
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}
