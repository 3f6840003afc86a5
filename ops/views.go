package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/daytwo/daytwo/ops/policy"
)

// The read side: what the console and the CLI show. Everything here reads
// the local store (fast, and works while ServiceNow is down), except
// Connection with ping set.

// EnvironmentStatus is one environment as the environments screen shows it.
type EnvironmentStatus struct {
	Environment Environment `json:"environment"`
	Current     Release     `json:"current"`
	// Pending counts updates waiting to run (proposed, awaiting approval,
	// approved, scheduled, blocked).
	Pending int `json:"pending"`
	// Running is the run in progress, if any.
	Running *Run `json:"running,omitempty"`
	// Lease is who holds the environment now, if anyone.
	Lease *Lease `json:"lease,omitempty"`
	// Drifted counts targets whose last probe disagreed with the release.
	Drifted int `json:"drifted"`
	// Behind lists the promotion source's newer successful releases.
	Behind []string `json:"behind"`
	// LastResult is the outcome of the latest finished run.
	LastResult RunState `json:"last_result,omitempty"`
	// Alerts are policy verdicts failing for the current release.
	Alerts []policy.Verdict `json:"alerts"`
}

// Health is one (service, environment) pair's state at a glance, worst
// first: what the matrix cell and `service list` show.
type Health string

// Health values.
const (
	HealthRollingOut Health = "rolling out"
	HealthFailed     Health = "failed"      // the last run failed and could not be rolled back
	HealthRolledBack Health = "rolled back" // the last run was rolled back
	HealthDrifted    Health = "drifted"
	HealthPending    Health = "pending" // an update waits (for its change, approval or window)
	HealthNever      Health = "not deployed"
	HealthOK         Health = "healthy"
)

// Health is the pair's state at a glance.
func (st EnvironmentStatus) Health() Health {
	switch {
	case st.Running != nil:
		return HealthRollingOut
	case st.LastResult == RunFailed || st.LastResult == RunInterrupted:
		return HealthFailed
	case st.LastResult == RunRolledBack:
		return HealthRolledBack
	case st.Drifted > 0:
		return HealthDrifted
	case st.Pending > 0:
		return HealthPending
	case st.Current.Version == "":
		return HealthNever
	}
	return HealthOK
}

