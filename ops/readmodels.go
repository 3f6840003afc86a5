package ops

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Read models for the commands: what `change show`, `change approve`,
// `propose`, `run`, `env`, `status`, `audit verify` and the daemon show,
// so that no command reads the store itself (cli/cli keeps its commands
// to options and a run function; the data comes from the layer below).
// Everything here reads the local store.

// ChangeDetail is one mirrored change with its approvals, the daytwo update
// behind it (if any) and that update's incidents.
type ChangeDetail struct {
	Change    Change
	Approvals []Approval
	Update    *Update
	Incidents []Incident
}

// NotMirroredError says a change is not in the local mirror.
type NotMirroredError struct {
	Change string
	Err    error
}

func (e *NotMirroredError) Error() string {
	return fmt.Sprintf("change %s is not in the local mirror: %v", e.Change, e.Err)
}

func (e *NotMirroredError) Unwrap() error { return e.Err }

// ChangeDetail returns a mirrored change (by number or sys_id) in full; a
// change the mirror does not hold is a *NotMirroredError.
func (s *Service) ChangeDetail(ctx context.Context, numberOrSysID string) (ChangeDetail, error) {
	c, err := s.store.GetChange(ctx, numberOrSysID)
	if err != nil {
		return ChangeDetail{}, &NotMirroredError{Change: numberOrSysID, Err: err}
	}
	d := ChangeDetail{Change: c, Approvals: []Approval{}, Incidents: []Incident{}}
	as, err := s.store.Approvals(ctx, c.SysID)
	if err != nil {
		return d, err
	}
	d.Approvals = append(d.Approvals, as...)
	if u, err := s.store.GetUpdate(ctx, c.Number); err == nil {
		d.Update = &u
		// A change's incidents are extra: the detail stands without them.
		if inc, err := s.store.Incidents(ctx, u.ID); err == nil {
			d.Incidents = append(d.Incidents, inc...)
		}
	}
	return d, nil
}

// DecisionOutcome is the newest decision on a change with the change as
// the mirror holds it now (after delivery, its new state and approval).
type DecisionOutcome struct {
	DecisionStatus
	Change Change
}

// DecisionOutcome returns what became of the newest decision on ch. The
// change is as mirrored; it is the zero Change when the mirror does not
// hold it (the decision is what counts).
func (s *Service) DecisionOutcome(ctx context.Context, ch Change) (DecisionOutcome, error) {
	st, err := s.Decision(ctx, ch.Number)
	if err != nil {
		return DecisionOutcome{}, err
	}
	after, _ := s.store.GetChange(ctx, ch.SysID)
	return DecisionOutcome{DecisionStatus: st, Change: after}, nil
}

// ProposalStatus is where a proposed update stands after its change
// request was (or was not yet) delivered.
type ProposalStatus struct {
	Update *Update
	// Change is the update's change as mirrored, if it was raised.
	Change *Change
	// Queued counts the update's writes still waiting for ServiceNow.
	Queued int
}

// ProposalStatus reads where update id stands. It returns what it could
// read with the errors of what it could not (each part is optional to the
// caller: a proposal was made either way).
func (s *Service) ProposalStatus(ctx context.Context, id string) (ProposalStatus, error) {
	var (
		ps   ProposalStatus
		errs []error
	)
	if u, err := s.store.GetUpdate(ctx, id); err == nil {
		ps.Update = &u
		if u.ChangeSysID != "" {
			if ch, err := s.store.GetChange(ctx, u.ChangeSysID); err == nil {
				ps.Change = &ch
			} else {
				errs = append(errs, err)
			}
		}
	} else {
		errs = append(errs, err)
	}
	pending, err := s.store.ListOutbox(ctx, OutboxFilter{Key: id})
	if err != nil {
		errs = append(errs, err)
	}
	ps.Queued = len(pending)
	return ps, errors.Join(errs...)
}

// OpenUpdate returns env's open update (there is at most one); false when
// it has none.
func (s *Service) OpenUpdate(ctx context.Context, env string) (Update, bool, error) {
	open, err := s.store.ListUpdates(ctx, UpdateFilter{Environment: env, States: OpenUpdateStates()})
	if err != nil || len(open) == 0 {
		return Update{}, false, err
	}
	return open[0], true, nil
}

