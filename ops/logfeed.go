package ops

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Streams of the log feed.
const (
	FeedRunLog = "run_log" // a line of a run's log: deploy, rollback and check output, daytwo's own progress
	FeedAudit  = "audit"   // an audit event
	FeedAlert  = "alert"   // an audit event about an alert (alert.firing, alert.resolved, …)
)

// FeedRecord is one record of daytwo's log feed: run logs, audit events
// and alerts in one stream, each labelled with its service, environment,
// run and change, for a log pipeline (Vector, Fluent Bit, Loki's agents).
type FeedRecord struct {
	// ID is unique in the store ("log:123", "audit:45"): a pipeline that
	// restarts from a cursor may see a record twice, never miss one, and
	// can drop the repeat by it.
	ID          string    `json:"id"`
	Stream      string    `json:"stream"`
	Time        time.Time `json:"time"`
	Service     string    `json:"service,omitempty"`
	Environment string    `json:"environment,omitempty"` // the stage (dev, staging, production)
	Unit        string    `json:"unit,omitempty"`        // the (service, environment) pair's key
	Run         string    `json:"run,omitempty"`
	Change      string    `json:"change,omitempty"`
	Update      string    `json:"update,omitempty"`
	Target      string    `json:"target,omitempty"`
	Message     string    `json:"message"`
	// Output is a run log line's origin: stdout, stderr or daytwo.
	Output string `json:"output,omitempty"`
	// Audit and alert records.
	Seq     int64          `json:"seq,omitempty"`
	Actor   string         `json:"actor,omitempty"`
	Action  string         `json:"action,omitempty"`
	Subject string         `json:"subject,omitempty"`
	Result  string         `json:"result,omitempty"`
	Detail  map[string]any `json:"detail,omitempty"`
}

// FeedCursor is where a log feed is: every audit event up to AuditSeq and
// every run log line up to LogID has been delivered.
type FeedCursor struct {
	AuditSeq int64 `json:"audit_seq"`
	LogID    int64 `json:"log_id"`
}

// FeedFilter narrows the feed. Empty fields match everything.
type FeedFilter struct {
	Service     string
	Environment string // a stage or a pair's key
	Streams     []string
}

func (f FeedFilter) match(r FeedRecord) bool {
	if len(f.Streams) > 0 && !slices.Contains(f.Streams, r.Stream) {
		return false
	}
	if f.Service != "" && r.Service != f.Service {
		return false
	}
	if f.Environment != "" && r.Environment != f.Environment && r.Unit != f.Environment {
		return false
	}
	return true
}

// feedGapGrace is how long a feed waits for an id that is missing below
// ids it has seen before it treats the id as never coming. On PostgreSQL
// ids are allocated before commit, so two transactions can commit out of
// order; a rolled-back transaction leaves a gap for ever.
const feedGapGrace = 10 * time.Second

// feedBatch is how many rows of each table a feed reads per call.
const feedBatch = 2000

// LogFeed follows the store's run logs and audit log as one stream of
// FeedRecords. It reads any store (several daemons on PostgreSQL write
// into one feed) and never misses a record that commits late: it keeps its
// cursor below an id it has not seen until the id arrives or
// feedGapGrace passes, and drops what it has already returned.
type LogFeed struct {
	s      *Service
	filter FeedFilter
	audit  idFollower
	logs   idFollower
	runs   map[string]feedRun
}

type feedRun struct {
	env, update, change string
}

// NewLogFeed returns a feed that starts after cursor.
func (s *Service) NewLogFeed(cursor FeedCursor, f FeedFilter) *LogFeed {
	return &LogFeed{
		s: s, filter: f, runs: map[string]feedRun{},
		audit: newIDFollower(cursor.AuditSeq), logs: newIDFollower(cursor.LogID),
	}
}

// FeedHead is a cursor at the store's current end: a feed started there
// returns only what happens from now on.
func (s *Service) FeedHead(ctx context.Context) (FeedCursor, error) {
	var c FeedCursor
	evs, err := s.store.ListEvents(ctx, EventFilter{Limit: 1})
	if err != nil {
		return c, err
	}
	if len(evs) > 0 {
		c.AuditSeq = evs[len(evs)-1].Seq
	}
	if c.LogID, err = s.store.LastLogLine(ctx); err != nil {
		return c, err
	}
	return c, nil
}

// Cursor is the feed's position: everything up to it has been returned.
func (f *LogFeed) Cursor() FeedCursor {
	return FeedCursor{AuditSeq: f.audit.done, LogID: f.logs.done}
}

