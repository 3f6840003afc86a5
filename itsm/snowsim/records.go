package snowsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// decodeBody reads a JSON object (or the first element of an array, like
// the platform) and turns every value into its string form.
func decodeBody(r *http.Request) (map[string]string, error) {
	var raw any
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 10<<20))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		if err.Error() == "EOF" {
			return map[string]string{}, nil
		}
		return nil, newAPIError(http.StatusBadRequest, "Exception while reading request", "The payload is not valid JSON.")
	}
	if arr, ok := raw.([]any); ok {
		if len(arr) == 0 {
			return map[string]string{}, nil
		}
		raw = arr[0]
	}
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, newAPIError(http.StatusBadRequest, "Exception while reading request", "The payload is not valid JSON.")
	}
	out := make(map[string]string, len(obj))
	for k, v := range obj {
		out[k] = stringify(v)
	}
	return out, nil
}

func stringify(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		if f, err := x.Float64(); err == nil && f == float64(int64(f)) {
			return strconv.FormatInt(int64(f), 10)
		}
		return x.String()
	case map[string]any:
		if val, ok := x["value"]; ok {
			return stringify(val)
		}
		if val, ok := x["sys_id"]; ok {
			return stringify(val)
		}
		return ""
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = stringify(e)
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v)
}

// prepareInput filters client values against the dictionary: unknown and
// system fields are ignored (and reported), choices cannot be cleared with
// "", date-times are normalised, and with inputDisplay labels and display
// values are mapped to stored values.
func (d *db) prepareInput(t *table, in map[string]string, insert, inputDisplay bool) (map[string]string, []string) {
	out := make(map[string]string, len(in))
	var ignored []string
	for k, v := range in {
		f := t.sch.field(k)
		if f == nil {
			ignored = append(ignored, k)
			continue
		}
		if f.system && !(insert && (k == "sys_id" && isSysID(v) && t.byID[v] == nil || k == "number" && v != "")) {
			ignored = append(ignored, k)
			continue
		}
		switch f.kind {
		case kChoice:
			if v == "" && !insert {
				continue // choice fields cannot be cleared with ""
			}
			if inputDisplay {
				if cv, ok := f.choiceByLabel(v); ok {
					v = cv
				}
			}
		case kRef:
			if inputDisplay && v != "" {
				if id, ok := d.lookupRef(f.ref, v); ok {
					v = id
				}
			}
		case kDateTime:
			v = normalizeDateTime(v)
		case kBool:
			switch strings.ToLower(v) {
			case "true", "1":
				v = "true"
			case "false", "0", "":
				v = "false"
			}
		}
		out[k] = v
	}
	slices.Sort(ignored)
	return out, ignored
}

// priorityFor is the §8.1 priority lookup matrix.
func priorityFor(impact, urgency string) string {
	i, err1 := strconv.Atoi(impact)
	u, err2 := strconv.Atoi(urgency)
	if err1 != nil || err2 != nil || i < 1 || i > 3 || u < 1 || u > 3 {
		return ""
	}
	return strconv.Itoa(i + u - 1)
}

// journalWrites pulls journal values out of a write.
func journalWrites(t *table, vals map[string]string) [][2]string {
	var out [][2]string
	for _, name := range []string{"work_notes", "comments"} {
		if v, ok := vals[name]; ok {
			delete(vals, name)
			if f := t.sch.field(name); f != nil && f.kind == kJournal && strings.TrimSpace(v) != "" {
				out = append(out, [2]string{name, v})
			}
		}
	}
	delete(vals, "comments_and_work_notes")
	return out
}

// addJournal stores one sys_journal_field entry. Callers hold s.mu.
func (s *Sim) addJournal(t *table, r *record, element, value, by string) {
	jt := s.d.tables["sys_journal_field"]
	now := fmtTime(s.now())
	j := jt.newRecord()
	id := t.get(r, "sys_id")
	jt.set(j, "sys_id", newSysID())
	jt.set(j, "element_id", id)
	jt.set(j, "element", element)
	jt.set(j, "name", t.sch.name)
	jt.set(j, "value", value)
	jt.set(j, "sys_created_on", now)
	jt.set(j, "sys_created_by", by)
	jt.set(j, "sys_updated_on", now)
	jt.set(j, "sys_updated_by", by)
	jt.set(j, "sys_mod_count", "0")
	jt.add(j)
	s.d.journal[id] = append(s.d.journal[id], j)
}

// insert creates a record with server-side defaults and effects. Callers hold
// s.mu for writing.
func (s *Sim) insert(u *user, t *table, vals map[string]string) (*record, *apiError) {
	return s.insertRecord(u, t, vals, false)
}

