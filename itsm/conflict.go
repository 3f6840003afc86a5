package itsm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Conflict polling bounds: the check runs as a worker on the instance.
const (
	conflictPollInterval = 2 * time.Second
	conflictMaxPolls     = 30
)

// ConflictResult is the outcome of a conflict check
// (GET /api/sn_chg_rest/change/{id}/conflict).
type ConflictResult struct {
	// Status is "Conflict", "No Conflict" or "Not Run". ServiceNow may say
	// "Conflict" with an empty list; Conflicts is the authority.
	Status      string
	JobStatus   string
	LastRun     time.Time
	RecordCount int
	Conflicts   []Conflict
	Fields      Record
}

// Conflict is one detected conflict.
type Conflict struct {
	// Change is the conflicting change's sys_id, ChangeNumber its number.
	Change       string
	ChangeNumber string
	// Type is the conflict type value (e.g. not_in_maintenance_window,
	// blackout, already_scheduled); TypeLabel its display value.
	Type      string
	TypeLabel string
	CI        string
	CIName    string
	// Conflicting is the other change (sys_id and number) for an
	// "already scheduled" conflict; Schedule names the blackout schedule.
	Conflicting       string
	ConflictingNumber string
	Schedule          string
	Fields            Record
}

// CheckConflicts starts a conflict check on the change and polls its result
// (every 2s, at most 30 times, through the sleep seam). It needs the Change
// Management API.
func (c *Client) CheckConflicts(ctx context.Context, sysID string) (*ConflictResult, error) {
	if !isSysID(sysID) {
		return nil, fmt.Errorf("itsm: check conflicts: %q is not a sys_id", sysID)
	}
	path := "/api/sn_chg_rest/change/" + url.PathEscape(sysID) + "/conflict"
	// Starting a check twice is harmless: idempotent for retries.
	if _, err := c.do(ctx, request{method: http.MethodPost, path: path, body: []byte("{}"), idempotent: true}); err != nil {
		return nil, fmt.Errorf("itsm: check conflicts of %s: %w", sysID, err)
	}
	for poll := 0; ; poll++ {
		recs, _, err := c.getRecords(ctx, path, nil)
		if err != nil {
			return nil, fmt.Errorf("itsm: check conflicts of %s: %w", sysID, err)
		}
		if len(recs) > 0 {
			res, done, err := conflictFromRecord(recs[0])
			if err != nil {
				return nil, fmt.Errorf("itsm: check conflicts of %s: %w", sysID, err)
			}
			if done {
				return res, nil
			}
		}
		if poll+1 >= conflictMaxPolls {
			return nil, fmt.Errorf("itsm: check conflicts of %s: still running after %d polls", sysID, conflictMaxPolls)
		}
		if err := c.sleep(ctx, conflictPollInterval); err != nil {
			return nil, fmt.Errorf("itsm: check conflicts of %s: %w", sysID, err)
		}
	}
}

// conflictFromRecord decodes the conflict result; done is false while the
// worker still runs.
func conflictFromRecord(r Record) (*ConflictResult, bool, error) {
	res := &ConflictResult{
		Status:    r.Display("status"),
		JobStatus: r.Display("job_status"),
		LastRun:   r.Time("last_run"),
		Fields:    r,
	}
	res.RecordCount, _ = r.Int("record_count")
	js := strings.ToLower(r.Get("job_status") + " " + r.Display("job_status"))
	switch {
	case strings.Contains(js, "error") || strings.Contains(js, "fail"):
		return nil, false, fmt.Errorf("conflict worker failed: %s", res.JobStatus)
	case strings.Contains(js, "progress") || strings.Contains(js, "wait") || strings.Contains(js, "run") ||
		strings.Contains(js, "queued") || strings.Contains(js, "pending"):
		return res, false, nil
	}
	if raw := r.Get("conflicts"); strings.HasPrefix(raw, "[") {
		var items []Record
		if err := json.Unmarshal([]byte(raw), &items); err != nil {
			return nil, false, fmt.Errorf("decode conflicts: %w", err)
		}
		for _, it := range items {
			res.Conflicts = append(res.Conflicts, Conflict{
				Change: it.Get("change"), ChangeNumber: it["change"].Display,
				Type: it.Get("type"), TypeLabel: it.Display("type"),
				CI: it.Get("ci"), CIName: it["ci"].Display,
				Conflicting: it.Get("conflicting_change"), ConflictingNumber: it["conflicting_change"].Display,
				Schedule: firstNonEmpty(it["schedule"].Display, it.Get("schedule")), Fields: it,
			})
		}
	}
	return res, true, nil
}
