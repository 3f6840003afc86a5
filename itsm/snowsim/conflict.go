package snowsim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// conflictResult is the stored outcome of a conflict check.
type conflictResult struct {
	Worker    string           `json:"-"`
	LastRun   string           `json:"last_run"`
	Status    string           `json:"status"`
	Conflicts []map[string]any `json:"conflicts"`
}

func vd(v, d string) map[string]string { return map[string]string{"value": v, "display_value": d} }

// changeConflict implements POST/GET/DELETE /change/{sys_id}/conflict. The
// check runs synchronously; POST returns the (already complete) worker.
func (s *Sim) changeConflict(w http.ResponseWriter, r *http.Request, u *user, id string) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		s.mu.RLock()
		defer s.mu.RUnlock()
	} else {
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	t := s.d.tables["change_request"]
	row := t.byID[id]
	if row == nil {
		writeAPIError(w, errNoRecord())
		return
	}
	key := "conflict:" + id
	switch r.Method {
	case http.MethodPost:
		res := s.detectConflicts(row)
		s.d.workers[key] = map[string]any{"result": res}
		s.d.workers[res.Worker] = map[string]any{"change": id}
		t.set(row, "conflict_status", res.Status)
		t.set(row, "conflict_last_run", res.LastRun)
		s.touch(t, row, u)
		s.markDirty()
		body, _ := json.Marshal(map[string]any{"result": map[string]any{
			"worker":  map[string]string{"sysId": res.Worker, "link": baseURL(r) + "/api/sn_chg_rest/change/worker/" + res.Worker},
			"request": map[string]string{"change": id},
		}})
		writeJSON(w, http.StatusOK, body)
	case http.MethodGet, http.MethodHead:
		out := map[string]any{"status": t.get(row, "conflict_status"), "last_run": t.get(row, "conflict_last_run"),
			"record_count": "0", "job_status": "Complete", "conflicts": []any{}}
		if st, ok := s.d.workers[key]; ok {
			res := st["result"].(*conflictResult)
			out["status"], out["last_run"] = res.Status, res.LastRun
			out["record_count"] = strconv.Itoa(len(res.Conflicts))
			out["conflicts"] = res.Conflicts
		} else {
			out["job_status"] = "Not Run"
		}
		body, _ := json.Marshal(map[string]any{"result": out})
		writeJSON(w, http.StatusOK, body)
	case http.MethodDelete:
		delete(s.d.workers, key)
		w.WriteHeader(http.StatusNoContent)
	default:
		writeAPIError(w, errMethod())
	}
}

func (s *Sim) workerGet(w http.ResponseWriter, id string) {
	s.mu.RLock()
	_, ok := s.d.workers[id]
	s.mu.RUnlock()
	if !ok {
		writeAPIError(w, errNoRecord())
		return
	}
	body, _ := json.Marshal(map[string]any{"result": map[string]any{
		"sys_id":   id,
		"state":    vd("3", "Complete"),
		"messages": map[string][]string{"errorMessages": {}, "infoMessages": {}, "warningMessages": {}},
		"payload":  "",
	}})
	writeJSON(w, http.StatusOK, body)
}