// CurrentReleases returns what each environment runs now, by name; an
// environment where nothing was deployed is missing.
func (s *Service) CurrentReleases(ctx context.Context) (map[string]Release, error) {
	return s.store.CurrentReleases(ctx)
}

// Releases returns env's release history, newest first (limit 0: all).
func (s *Service) Releases(ctx context.Context, env string, limit int) ([]Release, error) {
	return s.store.Releases(ctx, env, limit)
}

// Runs returns an update's runs, newest first (every update's with an
// empty id), optionally only those in states.
func (s *Service) Runs(ctx context.Context, updateID string, states ...RunState) ([]Run, error) {
	return s.store.Runs(ctx, updateID, states...)
}

// GetRun returns a run by id.
func (s *Service) GetRun(ctx context.Context, id string) (Run, error) {
	return s.store.GetRun(ctx, id)
}

// Leases returns the environments' leases held now.
func (s *Service) Leases(ctx context.Context) ([]Lease, error) {
	return s.store.Leases(ctx)
}

// FailedStep is a step that failed in a run with the last lines its
// command wrote.
type FailedStep struct {
	Step  StepRecord
	Lines []LogLine
}

// FailedSteps returns each failed step of a run with (at most) the last
// lines lines of log its target wrote while the step ran.
func (s *Service) FailedSteps(ctx context.Context, runID string, lines int) ([]FailedStep, error) {
	steps, err := s.store.Steps(ctx, runID)
	if err != nil {
		return nil, err
	}
	const page = 5000
	var log []LogLine
	for after := int64(0); ; {
		got, err := s.store.LogLines(ctx, runID, after, page)
		if err != nil {
			return nil, err
		}
		log = append(log, got...)
		if len(got) < page {
			break
		}
		after = got[len(got)-1].ID
	}
	var out []FailedStep
	for _, st := range steps {
		if st.State != StepFailed {
			continue
		}
		fs := FailedStep{Step: st}
		// Log lines and step times are stamped by different clocks'
		// reads: a millisecond of slack on either side.
		for _, l := range log {
			if l.Target == st.Target && !l.Time.Before(st.StartedAt.Add(-time.Millisecond)) &&
				(st.FinishedAt.IsZero() || !l.Time.After(st.FinishedAt.Add(time.Millisecond))) {
				fs.Lines = append(fs.Lines, l)
			}
		}
		if len(fs.Lines) > lines {
			fs.Lines = fs.Lines[len(fs.Lines)-lines:]
		}
		out = append(out, fs)
	}
	return out, nil
}

// RequeueOutbox makes failed writes pending again (one, or all when id is
// 0) without delivering them; an unknown id is an error.
func (s *Service) RequeueOutbox(ctx context.Context, id int64) (int, error) {
	if id != 0 {
		if _, err := s.store.GetOutbox(ctx, id); err != nil {
			return 0, err
		}
	}
	return s.store.RetryOutbox(ctx, id)
}

// What a store tells and records about itself beyond the domain: its
// summary, daemon heartbeats, anchor checks, liveness. These are capability
// interfaces (k9s's Restartable idea): the SQLite and PostgreSQL stores
// implement them all (checked at compile time where cmd wires them); a
// store that does not says so when asked.

// StoreStatus summarises a store for `daytwo status`.
type StoreStatus struct {
	Path          string            `json:"path"`
	SchemaVersion int               `json:"schema_version"`
	Environments  int               `json:"environments"`
	Changes       int               `json:"changes"`
	ActiveChanges int               `json:"active_changes"`
	Updates       map[string]int    `json:"updates"`
	OutboxPending int               `json:"outbox_pending"`
	OutboxFailed  int               `json:"outbox_failed"`
	AuditEvents   int               `json:"audit_events"`
	LastSync      map[string]string `json:"last_sync"`
	// Daemons are the `sync --watch` processes on this database.
	Daemons []Daemon `json:"daemons"`
}

