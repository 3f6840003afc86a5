package itsm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// Conflict checks run in the background on the instance (SERVICENOW.md §6,
// trap 22): POST /change/{id}/conflict answers with the worker's sys_id,
// GET /change/worker/{worker} says when it is Complete, and only then does
// GET /change/{id}/conflict hold its results. The poll interval starts
// short and doubles up to conflictPollMax.
const (
	conflictPollMin = 250 * time.Millisecond
	conflictPollMax = 2 * time.Second
	// conflictWait bounds CheckConflicts (start and wait in one call).
	conflictWait = time.Minute
)

// ConflictState is what a conflict check has come to.
type ConflictState string

// Conflict check states.
const (
	// ConflictRunning: the worker has not completed (or its results are
	// not yet the ones it produced); poll again later.
	ConflictRunning ConflictState = "running"
	// ConflictNone: the check completed and listed no conflict, whatever
	// its status says (ServiceNow says "Conflict" for an empty list).
	ConflictNone ConflictState = "none"
	// ConflictFound: the check completed and listed conflicts.
	ConflictFound ConflictState = "conflict"
	// ConflictFailed: the worker ended in error or vanished; start again.
	ConflictFailed ConflictState = "failed"
)

// ConflictCheck identifies a check in flight: the worker running it, and
// when it was started by the instance's clock (to the second).
type ConflictCheck struct {
	Worker  string
	Started time.Time
}

// ConflictResult is a conflict check decoded: its state, and for a
// completed check the conflicts (the authority), when it ran, and what the
// instance said (status and job_status are informative only).
type ConflictResult struct {
	State ConflictState
	Check ConflictCheck
	// LastRun is when the instance ran the check (last_run); a completed
	// result is the check's own only if LastRun is not before its start.
	LastRun   time.Time
	Conflicts []Conflict
	// Status is the reported status ("Conflict" even with no conflicts);
	// JobStatus an opaque code ("2" in every documented finished sample).
	Status      string
	JobStatus   string
	RecordCount int
	// Message says why a check failed.
	Message string
}

// Conflict is one detected conflict.
type Conflict struct {
	// Change is the checked change's sys_id, ChangeNumber its number.
	Change       string
	ChangeNumber string
	// Type is the conflict type value (e.g. not_in_maintenance_window,
	// blackout, ci_already_scheduled); TypeLabel its display value.
	Type      string
	TypeLabel string
	CI        string
	CIName    string
	// Conflicting is the other change (sys_id and number) for an
	// "already scheduled" conflict; Schedule names the blackout schedule.
	Conflicting       string
	ConflictingNumber string
	Schedule          string
}

func conflictPath(sysID string) (string, error) {
	if !isSysID(sysID) {
		return "", fmt.Errorf("itsm: conflict check: %q is not a sys_id", sysID)
	}
	return "/api/sn_chg_rest/change/" + url.PathEscape(sysID) + "/conflict", nil
}

// StartConflictCheck starts a conflict check of the change and returns its
// worker. It needs the Change Management API.
func (c *Client) StartConflictCheck(ctx context.Context, sysID string) (ConflictCheck, error) {
	path, err := conflictPath(sysID)
	if err != nil {
		return ConflictCheck{}, err
	}
	// The instance's clock, to the second, as last_run is.
	started := c.serverNow().UTC().Truncate(time.Second)
	// Starting a check twice is harmless: idempotent for retries.
	resp, err := c.do(ctx, request{method: http.MethodPost, path: path, body: []byte("{}"), idempotent: true})
	if err != nil {
		return ConflictCheck{}, fmt.Errorf("itsm: start conflict check of %s: %w", sysID, err)
	}
	worker, err := workerID(resp.body)
	if err != nil {
		return ConflictCheck{}, fmt.Errorf("itsm: start conflict check of %s: %w", sysID, err)
	}
	return ConflictCheck{Worker: worker, Started: started}, nil
}

