package itsm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Table names used by the client.
const (
	TableChangeRequest = "change_request"
	TableApprover      = "sysapproval_approver"
	TableIncident      = "incident"
	TableAuditDelete   = "sys_audit_delete"
	TableJournal       = "sys_journal_field"
)

func tablePath(table string) string { return "/api/now/table/" + url.PathEscape(table) }

func recordPath(table, sysID string) string {
	return tablePath(table) + "/" + url.PathEscape(sysID)
}

// isSysID reports whether s looks like a sys_id (32 hex digits), so inputs
// documented as "name or sys_id" need no lookup when they are ids.
func isSysID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F') {
			return false
		}
	}
	return true
}

// queryValue checks a value before it goes into an encoded query: a '^'
// would start a new condition and a newline has no defined meaning, so both
// are refused rather than silently changing the query.
func queryValue(field, v string) (string, error) {
	if strings.ContainsAny(v, "^\n\r") {
		return "", fmt.Errorf("itsm: %s %q cannot be used in a ServiceNow query (contains '^' or a newline)", field, v)
	}
	return v, nil
}

// listParams builds the common list parameters: value mode, plain reference
// values, explicit fields, a positive limit (ServiceNow rejects 0).
func (c *Client) listParams(query string, fields []string, limit int) url.Values {
	q := url.Values{}
	if query != "" {
		q.Set("sysparm_query", query)
	}
	if len(fields) > 0 {
		q.Set("sysparm_fields", strings.Join(fields, ","))
	}
	if limit <= 0 {
		limit = c.cfg.PageSize
	}
	if limit > maxPageSize {
		limit = maxPageSize
	}
	q.Set("sysparm_limit", strconv.Itoa(limit))
	q.Set("sysparm_display_value", "false")
	q.Set("sysparm_exclude_reference_link", "true")
	return q
}

// getRecords runs an idempotent GET and decodes the records of its result.
func (c *Client) getRecords(ctx context.Context, path string, q url.Values) ([]Record, []json.RawMessage, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: path, query: q, idempotent: true})
	if err != nil {
		return nil, nil, err
	}
	return decodeBody(resp)
}

// listTable lists records of a table. A 404 on a list is an empty result:
// the v1 Table API answers 404 instead of [] when nothing matches.
func (c *Client) listTable(ctx context.Context, table string, q url.Values) ([]Record, []json.RawMessage, error) {
	recs, raws, err := c.getRecords(ctx, tablePath(table), q)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, nil
	}
	return recs, raws, err
}

// getOne fetches a single record by sys_id.
func (c *Client) getOne(ctx context.Context, table, sysID string, fields []string) (Record, json.RawMessage, error) {
	q := url.Values{}
	if len(fields) > 0 {
		q.Set("sysparm_fields", strings.Join(fields, ","))
	}
	q.Set("sysparm_display_value", "false")
	q.Set("sysparm_exclude_reference_link", "true")
	recs, raws, err := c.getRecords(ctx, recordPath(table, sysID), q)
	if err != nil {
		return nil, nil, err
	}
	if len(recs) == 0 {
		return nil, nil, &Error{
			Status: http.StatusNotFound, Method: http.MethodGet, Path: recordPath(table, sysID),
			Message: "No Record found", Detail: "empty result",
		}
	}
	return recs[0], raws[0], nil
}

// write sends a JSON body with POST or PATCH and decodes the single record
// that comes back (object or one-element array).
func (c *Client) write(ctx context.Context, method, path string, q url.Values, body any, idempotent bool) (Record, json.RawMessage, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, nil, fmt.Errorf("itsm: encode body: %w", err)
	}
	if q == nil {
		q = url.Values{}
	}
	if strings.HasPrefix(path, "/api/now/table/") {
		q.Set("sysparm_display_value", "false")
		q.Set("sysparm_exclude_reference_link", "true")
	}
	resp, err := c.do(ctx, request{method: method, path: path, query: q, body: b, idempotent: idempotent})
	if err != nil {
		return nil, nil, err
	}
	recs, raws, err := decodeBody(resp)
	if err != nil {
		return nil, nil, err
	}
	if len(recs) == 0 {
		// X-no-response-body or an empty result: the write happened but we
		// have no record to return.
		return Record{}, nil, nil
	}
	return recs[0], raws[0], nil
}

func decodeBody(resp *response) ([]Record, []json.RawMessage, error) {
	if resp.status == http.StatusNoContent {
		return nil, nil, nil
	}
	return decodeBodyBytes(resp.body)
}

// decodeBodyBytes is decodeBody of a body already fetched: an empty body
// holds no records.
func decodeBodyBytes(body []byte) ([]Record, []json.RawMessage, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil, nil
	}
	return DecodeRecords(body)
}
