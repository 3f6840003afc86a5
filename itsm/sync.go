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
	"time"
)

// Watermark is a keyset position in a table ordered by (timestamp, sys_id):
// every row ordered at or before (UpdatedOn, SysID) has been delivered. An
// empty SysID means no row of the second UpdatedOn has been delivered yet
// (the position at the start of a second, as after a completed run).
type Watermark struct {
	UpdatedOn time.Time
	SysID     string
}

// ErrPagingIgnored matches a page that an instance answered against the
// paging contract: more rows than sysparm_limit, or a keyset page that
// does not move the cursor forward (the query condition was ignored).
var ErrPagingIgnored = errors.New("itsm: instance ignored the paging condition")

// after reports whether w is strictly after o in (UpdatedOn, SysID) order.
func (w Watermark) after(o Watermark) bool {
	if !w.UpdatedOn.Equal(o.UpdatedOn) {
		return w.UpdatedOn.After(o.UpdatedOn)
	}
	return w.SysID > o.SysID
}

// String renders the cursor as (sys_updated_on, sys_id) for errors.
func (w Watermark) String() string {
	id := w.SysID
	if id == "" {
		id = "start of second"
	}
	return fmt.Sprintf("(%s, %s)", FormatTime(w.UpdatedOn), id)
}

// SyncRequest configures one mirror run over a table.
type SyncRequest struct {
	// Since is where the previous run (or the interrupted one) stopped. Zero
	// means "from the beginning".
	Since Watermark
	// Until is the frozen upper bound (exclusive) of this run. Zero means
	// the instance's clock (from the Date header) minus Skew, truncated to the
	// second, so rows being written during the run are left to the next one.
	Until time.Time
	// Skew is subtracted from the instance clock for Until (default 10s).
	Skew time.Duration
	// Query is an extra encoded query ANDed to every page, e.g.
	// "correlation_idSTARTSWITHdaytwo:". It must not contain ^NQ or ORDERBY.
	Query string
	// Fields to fetch (sysparm_fields); sys_id and the timestamp field are
	// always added. Empty means every field.
	Fields []string
	// PageSize overrides the client's page size.
	PageSize int
	// NoFields decodes SyncChanges' pages straight into Changes, with
	// Fields nil (Raw keeps every field): the mirror's path, without a
	// map per row.
	NoFields bool
}

// SyncStats reports a run.
type SyncStats struct {
	Requests int
	Pages    int
	Rows     int
	// Until is the frozen upper bound used.
	Until time.Time
	// Cursor is where the next run starts: after a complete run it is
	// {Until, ""}; after an error, the position after the last page fn
	// accepted.
	Cursor Watermark
}

const defaultSyncSkew = 10 * time.Second

// SyncTable pages through the rows of table changed since req.Since and
// before the frozen upper bound, in (sys_updated_on, sys_id) order, with
// keyset queries only (SERVICENOW.md §9): it first finishes the boundary
// second (sys_updated_on=u^sys_id>id^ORDERBYsys_id), then moves on
// (sys_updated_on>u^sys_updated_on<T^ORDERBYsys_updated_on^ORDERBYsys_id).
// Offsets are never used, so rows updated during the run cannot shift
// unchanged rows out of view, and many rows sharing one second are neither
// skipped nor re-sent forever.
//
// fn receives each page and the watermark after it; persisting that
// watermark with the page makes an interrupted run resumable. If fn returns
// an error the run stops with it.
//
// Pages are asked for with sysparm_no_count=true: counting the remaining
// matches of every page made the instance scan the rest of the window each
// time (the cost grew with the table, not the page). X-Total-Count is
// therefore never consulted here (an instance may still send it, or send
// 0). A run stops on an empty forward page, so an idle cycle costs exactly
// one request, and a delta smaller than a page costs three (the page, the
// rest of its last second, the empty page after it). A page shorter than
// the limit does not end the run nor its second: ServiceNow applies
// sysparm_limit before ACLs (trap 7), so only an empty answer is an end.
// Pages that do not advance the cursor, or hold more rows than the limit,
// stop the run with ErrPagingIgnored.
func (c *Client) SyncTable(ctx context.Context, table string, req SyncRequest, fn func(page []Record, cursor Watermark) error) (SyncStats, error) {
	return c.keyset(ctx, table, "sys_updated_on", req, &recordPage{fn: func(recs []Record, _ []json.RawMessage, cur Watermark) error {
		return fn(recs, cur)
	}})
}

