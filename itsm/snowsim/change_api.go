package snowsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// defaultChangeLimit is the Change Management API's default page size.
const defaultChangeLimit = 500

var changeTypes = []string{"normal", "standard", "emergency"}

// fieldsIgnoredFromTemplate may not be overridden when creating a standard
// change from a template (§6).
var fieldsIgnoredFromTemplate = []string{"backout_plan", "description", "implementation_plan", "test_plan"}

// serveChange implements /api/sn_chg_rest[/v1]/change/... (§6).
func (s *Sim) serveChange(w http.ResponseWriter, r *http.Request, u *user, segs []string) string {
	if e := checkAccept(r); e != nil {
		writeAPIError(w, e)
		return ""
	}
	if (r.Method == http.MethodPost || r.Method == http.MethodPatch || r.Method == http.MethodPut) && r.ContentLength != 0 {
		if e := checkContentType(r); e != nil {
			writeAPIError(w, e)
			return ""
		}
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if !u.has("admin", "change_manager", "itil", "sn_change_read") {
			writeAPIError(w, errReadACL())
			return ""
		}
	case http.MethodDelete:
		if !u.has("admin", "change_manager") {
			writeAPIError(w, errACL("Delete"))
			return ""
		}
	default:
		if !u.has("admin", "change_manager", "itil") {
			op := "Update"
			if r.Method == http.MethodPost {
				op = "Insert"
			}
			writeAPIError(w, errACL(op))
			return ""
		}
	}
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	n := len(segs)
	isType := n > 0 && slices.Contains(changeTypes, segs[0])
	switch {
	case n == 0 && get:
		s.changeList(w, r, u, "")
	case n == 0 && r.Method == http.MethodPost:
		return s.changeCreate(w, r, u, "", "", false)
	case n == 1 && isType && get:
		s.changeList(w, r, u, segs[0])
	case n == 1 && isType && r.Method == http.MethodPost && segs[0] != "standard":
		return s.changeCreate(w, r, u, segs[0], "", true)
	case n == 2 && segs[0] == "standard" && segs[1] == "template" && get:
		s.templateList(w, r)
	case n == 3 && segs[0] == "standard" && segs[1] == "template" && get:
		s.templateGet(w, r, segs[2])
	case n == 2 && segs[0] == "standard" && r.Method == http.MethodPost:
		return s.changeCreate(w, r, u, "standard", segs[1], true)
	case n == 2 && isType:
		s.changeOne(w, r, u, segs[1], segs[0])
	case n == 2 && segs[0] == "worker" && get:
		s.workerGet(w, segs[1])
	case n == 1 && segs[0] == "model" && get:
		s.modelList(w)
	case n == 1:
		s.changeOne(w, r, u, segs[0], "")
	case n == 2 && segs[1] == "nextstates" && get:
		s.nextStates(w, segs[0])
	case n == 2 && segs[1] == "approvals" && r.Method == http.MethodPatch:
		s.changeApprovals(w, r, u, segs[0])
	case n == 2 && segs[1] == "conflict":
		s.changeConflict(w, r, u, segs[0])
	case n == 2 && segs[1] == "ci" && !s.opts.NoChangeCIEndpoint:
		s.changeCIs(w, r, u, segs[0])
	default:
		writeAPIError(w, errNoResource())
	}
	return ""
}

// changeInput merges field query parameters with the JSON body (body wins).
func changeInput(r *http.Request) (map[string]string, error) {
	in := map[string]string{}
	for k, vs := range r.URL.Query() {
		if !strings.HasPrefix(k, "sysparm_") && len(vs) > 0 {
			in[k] = vs[0]
		}
	}
	if r.ContentLength == 0 {
		return in, nil
	}
	body, err := decodeBody(r)
	if err != nil {
		return nil, err
	}
	for k, v := range body {
		in[k] = v
	}
	return in, nil
}

