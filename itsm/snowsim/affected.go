package snowsim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// defaultAssociateDelay is how long a CI association runs when
// Options.AssociateDelay is zero.
const defaultAssociateDelay = time.Second

// associations maps an association_type onto the related list it fills:
// the table and its CI column. "offering" (task_service_offering) is
// documented but not simulated.
var associations = map[string][2]string{
	"affected": {"task_ci", "ci_item"},
	"impacted": {"task_cmdb_ci_service", "cmdb_ci_service"},
}

// Messages of a CI association worker. The docs give "Invalid CMDB_CI
// sys_id provided" (as an error and as a warning) and "CMDB_CI sys_id
// already associated to provided." as examples without saying which CI
// they are about; ours name it.
const (
	msgInvalidCI = "Invalid CMDB_CI sys_id provided: "
	msgAlreadyCI = "CMDB_CI sys_id already associated to provided task: "
)

func errAssociationType(got string) *apiError {
	return newAPIError(http.StatusBadRequest, "Invalid association_type",
		"association_type is required and must be affected or impacted (offering is not simulated); got \""+got+"\"")
}

// associateDelay is the run time of a new association. Callers hold s.mu.
func (s *Sim) associateDelay() time.Duration {
	switch d := s.opts.AssociateDelay; {
	case d == 0:
		return defaultAssociateDelay
	case d < 0:
		return 0
	default:
		return d
	}
}

// changeCIs implements GET and POST /change/{sys_id}/ci (SERVICENOW.md §6;
// the Change Management API reference, "POST /sn_chg_rest/change/{sys_id}/ci").
//
// POST is asynchronous, as documented: the body names association_type
// (required: affected or impacted) and cmdb_ci_sys_ids (required: an array
// or a comma-separated string); refresh_impacted_services is accepted and
// has no effect (the simulator has no service map). The answer is 202 with
// the worker ({worker{sysId,link}, request, state{value,display_value},
// type, messages{errorMessages,infoMessages,warningMessages}}), state 1
// Waiting. The worker runs Options.AssociateDelay later (when any API
// request arrives after that): each CI becomes one task_ci
// (task_cmdb_ci_service for impacted) row; a CI already associated is not
// associated twice (an info message names it); an unknown CI sys_id is a
// warning naming it while the others are associated, and when no CI was
// valid the worker ends in Error with those messages as errors. Where the
// docs are silent these are our decisions. An unknown change is 404 at
// once, a missing or unknown association_type or an empty list 400.
//
// GET lists the change's rows of that association_type (required, as
// documented) as Change API records ({value, display_value} per field:
// sys_id, task, ci_item or cmdb_ci_service, ...), with sysparm_query,
// name=value filters, sysparm_limit (default 500) and sysparm_offset.
func (s *Sim) changeCIs(w http.ResponseWriter, r *http.Request, u *user, id string) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.listAssociations(w, r, u, id)
	case http.MethodPost:
		s.startAssociation(w, r, u, id)
	default:
		writeAPIError(w, errMethod())
	}
}

func (s *Sim) listAssociations(w http.ResponseWriter, r *http.Request, u *user, id string) {
	q := r.URL.Query()
	typ := q.Get("association_type")
	assoc, ok := associations[typ]
	if !ok {
		writeAPIError(w, errAssociationType(typ))
		return
	}
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
	if s.d.tables["change_request"].byID[id] == nil {
		writeAPIError(w, errNoRecord())
		return
	}
	t := s.d.tables[assoc[0]]
	encoded := "task=" + id
	if extra := q.Get("sysparm_query"); extra != "" {
		encoded += "^" + extra
	}
	rows, total := s.buildQuery(t, q, encoded).selectRows(t.rows, offset, limit)
	w.Header().Set("X-Total-Count", strconv.Itoa(total))
	if link := linkHeader(r, offset, limit, total); link != "" {
		w.Header().Set("Link", link)
	}
	loc := s.userLocation(u)
	var b bytes.Buffer
	b.WriteString(`{"result":[`)
	for i, row := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		s.writeChangeRecord(&b, s.d, t, row, s.opts.TypedChangeValues, loc, nil)
	}
	b.WriteString("]}")
	writeJSON(w, http.StatusOK, b.Bytes())
}