// SyncChanges is SyncTable on change_request, decoding pages into Changes.
// With no req.Fields it fetches ChangeFields().
func (c *Client) SyncChanges(ctx context.Context, req SyncRequest, fn func(page []Change, cursor Watermark) error) (SyncStats, error) {
	if len(req.Fields) == 0 {
		req.Fields = changeFields
	}
	if req.NoFields {
		return c.keyset(ctx, TableChangeRequest, "sys_updated_on", req, &changePage{fn: fn})
	}
	return c.keyset(ctx, TableChangeRequest, "sys_updated_on", req, &recordPage{fn: func(recs []Record, raws []json.RawMessage, cur Watermark) error {
		page := make([]Change, len(recs))
		for i, r := range recs {
			page[i] = ChangeFromRecord(r, raws[i])
		}
		return fn(page, cur)
	}})
}

// keysetPage is one page of keyset: decoded from the body, then handed to
// the caller with the cursor after it.
type keysetPage interface {
	// decode decodes body and returns its rows, the last row's ts and
	// sys_id (ok false when unusable).
	decode(body []byte, ts string) (n int, last Watermark, ok bool, err error)
	deliver(cur Watermark) error
}

// recordPage decodes into records.
type recordPage struct {
	fn   func([]Record, []json.RawMessage, Watermark) error
	recs []Record
	raws []json.RawMessage
}

func (p *recordPage) decode(body []byte, ts string) (int, Watermark, bool, error) {
	var err error
	if p.recs, p.raws, err = decodeBodyBytes(body); err != nil || len(p.recs) == 0 {
		return 0, Watermark{}, false, err
	}
	last := p.recs[len(p.recs)-1]
	t, terr := last[ts].Time()
	return len(p.recs), Watermark{UpdatedOn: t, SysID: last.Get("sys_id")}, terr == nil && !t.IsZero() && last.Get("sys_id") != "", nil
}

func (p *recordPage) deliver(cur Watermark) error { return p.fn(p.recs, p.raws, cur) }

// changePage decodes change_request rows straight into Changes
// (DecodeChanges: no field map per row). Its ts is sys_updated_on.
type changePage struct {
	fn   func([]Change, Watermark) error
	page []Change
}

func (p *changePage) decode(body []byte, _ string) (int, Watermark, bool, error) {
	var err error
	if len(bytes.TrimSpace(body)) == 0 {
		p.page = nil
		return 0, Watermark{}, false, nil
	}
	if p.page, err = DecodeChanges(body); err != nil || len(p.page) == 0 {
		return 0, Watermark{}, false, err
	}
	last := p.page[len(p.page)-1]
	return len(p.page), Watermark{UpdatedOn: last.SysUpdatedOn, SysID: last.SysID}, !last.SysUpdatedOn.IsZero() && last.SysID != "", nil
}

func (p *changePage) deliver(cur Watermark) error { return p.fn(p.page, cur) }

func checkExtraQuery(q string) error {
	u := strings.ToUpper(q)
	if strings.Contains(u, "^NQ") || strings.Contains(u, "ORDERBY") {
		return fmt.Errorf("itsm: sync query %q must not contain ^NQ or ORDERBY", q)
	}
	return nil
}

func andQuery(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p = strings.Trim(p, "^"); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "^")
}