func parseStamp(v string) (time.Time, bool) {
	for _, layout := range []string{"20060102T150405Z", "20060102T150405", timeLayout, "20060102"} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// detectConflicts finds, for the change's CI and planned window, other
// active changes on the same CI whose window overlaps, and blackout spans
// that apply to the CI. Callers hold s.mu.
func (s *Sim) detectConflicts(chg *record) *conflictResult {
	t := s.d.tables["change_request"]
	res := &conflictResult{Worker: newSysID(), LastRun: fmtTime(s.now()), Status: "No Conflict", Conflicts: []map[string]any{}}
	ci := t.get(chg, "cmdb_ci")
	start, ok1 := parseStamp(t.get(chg, "start_date"))
	end, ok2 := parseStamp(t.get(chg, "end_date"))
	if ci == "" || !ok1 || !ok2 || end.Before(start) {
		return res
	}
	id, number := t.get(chg, "sys_id"), t.get(chg, "number")
	ciName := s.d.display("cmdb_ci", ci)
	add := func(typ, label string, extra map[string]any) {
		c := map[string]any{
			"sys_id": vd(newSysID(), ""),
			"change": vd(id, number),
			"ci":     vd(ci, ciName),
			"type":   vd(typ, label),
		}
		for k, v := range extra {
			c[k] = v
		}
		res.Conflicts = append(res.Conflicts, c)
	}
	for _, o := range t.rows {
		if o == chg || t.get(o, "cmdb_ci") != ci || t.get(o, "active") != "true" {
			continue
		}
		if st := t.get(o, "state"); st == stClosed || st == stCanceled {
			continue
		}
		os, ok1 := parseStamp(t.get(o, "start_date"))
		oe, ok2 := parseStamp(t.get(o, "end_date"))
		if ok1 && ok2 && !os.After(end) && !oe.Before(start) {
			add("ci_already_scheduled", "CI Already Scheduled", map[string]any{
				"conflicting_change": vd(t.get(o, "sys_id"), t.get(o, "number")),
				"start":              t.get(o, "start_date"), "end": t.get(o, "end_date"),
			})
		}
	}
	schedT := s.d.tables["cmn_schedule"]
	spanT := s.d.tables["cmn_schedule_span"]
	ciT := s.d.tables["cmdb_ci"]
	ciRow := ciT.byID[ci]
	for _, sc := range schedT.rows {
		if schedT.get(sc, "type") != "blackout" || ciRow == nil {
			continue
		}
		if cnd := schedT.get(sc, "condition"); cnd != "" && !s.d.compile(ciT, parseQuery(cnd), s.now()).match(ciRow) {
			continue
		}
		for _, sp := range spanT.rows {
			if spanT.get(sp, "schedule") != schedT.get(sc, "sys_id") || spanT.get(sp, "type") == "exclude" {
				continue
			}
			if os, oe, hit := spanOverlap(spanT, sp, start, end); hit {
				add("blackout", "Blackout", map[string]any{
					"schedule": vd(schedT.get(sc, "sys_id"), schedT.get(sc, "name")),
					"start":    fmtTime(os), "end": fmtTime(oe),
				})
			}
		}
	}
	if len(res.Conflicts) > 0 {
		res.Status = "Conflict"
	}
	return res
}

// spanOverlap reports the first occurrence of a (possibly repeating)
// schedule span that overlaps [from, to]. Spans are evaluated in UTC.
func spanOverlap(t *table, sp *record, from, to time.Time) (time.Time, time.Time, bool) {
	s0, ok1 := parseStamp(t.get(sp, "start_date_time"))
	e0, ok2 := parseStamp(t.get(sp, "end_date_time"))
	if !ok1 || !ok2 || !e0.After(s0) {
		return time.Time{}, time.Time{}, false
	}
	dur := e0.Sub(s0)
	until, hasUntil := parseStamp(t.get(sp, "repeat_until"))
	check := func(os time.Time) (time.Time, time.Time, bool) {
		if os.Before(s0) || hasUntil && os.After(until.Add(24*time.Hour)) {
			return time.Time{}, time.Time{}, false
		}
		oe := os.Add(dur)
		if os.Before(to) && oe.After(from) {
			return os, oe, true
		}
		return time.Time{}, time.Time{}, false
	}
	periodic := func(base time.Time, period time.Duration) (time.Time, time.Time, bool) {
		k := int(from.Sub(base.Add(dur)) / period)
		for i := max(k-1, 0); i <= k+int(to.Sub(from)/period)+2; i++ {
			if a, b, ok := check(base.Add(time.Duration(i) * period)); ok {
				return a, b, true
			}
		}
		return time.Time{}, time.Time{}, false
	}
	switch t.get(sp, "repeat_type") {
	case "":
		return check(s0)
	case "daily":
		return periodic(s0, 24*time.Hour)
	case "weekly", "weekdays":
		days := t.get(sp, "days_of_week")
		if t.get(sp, "repeat_type") == "weekdays" {
			days = "12345"
		}
		if days == "" {
			days = strconv.Itoa((int(s0.Weekday())+6)%7 + 1)
		}
		for _, c := range strings.ReplaceAll(days, ",", "") {
			want := time.Weekday((int(c - '0')) % 7) // 1=Mon..7=Sun
			base := s0
			for base.Weekday() != want {
				base = base.Add(24 * time.Hour)
			}
			if a, b, ok := periodic(base, 7*24*time.Hour); ok {
				return a, b, true
			}
		}
	case "monthly", "yearly":
		years, months := 1, 0
		if t.get(sp, "repeat_type") == "monthly" {
			years, months = 0, 1
		}
		n := (from.Year()-s0.Year())*12 + int(from.Month()) - int(s0.Month())
		if years == 1 {
			n = from.Year() - s0.Year()
		}
		for i := max(n-2, 0); i <= n+2+int(to.Sub(from)/(28*24*time.Hour)); i++ {
			if a, b, ok := check(s0.AddDate(i*years, i*months, 0)); ok {
				return a, b, true
			}
		}
	}
	return time.Time{}, time.Time{}, false
}