// Daemon is one `daytwo sync --watch` process on a database.
type Daemon struct {
	ID          string    `json:"id"`
	Host        string    `json:"host"`
	PID         int       `json:"pid"`
	Version     string    `json:"version"`
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
	// Holds lists the environments whose lease it holds now.
	Holds []string `json:"holds"`
}

// StatusReader is a store that summarises itself.
type StatusReader interface {
	Status(ctx context.Context) (StoreStatus, error)
}

// DaemonRegistry records the daemons working on a store.
type DaemonRegistry interface {
	// Heartbeat records that d is alive (inserting it the first time).
	Heartbeat(ctx context.Context, d Daemon) error
	// DaemonStopped removes a daemon that stopped cleanly.
	DaemonStopped(ctx context.Context, id string) error
}

// AnchorVerifier checks the audit chain against anchors kept outside it.
type AnchorVerifier interface {
	VerifyAuditAnchors(ctx context.Context, anchors []AuditAnchor) (AuditVerification, error)
}

// MirrorCounter counts active mirrored changes by state and undelivered
// outbox items by state (the daemon's gauges).
type MirrorCounter interface {
	ChangeCounts(ctx context.Context) (changes map[string]int, outbox map[string]int, err error)
}

// Pinger answers whether the store can be reached now.
type Pinger interface {
	Ping(ctx context.Context) error
}

// SearchWarmer is a store that can keep an in-memory search index of the
// changes mirror current in the background (SQLite; PostgreSQL searches
// in SQL).
type SearchWarmer interface {
	WarmSearch()
}

// WarmSearch starts the store's background search index, when it has one:
// a console calls it so its first search does not pay for the build.
func (s *Service) WarmSearch() {
	if w, ok := s.store.(SearchWarmer); ok {
		w.WarmSearch()
	}
}

// errNoCapability says the store does not do what was asked.
func (s *Service) errNoCapability(what string) error {
	return fmt.Errorf("ops: the store (%T) does not %s", s.store, what)
}

// StoreStatus returns the store's summary.
func (s *Service) StoreStatus(ctx context.Context) (StoreStatus, error) {
	r, ok := s.store.(StatusReader)
	if !ok {
		return StoreStatus{}, s.errNoCapability("summarise itself")
	}
	return r.Status(ctx)
}

// VerifyAuditAnchors checks the whole audit chain and compares it with
// anchors (from the anchor file, ServiceNow's work notes).
func (s *Service) VerifyAuditAnchors(ctx context.Context, anchors []AuditAnchor) (AuditVerification, error) {
	v, ok := s.store.(AnchorVerifier)
	if !ok {
		return AuditVerification{}, s.errNoCapability("verify audit anchors")
	}
	return v.VerifyAuditAnchors(ctx, anchors)
}

// Heartbeat records that daemon d works on the store now.
func (s *Service) Heartbeat(ctx context.Context, d Daemon) error {
	r, ok := s.store.(DaemonRegistry)
	if !ok {
		return s.errNoCapability("record daemons")
	}
	return r.Heartbeat(ctx, d)
}

// DaemonStopped removes daemon id, which stopped cleanly.
func (s *Service) DaemonStopped(ctx context.Context, id string) error {
	r, ok := s.store.(DaemonRegistry)
	if !ok {
		return s.errNoCapability("record daemons")
	}
	return r.DaemonStopped(ctx, id)
}

// MirrorCounts counts active mirrored changes and undelivered outbox items
// by state.
func (s *Service) MirrorCounts(ctx context.Context) (changes, outbox map[string]int, err error) {
	c, ok := s.store.(MirrorCounter)
	if !ok {
		return nil, nil, s.errNoCapability("count the mirror")
	}
	return c.ChangeCounts(ctx)
}

// PingStore reports whether the store answers now.
func (s *Service) PingStore(ctx context.Context) error {
	p, ok := s.store.(Pinger)
	if !ok {
		return s.errNoCapability("answer pings")
	}
	return p.Ping(ctx)
}

// Updates lists updates as stored (newest first), without their gates:
// what shell completion offers.
func (s *Service) Updates(ctx context.Context, f UpdateFilter) ([]Update, error) {
	return s.store.ListUpdates(ctx, f)
}