// writeChanges writes {"result": X} where X is one record object, or an
// array when asArray (one-element array endpoints) or for lists.
func (s *Sim) writeChanges(w http.ResponseWriter, r *http.Request, u *user, rows []*record, asArray bool, ignored []string, status int) {
	t := s.d.tables["change_request"]
	loc := s.userLocation(u)
	var b bytes.Buffer
	b.WriteString(`{"result":`)
	if asArray {
		b.WriteByte('[')
	}
	for i, row := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		s.writeChangeRecord(&b, s.d, t, row, s.opts.TypedChangeValues, loc, ignored)
	}
	if asArray {
		b.WriteByte(']')
	}
	b.WriteByte('}')
	writeJSON(w, status, b.Bytes())
}

func (s *Sim) changeList(w http.ResponseWriter, r *http.Request, u *user, typ string) {
	q := r.URL.Query()
	limit, e := parseLimit(q, defaultChangeLimit)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	offset, e := parseOffset(q)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := s.d.tables["change_request"]
	encoded := q.Get("sysparm_query")
	if typ != "" {
		encoded = "type=" + typ + "^" + encoded
	}
	if o := q.Get("order"); o != "" && isFieldPath(o) {
		encoded += "^ORDERBY" + o
	}
	cq := s.buildQuery(t, q, encoded)
	if text := strings.ToLower(q.Get("textSearch")); text != "" {
		num, sd, desc := t.sch.idx["number"], t.sch.idx["short_description"], t.sch.idx["description"]
		cq.and(cond{op: "=", val: "true", get: func(r *record) string {
			for _, i := range []int{num, sd, desc} {
				if strings.Contains(strings.ToLower(r.vals[i]), text) {
					return "true"
				}
			}
			return "false"
		}})
	}
	rows, total := cq.selectRows(t.rows, offset, limit)
	w.Header().Set("X-Total-Count", strconv.Itoa(total))
	if link := linkHeader(r, offset, limit, total); link != "" {
		w.Header().Set("Link", link)
	}
	s.writeChanges(w, r, u, rows, true, nil, http.StatusOK)
}

// changeCreate creates a change of a type (or from chg_model/type in the
// body when typ is ""), optionally from a standard template.
func (s *Sim) changeCreate(w http.ResponseWriter, r *http.Request, u *user, typ, templateID string, asArray bool) string {
	in, err := changeInput(r)
	if err != nil {
		writeAPIError(w, asAPIError(err))
		return ""
	}
	if typ == "" {
		typ = strings.ToLower(in["type"])
		if typ == "" {
			typ = strings.ToLower(in["chg_model"])
		}
		if !slices.Contains(changeTypes, typ) {
			writeAPIError(w, newAPIError(http.StatusBadRequest, "Missing or invalid change model",
				"Set chg_model (Normal, Standard, Emergency) and/or type"))
			return ""
		}
	}
	drop := s.createDrop()
	empty, emptyBody := s.createEmpty()
	s.awaitCommit()
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.d.tables["change_request"]
	delete(in, "type")
	delete(in, "chg_model")
	vals, ignored := s.d.prepareInput(t, in, true, false)
	if ignored == nil {
		ignored = []string{}
	}
	version := ""
	if templateID != "" {
		tv, ver, ok := s.templateValues(templateID)
		if !ok {
			writeAPIError(w, newAPIError(http.StatusNotFound, "No Record found", "Standard change template "+templateID+" does not exist or is inactive"))
			return ""
		}
		version = ver
		// A standard change keeps only what its template defines (§6, trap
		// 21): description and the plans never, and any field the template
		// does not set — correlation_id, the planned window, cmdb_ci — is
		// dropped and listed in __meta.ignoredFields.
		for k := range vals {
			if _, defined := tv[k]; !defined || slices.Contains(fieldsIgnoredFromTemplate, k) {
				delete(vals, k)
				ignored = append(ignored, k)
			}
		}
		slices.Sort(ignored)
		for k, v := range tv {
			if _, set := vals[k]; !set {
				vals[k] = v
			}
		}
	}
	if version != "" {
		vals["std_change_producer_version"] = version
	}
	vals["type"] = typ
	vals["chg_model"] = strings.ToUpper(typ[:1]) + typ[1:]
	row, e := s.insertRecord(u, t, vals, true)
	if e != nil {
		writeAPIError(w, e)
		return ""
	}
	if drop {
		dropConnection(w)
		return "create-drop"
	}
	if empty {
		writeJSON(w, http.StatusOK, emptyBody)
		return "create-empty"
	}
	s.writeChanges(w, r, u, []*record{row}, asArray, ignored, http.StatusOK)
	return ""
}