// insertRecord is insert; templateDone says the caller (the standard change
// endpoint) has already merged a template into vals. Otherwise a
// change_request insert that names a std_change_producer_version gets the
// template's values, and they win over what the insert sent (§6: the Table
// API path applies the template).
func (s *Sim) insertRecord(u *user, t *table, vals map[string]string, templateDone bool) (*record, *apiError) {
	if t.sch.name == "change_request" && !templateDone {
		if id := vals["std_change_producer_version"]; id != "" {
			tv, version, ok := s.templateValues(id)
			if !ok {
				return nil, newAPIError(http.StatusBadRequest, "Invalid std_change_producer_version",
					"Standard change template version "+id+" does not exist or is inactive")
			}
			for k, v := range tv {
				vals[k] = v
			}
			vals["std_change_producer_version"] = version
		}
	}
	journals := journalWrites(t, vals)
	r := t.newRecord()
	for i, f := range t.sch.fields {
		r.vals[i] = f.def
	}
	for k, v := range vals {
		t.set(r, k, v)
	}
	now := fmtTime(s.now())
	if t.get(r, "sys_id") == "" {
		t.set(r, "sys_id", newSysID())
	}
	if t.sch.prefix != "" {
		if n := t.get(r, "number"); n == "" {
			t.set(r, "number", s.d.nextNumber(t.sch.prefix))
		} else {
			s.d.noteNumber(t.sch.prefix, n)
		}
	}
	t.set(r, "sys_created_on", now)
	t.set(r, "sys_created_by", u.userName)
	t.set(r, "sys_updated_on", now)
	t.set(r, "sys_updated_by", u.userName)
	t.set(r, "sys_mod_count", "0")
	switch t.sch.name {
	case "change_request":
		if st := t.get(r, "state"); st != stNew {
			if !s.opts.LenientTransitions {
				return nil, errBusinessRule(t.sch.name)
			}
			t.set(r, "state", stNew)
		}
		if _, ok := vals["approval"]; !ok && t.get(r, "type") == "standard" {
			t.set(r, "approval", "approved")
		}
		if t.get(r, "chg_model") == "" {
			t.set(r, "chg_model", strings.ToUpper(t.get(r, "type")[:1])+t.get(r, "type")[1:])
		}
		fallthrough
	case "incident":
		if t.get(r, "opened_by") == "" {
			t.set(r, "opened_by", u.id)
		}
		if t.get(r, "opened_at") == "" {
			t.set(r, "opened_at", now)
		}
		if t.sch.name == "change_request" && t.get(r, "requested_by") == "" {
			t.set(r, "requested_by", u.id)
		}
		s.recomputePriority(t, r) // incidents only
		s.stateEffects(t, r, "", u)
	case "sys_user_grmember", "sysapproval_approver", "sysapproval_group":
	}
	t.add(r)
	for _, j := range journals {
		s.addJournal(t, r, j[0], j[1], u.userName)
	}
	if t.sch.name == "change_request" && t.get(r, "type") == "standard" && s.opts.AutoApprove.Standard {
		s.moveChange(r, stScheduled, u)
	}
	s.markDirty()
	return r, nil
}

// recomputePriority derives an incident's priority from impact × urgency
// (§8.1). A change's priority is kept as written: a real instance does not
// recompute it (SERVICENOW.md §4.1).
func (s *Sim) recomputePriority(t *table, r *record) {
	if t.sch.name != "incident" {
		return
	}
	if p := priorityFor(t.get(r, "impact"), t.get(r, "urgency")); p != "" {
		t.set(r, "priority", p)
	}
}

// stateEffects applies the server-side stamps of entering a state.
func (s *Sim) stateEffects(t *table, r *record, oldState string, u *user) {
	now := fmtTime(s.now())
	st := t.get(r, "state")
	if st == oldState {
		return
	}
	switch t.sch.name {
	case "change_request":
		switch st {
		case stImplement:
			if t.get(r, "work_start") == "" {
				t.set(r, "work_start", now)
			}
		case stReview:
			if t.get(r, "work_end") == "" {
				t.set(r, "work_end", now)
			}
		case stClosed, stCanceled:
			t.set(r, "active", "false")
			if st == stCanceled {
				t.set(r, "on_hold", "false")
				t.set(r, "on_hold_reason", "")
			}
			if t.get(r, "closed_at") == "" {
				t.set(r, "closed_at", now)
				t.set(r, "closed_by", u.id)
			}
		}
	case "incident":
		switch st {
		case "6":
			if t.get(r, "resolved_at") == "" {
				t.set(r, "resolved_at", now)
				t.set(r, "resolved_by", u.id)
			}
		case "7", "8":
			t.set(r, "active", "false")
			if t.get(r, "closed_at") == "" {
				t.set(r, "closed_at", now)
				t.set(r, "closed_by", u.id)
			}
		}
	}
}

