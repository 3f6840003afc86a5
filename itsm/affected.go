package itsm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Affected CIs are the change's rows in task_ci (task, ci_item): the
// "Affected CIs" related list, beside the one primary CI in
// change_request.cmdb_ci. The Change Management API associates them with
// POST /change/{id}/ci {"association_type":"affected","cmdb_ci_sys_ids":
// "id1,id2"}, which is asynchronous: it answers 202 with a worker, and the
// rows exist once GET /change/worker/{id} says Complete. Releases whose
// API lacks the endpoint get task_ci rows through the Table API.
const (
	// TableTaskCI is the affected CIs table.
	TableTaskCI = "task_ci"
	// affectedWait bounds how long AddAffectedCIs waits for the worker.
	affectedWait = time.Minute
)

// AffectedCI is a configuration item associated with a change as affected.
type AffectedCI struct {
	SysID string
	// Name is the CI's display value ("" when the instance sent none).
	Name string
}

func ciPath(changeSysID string) string {
	return "/api/sn_chg_rest/change/" + url.PathEscape(changeSysID) + "/ci"
}

// useCIEndpoint says whether to try /change/{id}/ci (not known absent).
func (c *Client) useCIEndpoint() bool {
	return c.changeAPI.Load() != changeAPIAbsent && c.ciAPI.Load() != changeAPIAbsent
}

// ciEndpointMissing reports whether err says the instance does not serve
// /change/{id}/ci itself: 400 "Requested URI does not represent any
// resource" or a 404 that is not "No Record found" (the change). Any other
// refusal (an unknown change, a bad body) is an answer of the endpoint.
func (c *Client) ciEndpointMissing(err error) bool {
	var e *Error
	if !errors.As(err, &e) || e.HTML {
		return false
	}
	text := strings.ToLower(e.Message + " " + e.Detail)
	missing := e.Status == http.StatusNotFound && !strings.Contains(text, "no record found") && !strings.Contains(text, "record doesn't exist") ||
		e.Status == http.StatusBadRequest && strings.Contains(text, "does not represent any resource")
	if missing {
		c.ciAPI.Store(changeAPIAbsent)
		c.log.Info("servicenow /change/{id}/ci not available; using the task_ci table", "status", e.Status)
	}
	return missing
}