// Next returns the records committed since the last call, in time order
// (audit events before log lines of the same instant); none when nothing
// new has committed.
func (f *LogFeed) Next(ctx context.Context) ([]FeedRecord, error) {
	now := f.s.now()
	// A change number is known once the change is raised (an emergency
	// rollback runs before its change is): ask again, once a batch, for
	// runs that had none.
	maps.DeleteFunc(f.runs, func(_ string, r feedRun) bool { return r.change == "" })
	evs, err := f.s.store.ListEvents(ctx, EventFilter{AfterSeq: f.audit.done})
	if err != nil {
		return nil, fmt.Errorf("log feed: audit events: %w", err)
	}
	lines, err := f.s.store.LogLines(ctx, "", f.logs.done, feedBatch)
	if err != nil {
		return nil, fmt.Errorf("log feed: run logs: %w", err)
	}
	var out []FeedRecord
	for _, e := range evs {
		if !f.audit.fresh(e.Seq) {
			continue
		}
		if r := f.event(e); f.filter.match(r) {
			out = append(out, r)
		}
	}
	for _, l := range lines {
		if !f.logs.fresh(l.ID) {
			continue
		}
		r, err := f.line(ctx, l)
		if err != nil {
			return nil, err
		}
		if f.filter.match(r) {
			out = append(out, r)
		}
	}
	f.audit.advance(now)
	f.logs.advance(now)
	slices.SortStableFunc(out, func(a, b FeedRecord) int { return a.Time.Compare(b.Time) })
	return out, nil
}

func (f *LogFeed) labels(r *FeedRecord, unit string) {
	r.Unit = unit
	if unit == "" {
		return
	}
	if env, err := f.s.Environment(unit); err == nil {
		r.Service, r.Environment = env.Service, env.StageName()
		return
	}
	// An environment no longer configured: its key still says which.
	r.Environment = StageOf(unit)
	if svc, _, ok := strings.Cut(unit, "/"); ok {
		r.Service = svc
	}
}

func (f *LogFeed) event(e Event) FeedRecord {
	r := FeedRecord{
		ID: fmt.Sprintf("audit:%d", e.Seq), Stream: FeedAudit, Time: e.Time, Change: e.ChangeNumber, Update: e.UpdateID,
		Seq: e.Seq, Actor: e.Actor, Action: e.Action, Subject: e.Subject, Result: e.Result, Detail: e.Detail,
	}
	if strings.HasPrefix(e.Action, "alert.") {
		r.Stream = FeedAlert
	}
	f.labels(&r, e.Environment)
	if run, ok := e.Detail["run"].(string); ok {
		r.Run = run
	} else if strings.HasPrefix(e.Action, "run.") {
		r.Run = e.Subject
	}
	r.Message = e.Action
	if e.Subject != "" {
		r.Message += " " + e.Subject
	}
	if e.Result != "" {
		r.Message += ": " + e.Result
	}
	return r
}

func (f *LogFeed) line(ctx context.Context, l LogLine) (FeedRecord, error) {
	r := FeedRecord{
		ID: fmt.Sprintf("log:%d", l.ID), Stream: FeedRunLog, Time: l.Time, Run: l.RunID,
		Target: l.Target, Output: l.Stream, Message: l.Line,
	}
	run, ok := f.runs[l.RunID]
	if !ok {
		got, err := f.s.store.GetRun(ctx, l.RunID)
		if err != nil {
			return r, fmt.Errorf("log feed: run %s: %w", l.RunID, err)
		}
		run = feedRun{env: got.Environment, update: got.UpdateID}
		if u, err := f.s.store.GetUpdate(ctx, got.UpdateID); err == nil {
			run.change = u.ChangeNumber
		}
		if len(f.runs) >= 4096 {
			clear(f.runs)
		}
		f.runs[l.RunID] = run
	}
	r.Update, r.Change = run.update, run.change
	f.labels(&r, run.env)
	return r, nil
}

// idFollower tracks which ids above a done mark have been returned, so
// that ids committed out of order are each returned once.
type idFollower struct {
	done int64              // every id ≤ done is returned or given up
	seen map[int64]struct{} // ids > done returned
	gap  map[int64]time.Time
}

func newIDFollower(after int64) idFollower {
	return idFollower{done: after, seen: map[int64]struct{}{}, gap: map[int64]time.Time{}}
}

// fresh reports whether id is new, and marks it returned.
func (f *idFollower) fresh(id int64) bool {
	if id <= f.done {
		return false
	}
	if _, ok := f.seen[id]; ok {
		return false
	}
	f.seen[id] = struct{}{}
	return true
}

// advance moves done over returned ids, and over a missing id once it has
// been missing for feedGapGrace (or too many ids wait above it).
func (f *idFollower) advance(now time.Time) {
	for len(f.seen) > 0 {
		next := f.done + 1
		if _, ok := f.seen[next]; ok {
			delete(f.seen, next)
			delete(f.gap, next)
			f.done = next
			continue
		}
		since, ok := f.gap[next]
		if !ok {
			f.gap[next] = now
			since = now
		}
		if now.Sub(since) < feedGapGrace && len(f.seen) < feedBatch/2 {
			return
		}
		delete(f.gap, next)
		f.done = next
	}
}