// keyset is the pager behind SyncTable, SyncChanges and ListDeletes; ts is
// the timestamp column (sys_updated_on, or sys_created_on for
// append-only tables).
func (c *Client) keyset(ctx context.Context, table, ts string, req SyncRequest, page keysetPage) (SyncStats, error) {
	var st SyncStats
	if err := checkExtraQuery(req.Query); err != nil {
		return st, err
	}
	if _, err := queryValue("sys_id", req.Since.SysID); err != nil {
		return st, err
	}
	until := req.Until
	if until.IsZero() {
		skew := req.Skew
		if skew <= 0 {
			skew = defaultSyncSkew
		}
		until = c.serverNow().Add(-skew)
	}
	until = until.UTC().Truncate(time.Second)
	st.Until = until
	limit := req.PageSize
	if limit <= 0 {
		limit = c.cfg.PageSize
	}
	fields := req.Fields
	if len(fields) > 0 {
		fields = withFields(fields, "sys_id", ts)
	}

	cur := req.Since
	cur.UpdatedOn = cur.UpdatedOn.UTC().Truncate(time.Second)
	st.Cursor = cur
	boundary := cur.SysID != "" && !cur.UpdatedOn.IsZero()
	inclusive := cur.SysID == "" // no row of second u delivered yet
	for {
		var q string
		if boundary {
			q = andQuery(req.Query, ts+"="+FormatTime(cur.UpdatedOn), "sys_id>"+cur.SysID, "ORDERBYsys_id")
		} else {
			lower := ""
			if !cur.UpdatedOn.IsZero() {
				op := ">"
				if inclusive {
					op = ">="
				}
				lower = ts + op + FormatTime(cur.UpdatedOn)
			}
			q = andQuery(req.Query, lower, ts+"<"+FormatTime(until), "ORDERBY"+ts, "ORDERBYsys_id")
		}
		params := c.listParams(q, fields, limit)
		params.Set("sysparm_suppress_pagination_header", "true")
		params.Set("sysparm_no_count", "true")
		body, err := c.fetchPage(ctx, table, params)
		st.Requests++
		if err != nil {
			return st, fmt.Errorf("itsm: sync %s: %w", table, err)
		}
		n, next, usable, err := page.decode(body, ts)
		if err != nil {
			return st, fmt.Errorf("itsm: sync %s: %w", table, err)
		}
		if n > limit {
			return st, fmt.Errorf("itsm: sync %s: itsm: list %s: the instance answered %d rows for sysparm_limit=%d; refusing the page: %w",
				table, table, n, limit, ErrPagingIgnored)
		}
		if n == 0 {
			if boundary {
				boundary, inclusive = false, false
				continue
			}
			break
		}
		if !usable {
			return st, fmt.Errorf("itsm: sync %s: row %q has no usable %s/sys_id (does the sync user read every field?)",
				table, next.SysID, ts)
		}
		if !next.after(cur) {
			return st, fmt.Errorf("itsm: sync %s: the page after cursor %s ends at %s, which does not advance the cursor: "+
				"the instance ignored the paging condition; stopping instead of fetching the same rows forever: %w",
				table, cur, next, ErrPagingIgnored)
		}
		if err := page.deliver(next); err != nil {
			return st, err
		}
		st.Pages++
		st.Rows += n
		st.Cursor = next
		cur = next
		// Finish this page's last second (sys_id > the last row's) before
		// moving on, whether the page was full or short.
		boundary = true
	}
	if until.After(req.Since.UpdatedOn) {
		st.Cursor = Watermark{UpdatedOn: until}
	}
	return st, nil
}

// listPageInto fetches one page of a list into sink: its rows, the last
// one's sys_id, and X-Total-Count (-1 when absent). A page holding more
// rows than sysparm_limit is refused.
func (c *Client) listPageInto(ctx context.Context, table string, q url.Values, sink listSink) (n int, last string, total int, err error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: tablePath(table), query: q, idempotent: true})
	if errors.Is(err, ErrNotFound) {
		return 0, "", 0, nil // v1 endpoint: 404 means no rows
	}
	if err != nil {
		return 0, "", 0, err
	}
	if resp.status != http.StatusNoContent {
		if n, last, err = sink.add(resp.body); err != nil {
			return 0, "", 0, err
		}
	}
	if limit, err := strconv.Atoi(q.Get("sysparm_limit")); err == nil && limit > 0 && n > limit {
		return 0, "", 0, fmt.Errorf("itsm: list %s: the instance answered %d rows for sysparm_limit=%d; refusing the page: %w",
			table, n, limit, ErrPagingIgnored)
	}
	total = -1
	if v := resp.header.Get("X-Total-Count"); v != "" {
		if t, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && t >= 0 {
			total = t
		}
	}
	return n, last, total, nil
}

// fetchPage fetches one page's body for keyset (nil for no rows: an empty
// or 204 answer, or the v1 endpoint's 404).
func (c *Client) fetchPage(ctx context.Context, table string, q url.Values) ([]byte, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: tablePath(table), query: q, idempotent: true})
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if resp.status == http.StatusNoContent {
		return nil, nil
	}
	return resp.body, nil
}