// templateValues resolves a record producer or producer version sys_id to
// the template's field values. Callers hold s.mu.
func (s *Sim) templateValues(id string) (map[string]string, string, bool) {
	pt := s.d.tables["std_change_record_producer"]
	vt := s.d.tables["std_change_producer_version"]
	version := vt.byID[id]
	if p := pt.byID[id]; p != nil {
		if pt.get(p, "active") == "false" {
			return nil, "", false
		}
		version = vt.byID[pt.get(p, "current_version")]
	}
	if version == nil || vt.get(version, "active") == "false" {
		return nil, "", false
	}
	out := map[string]string{}
	for _, part := range strings.Split(vt.get(version, "template"), "^") {
		if k, v, ok := strings.Cut(part, "="); ok && k != "" && k != "EQ" {
			out[k] = v
		}
	}
	ct := s.d.tables["change_request"]
	vals, _ := s.d.prepareInput(ct, out, true, false)
	return vals, vt.get(version, "sys_id"), true
}

func (s *Sim) templateList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, e := parseLimit(q, defaultChangeLimit)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	offset, e := parseOffset(q)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := s.d.tables["std_change_record_producer"]
	encoded := q.Get("sysparm_query")
	if !strings.Contains(encoded, "ORDERBY") {
		encoded += "^ORDERBYname"
	}
	rows, total := s.buildQuery(t, q, encoded).selectRows(t.rows, offset, limit)
	w.Header().Set("X-Total-Count", strconv.Itoa(total))
	var b bytes.Buffer
	b.WriteString(`{"result":[`)
	for i, row := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		s.writeChangeRecord(&b, s.d, t, row, s.opts.TypedChangeValues, nil, nil)
	}
	b.WriteString("]}")
	writeJSON(w, http.StatusOK, b.Bytes())
}

func (s *Sim) templateGet(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := s.d.tables["std_change_record_producer"]
	row := t.byID[id]
	if row == nil {
		writeAPIError(w, errNoRecord())
		return
	}
	var b bytes.Buffer
	b.WriteString(`{"result":`)
	s.writeChangeRecord(&b, s.d, t, row, s.opts.TypedChangeValues, nil, nil)
	b.WriteString("}")
	writeJSON(w, http.StatusOK, b.Bytes())
}

// changeOne serves GET/PATCH/DELETE /change[/{type}]/{sys_id}.
func (s *Sim) changeOne(w http.ResponseWriter, r *http.Request, u *user, id, typ string) {
	var in map[string]string
	if r.Method == http.MethodPatch || r.Method == http.MethodPut {
		var err error
		if in, err = changeInput(r); err != nil {
			writeAPIError(w, asAPIError(err))
			return
		}
	}
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	if write {
		s.mu.Lock()
		defer s.mu.Unlock()
	} else {
		s.mu.RLock()
		defer s.mu.RUnlock()
	}
	t := s.d.tables["change_request"]
	row := t.byID[id]
	if row == nil || typ != "" && t.get(row, "type") != typ {
		writeAPIError(w, errNoRecord())
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.writeChanges(w, r, u, []*record{row}, false, nil, http.StatusOK)
	case http.MethodPatch, http.MethodPut:
		vals, ignored := s.d.prepareInput(t, in, false, false)
		if ignored == nil {
			ignored = []string{}
		}
		if _, e := s.update(u, t, row, vals); e != nil {
			if e.detail != nil && strings.Contains(*e.detail, "Business Rule") {
				e = errChangeBusinessRule()
			}
			writeAPIError(w, e)
			return
		}
		s.writeChanges(w, r, u, []*record{row}, false, ignored, http.StatusOK)
	case http.MethodDelete:
		s.remove(u, t, row)
		w.WriteHeader(http.StatusNoContent)
	default:
		writeAPIError(w, errMethod())
	}
}