// updateResult tells the caller what an update did.
type updateResult struct {
	stateRefused bool // lenient mode kept the old state
}

// update applies a client write to a record. Callers hold s.mu for writing
// and have checked table-level ACLs.
func (s *Sim) update(u *user, t *table, r *record, vals map[string]string) (updateResult, *apiError) {
	var res updateResult
	journals := journalWrites(t, vals)
	old := slices.Clone(r.vals)
	nr := &record{vals: slices.Clone(r.vals)}
	for k, v := range vals {
		t.set(nr, k, v)
	}
	switch t.sch.name {
	case "change_request":
		oldType := t.get(r, "type")
		if t.get(nr, "type") != oldType && (t.get(r, "state") != stNew || s.hasApprovals(t.get(r, "sys_id"))) {
			t.set(nr, "type", oldType) // type may change only in New without approvals
		}
		from, to := t.get(r, "state"), t.get(nr, "state")
		if from != to && !s.clientMayMove(t.get(nr, "type"), from, to) {
			if !s.opts.LenientTransitions {
				return res, errBusinessRule(t.sch.name)
			}
			t.set(nr, "state", from)
			res.stateRefused = true
		}
		s.stateEffects(t, nr, from, u)
	case "incident":
		s.recomputePriority(t, nr)
		s.stateEffects(t, nr, t.get(r, "state"), u)
	case "sysapproval_approver":
		if t.get(nr, "state") != t.get(r, "state") && !u.admin() && t.get(r, "approver") != u.id {
			return res, errACL("Update")
		}
	}
	if slices.Equal(nr.vals, r.vals) && len(journals) == 0 {
		return res, nil
	}
	copy(r.vals, nr.vals)
	s.touch(t, r, u)
	for _, j := range journals {
		s.addJournal(t, r, j[0], j[1], u.userName)
	}
	s.afterUpdate(t, r, old, u)
	s.markDirty()
	return res, nil
}

// touch bumps the sys_updated_* fields and sys_mod_count.
func (s *Sim) touch(t *table, r *record, u *user) {
	n, _ := strconv.Atoi(t.get(r, "sys_mod_count"))
	t.set(r, "sys_mod_count", strconv.Itoa(n+1))
	t.set(r, "sys_updated_on", fmtTime(s.now()))
	t.set(r, "sys_updated_by", u.userName)
}

// afterUpdate runs the workflow reactions to a committed update.
func (s *Sim) afterUpdate(t *table, r *record, old []string, u *user) {
	oldState := old[t.sch.idx["state"]]
	switch t.sch.name {
	case "change_request":
		if st := t.get(r, "state"); st != oldState {
			s.onChangeState(r, oldState, u)
		}
	case "sysapproval_approver":
		if st := t.get(r, "state"); st != oldState && (st == "approved" || st == "rejected") {
			s.onApprovalDecision(r, u)
		}
	}
}

// remove deletes a record, recording it in sys_audit_delete and cascading to
// approvals and attachments of the record.
func (s *Sim) remove(u *user, t *table, r *record) {
	id := t.get(r, "sys_id")
	t.remove(r)
	if t.sch.name != "sys_audit_delete" {
		at := s.d.tables["sys_audit_delete"]
		a := at.newRecord()
		now := fmtTime(s.now())
		at.set(a, "sys_id", newSysID())
		at.set(a, "tablename", t.sch.name)
		at.set(a, "documentkey", id)
		at.set(a, "display_value", t.get(r, t.sch.display))
		at.set(a, "sys_created_on", now)
		at.set(a, "sys_created_by", u.userName)
		at.set(a, "sys_updated_on", now)
		at.set(a, "sys_updated_by", u.userName)
		at.set(a, "sys_mod_count", "0")
		at.add(a)
	}
	if t.sch.name == "change_request" {
		for _, name := range []string{"sysapproval_approver", "sysapproval_group", "task_ci", "task_cmdb_ci_service"} {
			ct := s.d.tables[name]
			col := "sysapproval"
			switch name {
			case "sysapproval_group":
				col = "parent"
			case "task_ci", "task_cmdb_ci_service":
				col = "task" // the references cascade: a deleted change takes its CI rows along
			}
			for _, cr := range slices.Clone(ct.rows) {
				if ct.get(cr, col) == id {
					s.remove(u, ct, cr)
				}
			}
		}
	}
	att := s.d.tables["sys_attachment"]
	for _, ar := range slices.Clone(att.rows) {
		if att.get(ar, "table_sys_id") == id {
			att.remove(ar)
			delete(s.d.files, att.get(ar, "sys_id"))
		}
	}
	s.markDirty()
}