func withFields(fields []string, must ...string) []string {
	out := append([]string(nil), fields...)
	for _, m := range must {
		found := false
		for _, f := range out {
			if f == m {
				found = true
				break
			}
		}
		if !found {
			out = append(out, m)
		}
	}
	return out
}

// listAll pages a query by sys_id keyset (sys_id>last^ORDERBYsys_id) and
// returns every record. It stops on an empty page or when X-Total-Count
// shows nothing is left, so a result that fits in one page costs one request.
func (c *Client) listAll(ctx context.Context, table, query string, fields []string) ([]Record, error) {
	return c.listAllPaged(ctx, table, query, fields, 0)
}

// listAllPaged is listAll with a page size (0: the client's).
func (c *Client) listAllPaged(ctx context.Context, table, query string, fields []string, pageSize int) ([]Record, error) {
	var sink recordSink
	if err := c.listAllInto(ctx, table, query, fields, pageSize, &sink); err != nil {
		return nil, err
	}
	return sink.all, nil
}

// listSink takes listAllInto's pages: it decodes a body, keeps its rows,
// and returns how many there were and the last one's sys_id.
type listSink interface {
	add(body []byte) (n int, lastID string, err error)
}

// recordSink keeps the rows as records.
type recordSink struct{ all []Record }

func (s *recordSink) add(body []byte) (int, string, error) {
	recs, _, err := decodeBodyBytes(body)
	if err != nil || len(recs) == 0 {
		return 0, "", err
	}
	s.all = append(s.all, recs...)
	return len(recs), recs[len(recs)-1].Get("sys_id"), nil
}

// listAllInto is listAllPaged's pager, each page decoded by sink.
func (c *Client) listAllInto(ctx context.Context, table, query string, fields []string, pageSize int, sink listSink) error {
	last := ""
	for {
		q := query
		if last != "" {
			q = andQuery(query, "sys_id>"+last)
		}
		params := c.listParams(andQuery(q, "ORDERBYsys_id"), withFields(fields, "sys_id"), pageSize)
		params.Set("sysparm_suppress_pagination_header", "true")
		n, next, total, err := c.listPageInto(ctx, table, params, sink)
		if err != nil {
			return err
		}
		if n == 0 || (total >= 0 && n >= total) {
			return nil
		}
		if next == "" || next <= last {
			return fmt.Errorf("itsm: list %s: rows without increasing sys_id; cannot page", table)
		}
		last = next
	}
}

// DeletedRecord is a sys_audit_delete row: a record deleted on the instance.
type DeletedRecord struct {
	SysID        string
	Table        string
	DocumentKey  string // the deleted record's sys_id
	DisplayValue string
	CreatedOn    time.Time
}

// ListDeletes returns the deletions recorded in sys_audit_delete for table
// since the given time (inclusive; boundary rows may repeat across calls,
// which is harmless because deleting is idempotent). Pass the previous
// run's Until. An idle call costs one request. Whether a table records
// deletions there depends on the instance's audit settings.
func (c *Client) ListDeletes(ctx context.Context, table string, since time.Time) ([]DeletedRecord, error) {
	v, err := queryValue("table", table)
	if err != nil {
		return nil, err
	}
	var out []DeletedRecord
	req := SyncRequest{
		Since:  Watermark{UpdatedOn: since},
		Until:  c.serverNow().Add(time.Second),
		Query:  "tablename=" + v,
		Fields: []string{"sys_id", "tablename", "documentkey", "display_value", "sys_created_on"},
	}
	_, err = c.keyset(ctx, TableAuditDelete, "sys_created_on", req, &recordPage{fn: func(recs []Record, _ []json.RawMessage, _ Watermark) error {
		for _, r := range recs {
			if r.Get("tablename") != "" && r.Get("tablename") != table {
				continue // the tablename term was not applied
			}
			out = append(out, DeletedRecord{
				SysID: r.Get("sys_id"), Table: r.Get("tablename"),
				DocumentKey: r.Get("documentkey"), DisplayValue: r.Get("display_value"),
				CreatedOn: r.Time("sys_created_on"),
			})
		}
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("itsm: list deletes of %s: %w", table, err)
	}
	return out, nil
}
