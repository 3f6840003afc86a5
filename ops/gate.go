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

	updateWaiting    bool
	conflictsChecked bool
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
		s += fmt.Sprintf(" (opens %s)", g.NextOpen.UTC().Format("2006-01-02 15:04 UTC"))
	}
	return s
}

// Err is nil when the gate is open, else an error wrapping
// ErrApprovalPending (only approval missing) or ErrBlocked.
func (g GateResult) Err() error {
	switch {
	case g.Open:
		return nil
	case g.Pending:
		return fmt.Errorf("%s: %w", g.Summary(), ErrApprovalPending)
	default:
		return fmt.Errorf("%s: %w", g.Summary(), ErrBlocked)
	}
}

// Gate checks every condition for running u now and returns all that fail:
// the change is approved and implementable, now is inside its planned
// window and outside every freeze, ServiceNow reports no conflict, the plan
// is the one approved, no blocking policy fails, and no other process holds
// the environment.
func (s *Service) Gate(ctx context.Context, u Update) (GateResult, error) {
	now := s.now()
	env, err := s.Environment(u.Environment)
	if err != nil {
		return GateResult{}, err
	}
	var g GateResult
	add := func(code, msg string, until time.Time) {
		g.Reasons = append(g.Reasons, GateReason{Code: code, Message: msg, Until: until})
	}

	switch u.State {
	case UpdateApproved, UpdateScheduled:
	case UpdateProposed, UpdateAwaitingApproval:
		switch {
		case u.ChangeNumber == "":
			add(GateApproval, "change not raised yet (queued for ServiceNow)", time.Time{})
		case !env.RequiresChange:
			add(GateApproval, fmt.Sprintf("awaiting approval of %s", u.ChangeNumber), time.Time{})
		}
		// A gated update's approval is judged from its mirrored change below.
	default:
		add(GateState, fmt.Sprintf("update is %s", u.State), time.Time{})
	}

	var ch Change
	if env.RequiresChange && u.ChangeSysID != "" {
		ch, err = s.store.GetChange(ctx, u.ChangeSysID)
		switch {
		case errors.Is(err, ErrNotFound):
			add(GateApproval, fmt.Sprintf("change %s not mirrored yet (run `daytwo sync --once`)", u.ChangeNumber), time.Time{})
		case err != nil:
			return g, err
		default:
			g.updateWaiting = u.State == UpdateProposed || u.State == UpdateAwaitingApproval
			// With daytwo's own check configured, its result (the list of
			// conflicts) is the authority, not the record's conflict_status.
			g.conflictsChecked = env.Change.CheckConflicts
			s.gateChange(&g, ch, now, add)
		}
	}

	if env.RequiresChange && env.Change.CheckConflicts && u.ChangeSysID != "" && !u.State.Terminal() && u.State != UpdateRunning {
		if r, ok, err := s.gateConflictCheck(ctx, u); err != nil {
			return g, err
		} else if ok {
			g.Reasons = append(g.Reasons, r)
		}
	}

	for _, f := range s.cfg.Freezes {
		if !f.Applies(env.Name) {
			continue
		}
		if until, frozen, err := freezeUntil(f, now); err != nil {
			add(GateFreeze, fmt.Sprintf("freeze %s cannot be evaluated: %v", f.Name, err), time.Time{})
		} else if frozen {
			add(GateFreeze, fmt.Sprintf("freeze %s until %s", f.Name, until.UTC().Format("2006-01-02 15:04 UTC")), until)
		}
	}

	releases, err := s.store.CurrentReleases(ctx)
	if err != nil {
		return g, err
	}
	g.Plan, err = BuildPlan(env, releases[env.Name], u.Version, u.Config)
	if err != nil {
		return g, err
	}
	// Only an approved plan is frozen: an ungated update is re-planned at
	// run time against today's configuration and release.
	if digest := g.Plan.Digest(); !env.RequiresChange {
	} else if digest != u.PlanDigest {
		add(GatePlan, fmt.Sprintf("plan changed since it was proposed (sha256 %s… now %s…): the configuration or the current release changed; propose again for a new approval",
			short(u.PlanDigest), short(digest)), time.Time{})
	} else if env.RequiresChange && u.ApprovedDigest != "" && u.ApprovedDigest != digest {
		add(GatePlan, fmt.Sprintf("plan sha256 %s… is not the approved plan %s…; propose again for a new approval", short(digest), short(u.ApprovedDigest)), time.Time{})
	}

	in, err := s.policyInput(ctx, env, u, ch, now)
	if err != nil {
		return g, err
	}
	for _, v := range s.policies.Evaluate(in) {
		if v.Blocking() {
			add(GatePolicy, fmt.Sprintf("policy %s: %s", v.Policy, verdictText(v)), time.Time{})
		}
	}

	leases, err := s.store.Leases(ctx)
	if err != nil {
		return g, err
	}
	for _, l := range leases {
		if l.Environment == env.Name {
			add(GateLease, fmt.Sprintf("%s is being rolled by %s (run %s) until %s", env.Name, l.Holder, l.RunID, l.ExpiresAt.UTC().Format("15:04:05 UTC")), l.ExpiresAt)
		}
	}

	// Pending: an approval is missing and nothing else stands in the way
	// that time alone will not clear (a window opening later still counts
	// as waiting for the approval first).
	g.Open = len(g.Reasons) == 0
	g.Pending = false
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
	return g, nil
}

// gateChange adds the reasons a mirrored change gives.
func (s *Service) gateChange(g *GateResult, ch Change, now time.Time, add func(code, msg string, until time.Time)) {
	approved := ch.Approval == "approved" || ch.Type == "standard"
	switch {
	case ch.State == ChangeNew && ch.Approval == "rejected":
		add(GateState, fmt.Sprintf("change %s was rejected", ch.Number), time.Time{})
	case ch.State == ChangeNew || ch.State == ChangeAssess || ch.State == ChangeAuthorize:
		add(GateApproval, fmt.Sprintf("change %s is in %s, awaiting approval", ch.Number, ch.State), time.Time{})
	case ch.State == ChangeScheduled || ch.State == ChangeImplement:
		if !approved {
			add(GateApproval, fmt.Sprintf("change %s is %s but its approval is %q", ch.Number, ch.State, ch.Approval), time.Time{})
		} else if g.updateWaiting {
			add(GateApproval, fmt.Sprintf("change %s is approved; the next sync records it", ch.Number), time.Time{})
		}
	default:
		add(GateState, fmt.Sprintf("change %s is %s", ch.Number, ch.State), time.Time{})
	}
	// The planned window: a closed interval; an empty bound is unbounded.
	switch {
	case !ch.StartDate.IsZero() && now.Before(ch.StartDate):
		add(GateWindow, fmt.Sprintf("outside the change window, opens %s", ch.StartDate.UTC().Format("2006-01-02 15:04 UTC")), ch.StartDate)
	case !ch.EndDate.IsZero() && now.After(ch.EndDate):
		add(GateWindow, fmt.Sprintf("the change window closed at %s; it needs a new change", ch.EndDate.UTC().Format("2006-01-02 15:04 UTC")), time.Time{})
	}
	if !g.conflictsChecked && ch.ConflictStatus == ConflictStatusConflict {
		add(GateConflict, fmt.Sprintf("ServiceNow reports a conflict for %s (blackout or overlapping change)", ch.Number), time.Time{})
	}
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