// EnvironmentStatuses returns every configured environment's status, in
// configuration order.
func (s *Service) EnvironmentStatuses(ctx context.Context) ([]EnvironmentStatus, error) {
	releases, err := s.store.CurrentReleases(ctx)
	if err != nil {
		return nil, err
	}
	leases, err := s.store.Leases(ctx)
	if err != nil {
		return nil, err
	}
	drifted, err := s.store.DriftedTargets(ctx)
	if err != nil {
		return nil, err
	}
	active, err := s.store.ListUpdates(ctx, UpdateFilter{States: OpenUpdateStates()})
	if err != nil {
		return nil, err
	}
	runs, err := s.store.LatestRuns(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]EnvironmentStatus, 0, len(s.cfg.Environments))
	for _, env := range s.cfg.Environments {
		st := EnvironmentStatus{Environment: env, Current: releases[env.Name], Drifted: drifted[env.Name], Behind: []string{}, Alerts: []policy.Verdict{}}
		for _, u := range active {
			if u.Environment == env.Name && u.State != UpdateRunning {
				st.Pending++
			}
		}
		for i := range leases {
			if leases[i].Environment == env.Name {
				st.Lease = &leases[i]
			}
		}
		for i := range runs { // newest first
			r := runs[i]
			if r.Environment != env.Name {
				continue
			}
			if r.State == RunRunning && st.Running == nil {
				st.Running = &runs[i]
			} else if r.State != RunRunning && st.LastResult == "" {
				st.LastResult = r.State
			}
		}
		if env.PromoteFrom != "" {
			if st.Behind, err = s.promotionLag(ctx, env, st.Current.Version); err != nil {
				return nil, err
			}
		}
		if st.Current.Version != "" {
			u := Update{Environment: env.Name, Version: st.Current.Version, Config: st.Current.Config, FromVersion: st.Current.Version}
			in, err := s.policyInput(ctx, env, u, Change{}, s.now())
			if err != nil {
				return nil, err
			}
			for _, v := range s.policies.Evaluate(in) {
				if !v.Passed {
					st.Alerts = append(st.Alerts, v)
				}
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// UpdateStatus is one update with its change and whether it may run.
type UpdateStatus struct {
	Update Update     `json:"update"`
	Change *Change    `json:"change,omitempty"`
	Gate   GateResult `json:"gate"`
	// GateText is the gate in words: "open", or "blocked: …" / "pending: …".
	GateText string `json:"gate_text"`
	LastRun  *Run   `json:"last_run,omitempty"`
}

// UpdateStatuses lists updates (newest first) with their gate.
func (s *Service) UpdateStatuses(ctx context.Context, f UpdateFilter) ([]UpdateStatus, error) {
	ups, err := s.store.ListUpdates(ctx, f)
	if err != nil {
		return nil, err
	}
	facts, err := s.gateFacts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]UpdateStatus, 0, len(ups))
	for _, u := range ups {
		st, err := s.updateStatus(ctx, u, facts)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func (s *Service) updateStatus(ctx context.Context, u Update, facts gateFacts) (UpdateStatus, error) {
	st := UpdateStatus{Update: u}
	if u.ChangeSysID != "" {
		if ch, err := s.store.GetChange(ctx, u.ChangeSysID); err == nil {
			st.Change = &ch
		} else if !errors.Is(err, ErrNotFound) {
			return st, err
		}
	}
	switch u.State {
	case UpdateSucceeded, UpdateRejected, UpdateCanceled, UpdateRolledBack, UpdateFailed, UpdateRunning, UpdateBlocked, UpdateStopped:
		st.GateText = string(u.State)
		if u.Reason != "" {
			st.GateText += ": " + u.Reason
		}
	default:
		if _, err := s.Environment(u.Environment); err != nil {
			st.GateText = "environment no longer configured"
			break
		}
		g, err := s.gate(ctx, u, facts)
		if err != nil {
			return st, err
		}
		st.Gate = g
		switch {
		case g.Open:
			st.GateText = "open: ready to run"
		case g.Pending:
			st.GateText = "pending: " + g.Summary()
		default:
			st.GateText = "blocked: " + g.Summary()
		}
	}
	runs, err := s.store.Runs(ctx, u.ID)
	if err != nil {
		return st, err
	}
	if len(runs) > 0 {
		st.LastRun = &runs[0]
	}
	return st, nil
}

// UpdateDetail is everything about one update.
type UpdateDetail struct {
	UpdateStatus
	Plan      Plan             `json:"plan"`
	PlanText  string           `json:"plan_text"`
	Verdicts  []policy.Verdict `json:"verdicts"`
	Approvals []Approval       `json:"approvals"`
	// Notes are the work notes daytwo wrote (or queued) on the change.
	Notes     []WorkNote `json:"notes"`
	Incidents []Incident `json:"incidents"`
	Runs      []Run      `json:"runs"`
}

// WorkNote is a work note daytwo wrote on a change.
type WorkNote struct {
	Time      time.Time `json:"time"`
	Text      string    `json:"text"`
	Delivered bool      `json:"delivered"`
}

// UpdateDetail returns one update (by id or change number) in full.
func (s *Service) UpdateDetail(ctx context.Context, idOrChange string) (UpdateDetail, error) {
	u, err := s.store.GetUpdate(ctx, idOrChange)
	if err != nil {
		return UpdateDetail{}, err
	}
	facts, err := s.gateFacts(ctx)
	if err != nil {
		return UpdateDetail{}, err
	}
	st, err := s.updateStatus(ctx, u, facts)
	if err != nil {
		return UpdateDetail{}, err
	}
	d := UpdateDetail{UpdateStatus: st, Verdicts: []policy.Verdict{}, Approvals: []Approval{}, Notes: []WorkNote{}, Incidents: []Incident{}, Runs: []Run{}}
	if err := json.Unmarshal(u.Plan, &d.Plan); err != nil {
		return d, fmt.Errorf("update %s: stored plan: %w", u.ID, err)
	}
	d.PlanText = d.Plan.Text()
	if env, err := s.Environment(u.Environment); err == nil {
		var ch Change
		if st.Change != nil {
			ch = *st.Change
		}
		in, err := s.policyInput(ctx, env, u, ch, s.now())
		if err != nil {
			return d, err
		}
		d.Verdicts = append(d.Verdicts, s.policies.Evaluate(in)...)
	}
	if u.ChangeSysID != "" {
		as, err := s.store.Approvals(ctx, u.ChangeSysID)
		if err != nil {
			return d, err
		}
		d.Approvals = append(d.Approvals, as...)
	}
	items, err := s.store.ListOutbox(ctx, OutboxFilter{Key: u.ID, States: []OutboxState{OutboxPending, OutboxFailed, OutboxDelivered}})
	if err != nil {
		return d, err
	}
	for _, it := range items {
		if it.Kind != OutboxWorkNote {
			continue
		}
		var p notePayload
		if json.Unmarshal(it.Payload, &p) == nil {
			d.Notes = append(d.Notes, WorkNote{Time: it.CreatedAt, Text: p.Note, Delivered: it.State == OutboxDelivered})
		}
	}
	inc, err := s.store.Incidents(ctx, u.ID)
	if err != nil {
		return d, err
	}
	d.Incidents = append(d.Incidents, inc...)
	runs, err := s.store.Runs(ctx, u.ID)
	if err != nil {
		return d, err
	}
	d.Runs = append(d.Runs, runs...)
	return d, nil
}

// TargetProgress is one target's state in a run.
type TargetProgress struct {
	Target  string    `json:"target"`
	Batch   int       `json:"batch"`
	Step    string    `json:"step"`
	State   StepState `json:"state"`
	Version string    `json:"version"`
	Detail  string    `json:"detail,omitempty"`
}

// RunProgress is a run with the latest step of each target.
type RunProgress struct {
	Run     Run              `json:"run"`
	Update  Update           `json:"update"`
	Batches int              `json:"batches"`
	Targets []TargetProgress `json:"targets"`
	// Done counts targets whose last step succeeded.
	Done int `json:"done"`
}

// RunProgress returns a run's progress from its journal.
func (s *Service) RunProgress(ctx context.Context, runID string) (RunProgress, error) {
	run, err := s.store.GetRun(ctx, runID)
	if err != nil {
		return RunProgress{}, err
	}
	u, err := s.store.GetUpdate(ctx, run.UpdateID)
	if err != nil {
		return RunProgress{}, err
	}
	p := RunProgress{Run: run, Update: u, Targets: []TargetProgress{}}
	var plan Plan
	if err := json.Unmarshal(u.Plan, &plan); err == nil {
		p.Batches = len(plan.Batches)
		for _, b := range plan.Batches {
			for _, t := range b.Targets {
				p.Targets = append(p.Targets, TargetProgress{Target: t, Batch: b.Index, State: StepWaiting})
			}
		}
	}
	steps, err := s.store.Steps(ctx, runID)
	if err != nil {
		return p, err
	}
	idx := map[string]int{}
	for i, t := range p.Targets {
		idx[t.Target] = i
	}
	for _, st := range steps {
		i, ok := idx[st.Target]
		if !ok {
			continue
		}
		tp := &p.Targets[i]
		tp.Step, tp.State, tp.Version, tp.Detail = st.Step, st.State, st.Version, st.Detail
	}
	for _, t := range p.Targets {
		if t.State == StepSucceeded {
			p.Done++
		}
	}
	return p, nil
}

// LatestRun returns the most recent run of any update.
func (s *Service) LatestRun(ctx context.Context) (Run, bool, error) {
	return s.store.LatestRun(ctx)
}

// RunLog returns up to limit lines of a run's log after line id after.
func (s *Service) RunLog(ctx context.Context, runID string, after int64, limit int) ([]LogLine, error) {
	return s.store.LogLines(ctx, runID, after, limit)
}

// AuditEvents lists audit events.
func (s *Service) AuditEvents(ctx context.Context, f EventFilter) ([]Event, error) {
	return s.store.ListEvents(ctx, f)
}

// VerifyAudit checks the audit chain.
func (s *Service) VerifyAudit(ctx context.Context) (AuditVerification, error) {
	return s.store.VerifyAudit(ctx)
}

// Changes lists mirrored changes.
func (s *Service) Changes(ctx context.Context, f ChangeFilter) ([]Change, error) {
	return s.store.ListChanges(ctx, f)
}

// Outbox lists outbox items.
func (s *Service) Outbox(ctx context.Context, f OutboxFilter) ([]OutboxItem, error) {
	return s.store.ListOutbox(ctx, f)
}

// ConnectionStatus says how daytwo stands with ServiceNow.
type ConnectionStatus struct {
	Instance   string    `json:"instance"`
	Configured bool      `json:"configured"`
	Checked    bool      `json:"checked"`
	Reachable  bool      `json:"reachable"`
	Error      string    `json:"error,omitempty"`
	LastSync   time.Time `json:"last_sync,omitzero"`
	Pending    int       `json:"outbox_pending"`
	Failed     int       `json:"outbox_failed"`
}

// Offline reports whether daytwo works from the mirror only.
func (c ConnectionStatus) Offline() bool { return !c.Configured || (c.Checked && !c.Reachable) }

// Connection reports the outbox and last sync and, with ping, whether
// ServiceNow answers now (bounded by ctx).
func (s *Service) Connection(ctx context.Context, instance string, ping bool) (ConnectionStatus, error) {
	cs := ConnectionStatus{Instance: instance}
	_, cerr := s.changeSystem()
	cs.Configured = cerr == nil
	if cerr != nil {
		cs.Error = cerr.Error()
	}
	w, err := s.store.GetWatermark(ctx, TableChanges)
	if err != nil {
		return cs, err
	}
	cs.LastSync = w.UpdatedOn
	items, err := s.store.ListOutbox(ctx, OutboxFilter{})
	if err != nil {
		return cs, err
	}
	for _, it := range items {
		if it.State == OutboxFailed {
			cs.Failed++
		} else {
			cs.Pending++
		}
	}
	if ping && cs.Configured {
		cs.Checked = true
		if err := s.changes.Ping(ctx); err != nil {
			cs.Error = err.Error()
		} else {
			cs.Reachable = true
		}
	}
	return cs, nil
}

// RetryOutbox makes failed writes pending again (one, or all when id is
// 0) and delivers what is due.
func (s *Service) RetryOutbox(ctx context.Context, id int64) (int, DeliveryStats, error) {
	n, err := s.store.RetryOutbox(ctx, id)
	if err != nil {
		return 0, DeliveryStats{}, err
	}
	st, err := s.DeliverOutbox(ctx)
	return n, st, err
}

// CountChanges counts mirrored changes matching f.
func (s *Service) CountChanges(ctx context.Context, f ChangeFilter) (int, error) {
	return s.store.CountChanges(ctx, f)
}

// PolicyReport is the policy verdicts for what an environment runs now.
type PolicyReport struct {
	Environment string           `json:"environment"`
	Version     string           `json:"version"`
	Verdicts    []policy.Verdict `json:"verdicts"`
}

// PolicyCheck evaluates the policies against each environment's current
// release (compliance). An environment where nothing was deployed yet has
// no verdicts.
func (s *Service) PolicyCheck(ctx context.Context, envs ...string) ([]PolicyReport, error) {
	releases, err := s.store.CurrentReleases(ctx)
	if err != nil {
		return nil, err
	}
	var out []PolicyReport
	sources := map[string][]Release{} // each promotion source's history read once
	for _, env := range s.cfg.Environments {
		if len(envs) > 0 && !slices.Contains(envs, env.Name) {
			continue
		}
		rel := releases[env.Name]
		if rel.Version == "" {
			out = append(out, PolicyReport{Environment: env.Name, Verdicts: []policy.Verdict{}}) // nothing runs: nothing to judge
			continue
		}
		u := Update{Environment: env.Name, Version: rel.Version, Config: rel.Config, FromVersion: rel.Version}
		in, err := s.policyInputFrom(ctx, env, u, Change{}, s.now(), sources)
		if err != nil {
			return nil, err
		}
		out = append(out, PolicyReport{Environment: env.Name, Version: rel.Version, Verdicts: append([]policy.Verdict{}, s.policies.Evaluate(in)...)})
	}
	return out, nil
}