var stateNames = map[string]string{
	stNew: "New", stAssess: "Assess", stAuthorize: "Authorize", stScheduled: "Scheduled",
	stImplement: "Implement", stReview: "Review", stClosed: "Closed", stCanceled: "Canceled",
}

// nextStates implements GET /change/{sys_id}/nextstates.
func (s *Sim) nextStates(w http.ResponseWriter, id string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := s.d.tables["change_request"]
	row := t.byID[id]
	if row == nil {
		writeAPIError(w, errNoRecord())
		return
	}
	typ, from := t.get(row, "type"), t.get(row, "state")
	m := transitions[typ]
	if m == nil {
		m = transitions["normal"]
	}
	available := []string{from}
	labels := map[string]string{from: stateNames[from]}
	type condition struct {
		Passed    bool              `json:"passed"`
		Condition map[string]string `json:"condition"`
	}
	type transition struct {
		FromState           string      `json:"from_state"`
		ToState             string      `json:"to_state"`
		TransitionAvailable bool        `json:"transition_available"`
		AutomaticTransition bool        `json:"automatic_transition"`
		Conditions          []condition `json:"conditions"`
	}
	trs := []transition{}
	for _, to := range m[from] {
		auto := automatic(typ, from, to)
		tr := transition{FromState: from, ToState: to, TransitionAvailable: !auto, AutomaticTransition: auto, Conditions: []condition{}}
		if auto {
			tr.Conditions = append(tr.Conditions, condition{Passed: false, Condition: map[string]string{
				"name": "Approval approved", "description": "Moved by the approval workflow when all approvals are approved",
			}})
		} else {
			available = append(available, to)
		}
		labels[to] = stateNames[to]
		trs = append(trs, tr)
	}
	body, _ := json.Marshal(map[string]any{"result": map[string]any{
		"available_states": available, "state_label": labels, "state_transitions": trs,
	}})
	writeJSON(w, http.StatusOK, body)
}

// changeApprovals implements PATCH /change/{sys_id}/approvals (§5.2).
func (s *Sim) changeApprovals(w http.ResponseWriter, r *http.Request, u *user, id string) {
	in, err := changeInput(r)
	if err != nil {
		writeAPIError(w, asAPIError(err))
		return
	}
	state, comments := in["state"], in["comments"]
	if state != "approved" && state != "rejected" {
		writeAPIError(w, newAPIError(http.StatusBadRequest, "Invalid state", `state must be "approved" or "rejected"`))
		return
	}
	if state == "rejected" && strings.TrimSpace(comments) == "" {
		writeAPIError(w, newAPIError(http.StatusBadRequest, "Comments are required", "Comments are required when rejecting an approval"))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.d.tables["change_request"]
	row := t.byID[id]
	if row == nil {
		writeAPIError(w, errNoRecord())
		return
	}
	if err := s.decideOn(row, u, state, comments); err != nil {
		if errors.Is(err, ErrNotApprover) {
			writeAPIError(w, newAPIError(http.StatusBadRequest, "Approval could not be updated",
				"User "+u.userName+" has no pending approval on "+t.get(row, "number")))
			return
		}
		writeAPIError(w, asAPIError(err))
		return
	}
	s.writeChanges(w, r, u, []*record{row}, true, nil, http.StatusOK)
}

func (s *Sim) modelList(w http.ResponseWriter) {
	var b bytes.Buffer
	b.WriteString(`{"result":[`)
	for i, typ := range changeTypes {
		if i > 0 {
			b.WriteByte(',')
		}
		name := strings.ToUpper(typ[:1]) + typ[1:]
		ob := openObj(&b)
		for _, kv := range [][2]string{{"sys_id", modelIDs[typ]}, {"name", name}, {"type", typ}} {
			ob.key(kv[0])
			in := openObj(&b)
			in.str("value", kv[1])
			in.str("display_value", kv[1])
			in.close()
		}
		ob.close()
	}
	b.WriteString("]}")
	writeJSON(w, http.StatusOK, b.Bytes())
}

var modelIDs = map[string]string{
	"normal":    "007c4001c343101035ae3f52c1d3aeb2",
	"standard":  "e55d0bfec343101035ae3f52c1d3ae49",
	"emergency": "62d10fa1c303101035ae3f52c1d3aec1",
}
