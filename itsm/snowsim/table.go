package snowsim

import (
	"bytes"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// defaultTableLimit is the Table API's default sysparm_limit (§1.2).
const defaultTableLimit = 10000

// checkAccept enforces the Accept rules (§1.1): required; JSON only.
func checkAccept(r *http.Request) *apiError {
	acc := r.Header.Get("Accept")
	if strings.TrimSpace(acc) == "" {
		return newAPIError(http.StatusBadRequest, "Missing Accept header", "The Accept header is required; use application/json")
	}
	for _, part := range strings.Split(acc, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/json", "*/*", "application/*":
			return nil
		}
	}
	return newAPIError(http.StatusNotAcceptable, "Not Acceptable", "The simulator only produces application/json")
}

// checkContentType enforces Content-Type on calls with a body.
func checkContentType(r *http.Request) *apiError {
	ct := r.Header.Get("Content-Type")
	if strings.TrimSpace(ct) == "" {
		return newAPIError(http.StatusBadRequest, "Missing Content-Type header", "The Content-Type header is required on requests with a body; use application/json")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return newAPIError(http.StatusUnsupportedMediaType, "Unsupported Media Type", "The simulator only accepts application/json")
	}
	return nil
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func parseLimit(q url.Values, def int) (int, *apiError) {
	v := q.Get("sysparm_limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, newAPIError(http.StatusBadRequest, "Invalid value given for sysparm_limit", "sysparm_limit value must be a positive integer")
	}
	return n, nil
}

func parseOffset(q url.Values) (int, *apiError) {
	v := q.Get("sysparm_offset")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, newAPIError(http.StatusBadRequest, "Invalid value given for sysparm_offset", "sysparm_offset value must be a non-negative integer")
	}
	return n, nil
}

// renderOptions reads the display parameters. Callers hold s.mu.
func (s *Sim) renderOptions(r *http.Request, u *user) renderOpts {
	q := r.URL.Query()
	o := renderOpts{baseURL: baseURL(r), loc: s.userLocation(u)}
	switch strings.ToLower(q.Get("sysparm_display_value")) {
	case "true":
		o.mode = dvTrue
	case "all":
		o.mode = dvAll
	}
	o.excludeLink = strings.EqualFold(q.Get("sysparm_exclude_reference_link"), "true")
	if f := q.Get("sysparm_fields"); f != "" {
		o.fields = []string{}
		for _, name := range strings.Split(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				o.fields = append(o.fields, name)
			}
		}
		if len(o.fields) == 0 {
			o.fields = nil
		}
	}
	return o
}

// userLocation is the caller's time zone for display values.
func (s *Sim) userLocation(u *user) *time.Location {
	t := s.d.tables["sys_user"]
	r := t.byID[u.id]
	if r == nil {
		return time.UTC
	}
	tz := t.get(r, "time_zone")
	if tz == "" || tz == "UTC" || tz == "GMT" {
		return time.UTC
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return time.UTC
	}
	return loc
}

// buildQuery compiles sysparm_query plus name=value filters. Callers hold s.mu.
func (s *Sim) buildQuery(t *table, q url.Values, encoded string) *query {
	cq := s.d.compile(t, parseQuery(encoded), s.now())
	for k, vs := range q {
		if strings.HasPrefix(k, "sysparm_") || len(vs) == 0 {
			continue
		}
		f := t.sch.field(k)
		if f == nil || f.kind == kPassword || f.kind == kJournal {
			continue
		}
		v := vs[0]
		switch f.kind {
		case kChoice:
			if cv, ok := f.choiceByLabel(v); ok {
				v = cv
			}
		case kRef:
			if id, ok := s.d.lookupRef(f.ref, v); ok {
				v = id
			}
		}
		if c, ok := s.d.compileTerm(t, term{field: k, op: "=", value: v}, s.now()); ok {
			cq.and(c)
		}
	}
	return cq
}

// serveTable implements /api/now/[v1|v2/]table/{table}[/{sys_id}].
func (s *Sim) serveTable(w http.ResponseWriter, r *http.Request, u *user, version string, rest []string) string {
	if e := checkAccept(r); e != nil {
		writeAPIError(w, e)
		return ""
	}
	name, id := rest[0], ""
	if len(rest) == 2 {
		id = rest[1]
	}
	hasBody := r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch
	if hasBody {
		if e := checkContentType(r); e != nil {
			writeAPIError(w, e)
			return ""
		}
	}
	switch {
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && id == "":
		s.tableList(w, r, u, version, name)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		s.tableGet(w, r, u, name, id)
	case r.Method == http.MethodPost && id == "":
		return s.tableCreate(w, r, u, name)
	case (r.Method == http.MethodPatch || r.Method == http.MethodPut) && id != "":
		s.tableUpdate(w, r, u, name, id)
	case r.Method == http.MethodDelete && id != "":
		s.tableDelete(w, u, name, id)
	default:
		writeAPIError(w, errMethod())
	}
	return ""
}

func (s *Sim) tableList(w http.ResponseWriter, r *http.Request, u *user, version, name string) {
	q := r.URL.Query()
	limit, e := parseLimit(q, defaultTableLimit)
	if e == nil {
		_, e = parseOffset(q)
	}
	if e != nil {
		writeAPIError(w, e)
		return
	}
	offset, _ := parseOffset(q)
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := s.d.tables[name]
	if t == nil {
		writeAPIError(w, errInvalidTable(name))
		return
	}
	if !canRead(u) {
		writeAPIError(w, errReadACL())
		return
	}
	cq := s.buildQuery(t, q, q.Get("sysparm_query"))
	noCount := strings.EqualFold(q.Get("sysparm_no_count"), "true")
	rows, total := cq.selectFromTable(t, offset, limit, !noCount)
	if version == "v1" && len(rows) == 0 {
		writeAPIError(w, errNoRecord())
		return
	}
	o := s.renderOptions(r, u)
	h := w.Header()
	if !noCount {
		h.Set("X-Total-Count", strconv.Itoa(total))
	}
	if !strings.EqualFold(q.Get("sysparm_suppress_pagination_header"), "true") {
		if link := linkHeader(r, offset, limit, total); link != "" {
			h.Set("Link", link)
		}
	}
	b := pageBuffers.Get().(*bytes.Buffer)
	defer putPageBuffer(b)
	b.Grow(len(rows) * 1024)
	b.WriteString(`{"result":[`)
	for i, row := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		s.writeTableRecord(b, s.d, t, row, &o)
	}
	b.WriteString("]}")
	writeJSON(w, http.StatusOK, b.Bytes())
}

// pageBuffers keeps list answers' buffers (about 1 MB for a page of 1000)
// from one request to the next.
var pageBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putPageBuffer(b *bytes.Buffer) {
	if b.Cap() > 16<<20 {
		return
	}
	b.Reset()
	pageBuffers.Put(b)
}

// linkHeader builds the RFC 5988 Link header. Modern behaviour (§1.5):
// omitted when everything fits on one page, no prev on the first page and
// no next on the last; first and last are always present otherwise.
func linkHeader(r *http.Request, offset, limit, total int) string {
	if total <= limit && offset == 0 {
		return ""
	}
	page := func(off int, rel string) string {
		q := r.URL.Query()
		q.Set("sysparm_limit", strconv.Itoa(limit))
		q.Set("sysparm_offset", strconv.Itoa(off))
		return "<" + baseURL(r) + r.URL.Path + "?" + q.Encode() + `>;rel="` + rel + `"`
	}
	last := 0
	if total > 0 {
		last = ((total - 1) / limit) * limit
	}
	links := []string{page(0, "first")}
	if offset > 0 {
		links = append(links, page(max(offset-limit, 0), "prev"))
	}
	if offset+limit < total {
		links = append(links, page(offset+limit, "next"))
	}
	links = append(links, page(last, "last"))
	return strings.Join(links, ",")
}

func (s *Sim) writeOne(w http.ResponseWriter, r *http.Request, u *user, t *table, row *record, status int) {
	if strings.EqualFold(r.Header.Get("X-No-Response-Body"), "true") {
		w.WriteHeader(status)
		return
	}
	o := s.renderOptions(r, u)
	var b bytes.Buffer
	b.WriteString(`{"result":`)
	s.writeTableRecord(&b, s.d, t, row, &o)
	b.WriteString("}")
	writeJSON(w, status, b.Bytes())
}

func (s *Sim) tableGet(w http.ResponseWriter, r *http.Request, u *user, name, id string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, row, e := s.readableRow(u, name, id)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	s.writeOne(w, r, u, t, row, http.StatusOK)
}

// readableRow finds a row the user may read: an unknown table is the 400
// envelope, a missing or hidden row the 404 one (the same body for both, as
// on a real instance). The caller holds s.mu.
func (s *Sim) readableRow(u *user, name, id string) (*table, *record, *apiError) {
	t := s.d.tables[name]
	if t == nil {
		return nil, nil, errInvalidTable(name)
	}
	row := t.byID[id]
	if row == nil || !canRead(u) {
		return nil, nil, errNoRecord()
	}
	return t, row, nil
}

func inputDisplay(r *http.Request) bool {
	return strings.EqualFold(r.URL.Query().Get("sysparm_input_display_value"), "true")
}

func (s *Sim) tableCreate(w http.ResponseWriter, r *http.Request, u *user, name string) string {
	body, err := decodeBody(r)
	if err != nil {
		writeAPIError(w, asAPIError(err))
		return ""
	}
	drop := s.createDrop()
	empty, emptyBody := s.createEmpty()
	s.awaitCommit()
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.d.tables[name]
	if t == nil {
		writeAPIError(w, errInvalidTable(name))
		return ""
	}
	if !canWrite(u, name, "Insert") {
		writeAPIError(w, errACL("Insert"))
		return ""
	}
	vals, _ := s.d.prepareInput(t, body, true, inputDisplay(r))
	row, e := s.insert(u, t, vals)
	if e != nil {
		writeAPIError(w, e)
		return ""
	}
	if drop {
		dropConnection(w)
		return "create-drop"
	}
	if empty {
		writeJSON(w, http.StatusCreated, emptyBody)
		return "create-empty"
	}
	w.Header().Set("Location", baseURL(r)+"/api/now/table/"+name+"/"+t.get(row, "sys_id"))
	s.writeOne(w, r, u, t, row, http.StatusCreated)
	return ""
}

func (s *Sim) tableUpdate(w http.ResponseWriter, r *http.Request, u *user, name, id string) {
	body, err := decodeBody(r)
	if err != nil {
		writeAPIError(w, asAPIError(err))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, row, e := s.readableRow(u, name, id)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	if !canWrite(u, name, "Update") {
		writeAPIError(w, errACL("Update"))
		return
	}
	vals, _ := s.d.prepareInput(t, body, false, inputDisplay(r))
	if _, e := s.update(u, t, row, vals); e != nil {
		writeAPIError(w, e)
		return
	}
	s.writeOne(w, r, u, t, row, http.StatusOK)
}

func (s *Sim) tableDelete(w http.ResponseWriter, u *user, name, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, row, e := s.readableRow(u, name, id)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	if !canWrite(u, name, "Delete") {
		writeAPIError(w, errACL("Delete"))
		return
	}
	s.remove(u, t, row)
	w.WriteHeader(http.StatusNoContent)
}

// serveStats is a minimal Aggregate API: GET /api/now/stats/{table}?sysparm_count=true.
func (s *Sim) serveStats(w http.ResponseWriter, r *http.Request, u *user, name string) {
	if e := checkAccept(r); e != nil {
		writeAPIError(w, e)
		return
	}
	if r.Method != http.MethodGet {
		writeAPIError(w, errMethod())
		return
	}
	q := r.URL.Query()
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := s.d.tables[name]
	if t == nil {
		writeAPIError(w, errInvalidTable(name))
		return
	}
	if !canRead(u) {
		writeAPIError(w, errReadACL())
		return
	}
	_, total := s.buildQuery(t, q, q.Get("sysparm_query")).selectRows(t.rows, 0, 0)
	writeJSON(w, http.StatusOK, []byte(`{"result":{"stats":{"count":"`+strconv.Itoa(total)+`"}}}`))
}