// workerID reads the worker's sys_id from the POST answer: documented as
// {"result": "<sys_id>"}; {"result": {"worker": {"sysId": ...}}} and a
// one-element array are accepted too.
func workerID(body []byte) (string, error) {
	var env struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return "", fmt.Errorf("decode the answer: %w", err)
	}
	raw := env.Result
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil && len(list) > 0 {
		raw = list[0]
	}
	var id string
	if json.Unmarshal(raw, &id) != nil {
		var obj struct {
			Worker struct {
				SysID  Value `json:"sysId"`
				SysID2 Value `json:"sys_id"`
			} `json:"worker"`
			SysID Value `json:"sys_id"`
		}
		_ = json.Unmarshal(raw, &obj)
		id = firstNonEmpty(obj.Worker.SysID.Value, obj.Worker.SysID2.Value, obj.SysID.Value)
	}
	if !isSysID(id) {
		return "", fmt.Errorf("no worker sys_id in the answer (%s)", excerpt(body))
	}
	return id, nil
}

// PollConflictCheck waits up to wait for the check's worker to complete,
// then reads the results. A check still running when wait is up (or whose
// results are older than its start) comes back as ConflictRunning with no
// error: poll it again later with the same ConflictCheck.
func (c *Client) PollConflictCheck(ctx context.Context, sysID string, chk ConflictCheck, wait time.Duration) (*ConflictResult, error) {
	path, err := conflictPath(sysID)
	if err != nil {
		return nil, err
	}
	if !isSysID(chk.Worker) {
		return nil, fmt.Errorf("itsm: poll conflict check of %s: worker %q is not a sys_id", sysID, chk.Worker)
	}
	deadline := c.now().Add(wait)
	interval := conflictPollMin
	for {
		state, msg, err := c.workerState(ctx, chk.Worker)
		switch {
		case errors.Is(err, ErrNotFound):
			return &ConflictResult{State: ConflictFailed, Check: chk, Message: "the worker is gone"}, nil
		case err != nil:
			return nil, fmt.Errorf("itsm: poll conflict check of %s: %w", sysID, err)
		case state == workerFailed:
			return &ConflictResult{State: ConflictFailed, Check: chk, Message: firstNonEmpty(msg, "the worker ended in error")}, nil
		case state == workerComplete:
			recs, _, err := c.getRecords(ctx, path, nil)
			if err != nil {
				return nil, fmt.Errorf("itsm: read conflict check of %s: %w", sysID, err)
			}
			if len(recs) > 0 {
				res, err := conflictFromRecord(recs[0])
				if err != nil {
					return nil, fmt.Errorf("itsm: read conflict check of %s: %w", sysID, err)
				}
				res.Check = chk
				// last_run has a one-second resolution and our view of the
				// instance's clock may lag by one more.
				if !res.LastRun.IsZero() && !res.LastRun.Before(chk.Started.Add(-time.Second)) {
					return res, nil
				}
			}
		}
		if !c.now().Add(interval).Before(deadline) {
			return &ConflictResult{State: ConflictRunning, Check: chk}, nil
		}
		if err := c.sleep(ctx, interval); err != nil {
			return nil, fmt.Errorf("itsm: poll conflict check of %s: %w", sysID, err)
		}
		interval = min(2*interval, conflictPollMax)
	}
}

// CheckConflicts starts a conflict check and waits (up to a minute) for its
// results.
func (c *Client) CheckConflicts(ctx context.Context, sysID string) (*ConflictResult, error) {
	chk, err := c.StartConflictCheck(ctx, sysID)
	if err != nil {
		return nil, err
	}
	res, err := c.PollConflictCheck(ctx, sysID, chk, conflictWait)
	switch {
	case err != nil:
		return nil, err
	case res.State == ConflictRunning:
		return nil, fmt.Errorf("itsm: conflict check of %s (worker %s) still running after %s", sysID, chk.Worker, conflictWait)
	case res.State == ConflictFailed:
		return nil, fmt.Errorf("itsm: conflict check of %s (worker %s) failed: %s", sysID, chk.Worker, res.Message)
	}
	return res, nil
}

type workerStatus int