// AddAffectedCIs associates every CI (sys_ids) with the change as
// affected. A CI already associated is not associated twice, so a retry is
// safe. Through the Change Management API it waits (up to a minute) for
// the association worker; either way it then lists the change's affected
// CIs, and any CI missing from the list is an error naming it (matching
// ErrNotFound when the instance said the CI does not exist).
func (c *Client) AddAffectedCIs(ctx context.Context, changeSysID string, ciSysIDs []string) error {
	if !isSysID(changeSysID) {
		return fmt.Errorf("itsm: add affected CIs: change %q is not a sys_id", changeSysID)
	}
	var want []string
	for _, id := range ciSysIDs {
		if !isSysID(id) {
			return fmt.Errorf("itsm: add affected CIs to change %s: CI %q is not a sys_id", changeSysID, id)
		}
		if id = strings.ToLower(id); !slices.Contains(want, id) {
			want = append(want, id)
		}
	}
	if len(want) == 0 {
		return nil
	}
	var said workerMessages
	viaAPI := false
	if c.useCIEndpoint() {
		m, err := c.associateCIs(ctx, changeSysID, want)
		switch {
		case err == nil:
			said, viaAPI = m, true
		case !c.ciEndpointMissing(err):
			return fmt.Errorf("itsm: add affected CIs to change %s: %w", changeSysID, err)
		}
	}
	if !viaAPI {
		if err := c.insertTaskCIs(ctx, changeSysID, want); err != nil {
			return fmt.Errorf("itsm: add affected CIs to change %s: %w", changeSysID, err)
		}
	}
	have, err := c.AffectedCIs(ctx, changeSysID)
	if err != nil {
		return fmt.Errorf("itsm: add affected CIs to change %s: verify: %w", changeSysID, err)
	}
	var missing []string
	for _, id := range want {
		if !slices.ContainsFunc(have, func(a AffectedCI) bool { return strings.EqualFold(a.SysID, id) }) {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	msgs, list := said.all(), strings.Join(missing, ", ")
	detail := ""
	if msgs != "" {
		detail = " (the instance said: " + msgs + ")"
	}
	// The instance names an unknown CI (documented: "Invalid CMDB_CI
	// sys_id provided"): that is a refusal, not a passing failure.
	if lower := strings.ToLower(msgs); strings.Contains(lower, "invalid") && slices.ContainsFunc(missing, func(id string) bool { return strings.Contains(lower, id) }) {
		return fmt.Errorf("itsm: add affected CIs to change %s: %w: no CI with sys_id %s%s", changeSysID, ErrNotFound, list, detail)
	}
	return fmt.Errorf("itsm: add affected CIs to change %s: not associated afterwards: %s%s", changeSysID, list, detail)
}

// associateCIs posts the association and waits for its worker; it returns
// the worker's messages. The POST is idempotent (an associated CI is not
// associated again), so it may be retried.
func (c *Client) associateCIs(ctx context.Context, changeSysID string, ids []string) (workerMessages, error) {
	body := []byte(`{"association_type":"affected","cmdb_ci_sys_ids":"` + strings.Join(ids, ",") + `","refresh_impacted_services":false}`)
	resp, err := c.do(ctx, request{method: http.MethodPost, path: ciPath(changeSysID), body: body, idempotent: true})
	if err != nil {
		return workerMessages{}, err
	}
	c.ciAPI.Store(changeAPIPresent)
	worker, err := workerID(resp.body)
	if err != nil {
		return workerMessages{}, err
	}
	deadline := c.now().Add(affectedWait)
	interval := conflictPollMin
	for {
		st, m, err := c.workerReport(ctx, worker)
		switch {
		case err != nil:
			return m, fmt.Errorf("association worker %s: %w", worker, err)
		case st != workerRunning:
			// Complete or Error: the list decides, with the messages to
			// say why a CI is missing.
			return m, nil
		}
		if !c.now().Add(interval).Before(deadline) {
			return m, fmt.Errorf("association worker %s still running after %s", worker, affectedWait)
		}
		if err := c.sleep(ctx, interval); err != nil {
			return m, err
		}
		interval = min(2*interval, conflictPollMax)
	}
}

// insertTaskCIs is the Table API path: the change and the CIs must exist
// (a Table API insert does not check references), and only the CIs not yet
// associated are inserted.
func (c *Client) insertTaskCIs(ctx context.Context, changeSysID string, ids []string) error {
	if _, _, err := c.getOne(ctx, TableChangeRequest, changeSysID, []string{"sys_id"}); err != nil {
		return fmt.Errorf("change: %w", err)
	}
	recs, _, err := c.listTable(ctx, "cmdb_ci", c.listParams("sys_idIN"+strings.Join(ids, ","), []string{"sys_id"}, len(ids)))
	if err != nil {
		return fmt.Errorf("look up the CIs: %w", err)
	}
	var unknown []string
	for _, id := range ids {
		if !slices.ContainsFunc(recs, func(r Record) bool { return strings.EqualFold(r.Get("sys_id"), id) }) {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("%w: no CI with sys_id %s", ErrNotFound, strings.Join(unknown, ", "))
	}
	have, err := c.taskCIs(ctx, changeSysID)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if slices.ContainsFunc(have, func(a AffectedCI) bool { return strings.EqualFold(a.SysID, id) }) {
			continue
		}
		if _, _, err := c.write(ctx, http.MethodPost, tablePath(TableTaskCI), nil, map[string]string{"task": changeSysID, "ci_item": id}, false); err != nil {
			return fmt.Errorf("insert task_ci for CI %s: %w", id, err)
		}
	}
	return nil
}

// AffectedCIs lists the CIs associated with the change as affected (each
// once), through GET /change/{id}/ci?association_type=affected or, on
// releases without it, the task_ci table. An unknown change is ErrNotFound.
func (c *Client) AffectedCIs(ctx context.Context, changeSysID string) ([]AffectedCI, error) {
	if !isSysID(changeSysID) {
		return nil, fmt.Errorf("itsm: affected CIs: change %q is not a sys_id", changeSysID)
	}
	if c.useCIEndpoint() {
		out, err := c.pageAffected(ctx, ciPath(changeSysID), url.Values{"association_type": {"affected"}}, func(r Record) AffectedCI {
			return AffectedCI{SysID: r.Get("ci_item"), Name: r["ci_item"].Display}
		})
		switch {
		case err == nil:
			c.ciAPI.Store(changeAPIPresent)
			return out, nil
		case !c.ciEndpointMissing(err):
			return nil, fmt.Errorf("itsm: affected CIs of change %s: %w", changeSysID, err)
		}
	}
	if _, _, err := c.getOne(ctx, TableChangeRequest, changeSysID, []string{"sys_id"}); err != nil {
		return nil, fmt.Errorf("itsm: affected CIs of change %s: %w", changeSysID, err)
	}
	out, err := c.taskCIs(ctx, changeSysID)
	if err != nil {
		return nil, fmt.Errorf("itsm: affected CIs of change %s: %w", changeSysID, err)
	}
	return out, nil
}

// taskCIs lists the change's task_ci rows through the Table API.
func (c *Client) taskCIs(ctx context.Context, changeSysID string) ([]AffectedCI, error) {
	q := c.listParams("task="+changeSysID+"^ORDERBYsys_created_on", []string{"sys_id", "ci_item"}, 0)
	q.Set("sysparm_display_value", "all")
	return c.pageAffected(ctx, tablePath(TableTaskCI), q, func(r Record) AffectedCI {
		return AffectedCI{SysID: r.Get("ci_item"), Name: r["ci_item"].Display}
	})
}

// pageAffected reads every page of a list (sysparm_offset) and keeps each
// CI once, in the order listed.
func (c *Client) pageAffected(ctx context.Context, path string, q url.Values, conv func(Record) AffectedCI) ([]AffectedCI, error) {
	// 500 is the documented default (and so a safe page) of /change/{id}/ci.
	limit := min(c.cfg.PageSize, 500)
	if limit <= 0 {
		limit = 500
	}
	q.Set("sysparm_limit", strconv.Itoa(limit))
	out := []AffectedCI{}
	for offset := 0; ; offset += limit {
		q.Set("sysparm_offset", strconv.Itoa(offset))
		recs, _, err := c.getRecords(ctx, path, q)
		if err != nil {
			if errors.Is(err, ErrNotFound) && strings.HasPrefix(path, "/api/now/") {
				break // the v1 Table API answers an empty page with 404
			}
			return nil, err
		}
		for _, r := range recs {
			if a := conv(r); a.SysID != "" && !slices.ContainsFunc(out, func(b AffectedCI) bool { return strings.EqualFold(b.SysID, a.SysID) }) {
				out = append(out, a)
			}
		}
		if len(recs) < limit {
			break
		}
	}
	return out, nil
}