func (s *Sim) startAssociation(w http.ResponseWriter, r *http.Request, u *user, id string) {
	in, err := changeInput(r)
	if err != nil {
		writeAPIError(w, asAPIError(err))
		return
	}
	typ := in["association_type"]
	if _, ok := associations[typ]; !ok {
		writeAPIError(w, errAssociationType(typ))
		return
	}
	var cis []string
	for _, ci := range strings.Split(in["cmdb_ci_sys_ids"], ",") {
		if ci = strings.TrimSpace(ci); ci != "" && !slices.Contains(cis, ci) {
			cis = append(cis, ci)
		}
	}
	if len(cis) == 0 {
		writeAPIError(w, newAPIError(http.StatusBadRequest, "Missing cmdb_ci_sys_ids",
			"cmdb_ci_sys_ids is required: the CMDB CI sys_ids to associate, as an array or a comma-separated string"))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.d.tables["change_request"].byID[id] == nil {
		writeAPIError(w, errNoRecord())
		return
	}
	req := map[string]any{"cmdb_ci_sys_ids": cis, "association_type": typ, "task": id}
	if v, ok := in["refresh_impacted_services"]; ok {
		req["refresh_impacted_services"] = strings.EqualFold(v, "true")
	}
	reqJSON, _ := json.Marshal(req)
	wk := &worker{
		ID: newSysID(), Change: id, Due: s.now().Add(s.associateDelay()), State: workerWaiting,
		Type: typ, Request: string(reqJSON), CIs: cis, By: u,
	}
	wk.Link = baseURL(r) + "/api/sn_chg_rest/change/worker/" + wk.ID
	s.d.workers[wk.ID] = wk
	s.assocRunning++
	s.finishAssociations() // a zero delay completes at once
	writeJSON(w, http.StatusAccepted, s.associationAnswer(wk))
}

// runAssociations completes the association workers whose run time has
// passed; it runs before every API request, so their rows are there for
// whoever reads next (the worker, GET /change/{id}/ci, the Table API).
func (s *Sim) runAssociations() {
	s.mu.RLock()
	n := s.assocRunning
	s.mu.RUnlock()
	if n == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finishAssociations()
}

// finishAssociations runs the due association workers. Callers hold s.mu
// for writing.
func (s *Sim) finishAssociations() {
	if s.assocRunning == 0 {
		return
	}
	now := s.now()
	for _, wk := range s.d.workers {
		if wk.Type == "" || wk.State != workerWaiting || now.Before(wk.Due) {
			continue
		}
		s.assocRunning--
		s.associate(wk)
	}
}

// associate does the work of one association worker.
func (s *Sim) associate(wk *worker) {
	if s.d.tables["change_request"].byID[wk.Change] == nil {
		wk.State = workerError
		wk.Errors = append(wk.Errors, "Change request "+wk.Change+" no longer exists")
		return
	}
	assoc := associations[wk.Type]
	t, ciT := s.d.tables[assoc[0]], s.d.tables["cmdb_ci"]
	valid := 0
	for _, ci := range wk.CIs {
		if ciT.byID[ci] == nil {
			wk.Warnings = append(wk.Warnings, msgInvalidCI+ci)
			continue
		}
		valid++
		if s.associated(t, assoc[1], wk.Change, ci) {
			wk.Info = append(wk.Info, msgAlreadyCI+ci)
			continue
		}
		if _, e := s.insert(wk.By, t, map[string]string{"task": wk.Change, assoc[1]: ci}); e != nil {
			wk.Errors = append(wk.Errors, e.message)
		}
	}
	wk.State = workerComplete
	if valid == 0 || len(wk.Errors) > 0 {
		wk.State = workerError
		wk.Errors, wk.Warnings = append(wk.Errors, wk.Warnings...), nil
	}
}

// associated reports whether the change already has a row for the CI.
func (s *Sim) associated(t *table, col, change, ci string) bool {
	for _, r := range t.rows {
		if t.get(r, "task") == change && t.get(r, col) == ci {
			return true
		}
	}
	return false
}

// associationAnswer renders an association worker as the POST answer and
// GET /change/worker/{id} show it. Callers hold s.mu.
func (s *Sim) associationAnswer(wk *worker) []byte {
	label := map[string]string{workerWaiting: "Waiting", workerRunning: "In-Progress", workerComplete: "Complete", workerError: "Error"}[wk.State]
	var value any = wk.State
	if s.opts.TypedChangeValues {
		n, _ := strconv.Atoi(wk.State)
		value = float64(n)
	}
	list := func(m []string) []string {
		if m == nil {
			return []string{}
		}
		return m
	}
	body, _ := json.Marshal(map[string]any{"result": map[string]any{
		"worker":  map[string]string{"sysId": wk.ID, "link": wk.Link},
		"request": wk.Request,
		"state":   map[string]any{"value": value, "display_value": label},
		"type":    wk.Type,
		"messages": map[string][]string{
			"errorMessages": list(wk.Errors), "infoMessages": list(wk.Info), "warningMessages": list(wk.Warnings),
		},
	}})
	return body
}