const (
	workerRunning workerStatus = iota
	workerComplete
	workerFailed
)

// workerMessages are a worker's messages{errorMessages, warningMessages,
// infoMessages}.
type workerMessages struct {
	Errors   []string `json:"errorMessages"`
	Warnings []string `json:"warningMessages"`
	Info     []string `json:"infoMessages"`
}

// all joins every message, errors first.
func (m workerMessages) all() string {
	return strings.Join(append(append(append([]string(nil), m.Errors...), m.Warnings...), m.Info...), "; ")
}

// workerState reads GET /change/worker/{id}: state {value, display_value}
// is Complete (3 in the docs' example), Error, or something still going
// (Waiting, In-Progress). The message is the worker's error messages.
func (c *Client) workerState(ctx context.Context, worker string) (workerStatus, string, error) {
	st, m, err := c.workerReport(ctx, worker)
	return st, strings.Join(m.Errors, "; "), err
}

// workerReport is workerState with all of the worker's messages.
func (c *Client) workerReport(ctx context.Context, worker string) (workerStatus, workerMessages, error) {
	var m workerMessages
	recs, _, err := c.getRecords(ctx, "/api/sn_chg_rest/change/worker/"+url.PathEscape(worker), nil)
	if err != nil {
		return workerRunning, m, err
	}
	if len(recs) == 0 {
		return workerRunning, m, nil
	}
	r := recs[0]
	label := strings.ToLower(r.Display("state"))
	if raw := r.Get("messages"); strings.HasPrefix(raw, "{") {
		_ = json.Unmarshal([]byte(raw), &m)
	}
	switch {
	case label == "complete" || label == "completed" || label == "" && r.Get("state") == "3":
		return workerComplete, m, nil
	case strings.Contains(label, "error") || strings.Contains(label, "fail") || strings.Contains(label, "cancel"):
		return workerFailed, m, nil
	}
	return workerRunning, m, nil
}

// conflictFromRecord decodes the results of a completed check. The list of
// conflicts decides the state; status and job_status are kept as sent.
func conflictFromRecord(r Record) (*ConflictResult, error) {
	res := &ConflictResult{
		Status:    r.Display("status"),
		JobStatus: r.Get("job_status"),
		LastRun:   r.Time("last_run"),
		State:     ConflictNone,
	}
	res.RecordCount, _ = r.Int("record_count")
	if raw := r.Get("conflicts"); strings.HasPrefix(raw, "[") {
		var items []Record
		if err := json.Unmarshal([]byte(raw), &items); err != nil {
			return nil, fmt.Errorf("decode conflicts: %w", err)
		}
		for _, it := range items {
			res.Conflicts = append(res.Conflicts, Conflict{
				Change: it.Get("change"), ChangeNumber: it["change"].Display,
				Type: it.Get("type"), TypeLabel: it.Display("type"),
				CI: it.Get("ci"), CIName: it["ci"].Display,
				Conflicting: it.Get("conflicting_change"), ConflictingNumber: it["conflicting_change"].Display,
				Schedule: firstNonEmpty(it["schedule"].Display, it.Get("schedule")),
			})
		}
	}
	if len(res.Conflicts) > 0 {
		res.State = ConflictFound
	}
	return res, nil
}

// decodeConflictStatus reads a change's conflict_status into ops' typed
// value. The documented values are "Not Run", "Conflict" and "No
// Conflict" (SERVICENOW.md §4.1, the last unverified): they are matched
// whatever their case and separators; anything else is kept as sent, and
// an absent field stays empty.
func decodeConflictStatus(raw string) ops.ConflictStatus {
	norm := strings.Join(strings.FieldsFunc(strings.ToLower(raw), func(r rune) bool { return r == ' ' || r == '_' || r == '-' }), " ")
	switch norm {
	case "conflict":
		return ops.ConflictStatusConflict
	case "no conflict":
		return ops.ConflictStatusNone
	case "not run":
		return ops.ConflictStatusNotRun
	}
	return ops.ConflictStatus(raw)
}
