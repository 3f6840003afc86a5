package snowsim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// defaultConflictDelay is how long a conflict check runs when
// Options.ConflictDelay is zero.
const defaultConflictDelay = 2 * time.Second

// conflictResult is the outcome of a completed conflict check.
type conflictResult struct {
	LastRun   string
	Conflicts []map[string]any
}

// Worker states (GET /change/worker/{id}): the docs' examples show 1
// Waiting and 3 Complete; 2 In-Progress and 4 Error are ours (the docs list
// the four names and the four codes without pairing them).
const (
	workerWaiting  = "1"
	workerRunning  = "2" // In-Progress
	workerComplete = "3"
	workerError    = "4"
)

// worker is one background job: a conflict check (Type "") or a CI
// association (Type affected or impacted, see affected.go).
type worker struct {
	ID, Change string
	Due        time.Time
	State      string
	Message    string
	// Type, Link, Request, CIs and By describe a CI association; Info,
	// Warnings and Errors are its messages.
	Type, Link, Request    string
	CIs                    []string
	By                     *user
	Info, Warnings, Errors []string
}

func vd(v, d string) map[string]string { return map[string]string{"value": v, "display_value": d} }

// SetConflictDelay changes how long the checks started from now on run
// (see Options.ConflictDelay).
func (s *Sim) SetConflictDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.ConflictDelay = d
}

// conflictDelay is the run time of a new check. Callers hold s.mu.
func (s *Sim) conflictDelay() time.Duration {
	switch d := s.opts.ConflictDelay; {
	case d == 0:
		return defaultConflictDelay
	case d < 0:
		return 0
	default:
		return d
	}
}

// finishWorkers completes the checks of change id (every change when id is
// empty) whose run time has passed: the conflicts are detected now, the
// results replace the change's last ones and its conflict_status and
// conflict_last_run are set. Checks complete when someone looks (the
// worker or the results), not on a timer, so a simulator on
// a fake clock stays deterministic. Callers hold s.mu for writing.
func (s *Sim) finishWorkers(id string) {
	t := s.d.tables["change_request"]
	now := s.now()
	for _, w := range s.d.workers {
		if w.Type != "" || w.State != workerRunning || (id != "" && w.Change != id) || now.Before(w.Due) {
			continue
		}
		row := t.byID[w.Change]
		if row == nil {
			w.State, w.Message = workerError, "the change was deleted"
			continue
		}
		res := s.detectConflicts(row)
		res.LastRun = fmtTime(w.Due)
		s.d.conflicts[w.Change] = res
		w.State = workerComplete
		status := "No Conflict"
		if len(res.Conflicts) > 0 {
			status = "Conflict"
		}
		t.set(row, "conflict_status", status)
		t.set(row, "conflict_last_run", res.LastRun)
		s.touch(t, row, &user{userName: "system"})
		s.markDirty()
	}
}

// runningWorker returns the change's running check, if any.
func (s *Sim) runningWorker(id string) *worker {
	for _, w := range s.d.workers {
		if w.Type == "" && w.Change == id && w.State == workerRunning {
			return w
		}
	}
	return nil
}

// changeConflict implements POST/GET/DELETE /change/{sys_id}/conflict. As
// on a real instance the check runs in the background: POST answers with
// the worker's sys_id at once; the check completes Options.ConflictDelay
// later. GET answers with the running check's status (job_status a code,
// the previous results) or the last completed results; status is
// "Conflict" after any run, even with an empty list (a documented quirk).
func (s *Sim) changeConflict(w http.ResponseWriter, r *http.Request, u *user, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.d.tables["change_request"]
	row := t.byID[id]
	if row == nil {
		writeAPIError(w, errNoRecord())
		return
	}
	s.finishWorkers(id)
	switch r.Method {
	case http.MethodPost:
		if old := s.runningWorker(id); old != nil {
			old.State, old.Message = workerError, "superseded by a later conflict check"
		}
		wk := &worker{ID: newSysID(), Change: id, Due: s.now().Add(s.conflictDelay()), State: workerRunning}
		s.d.workers[wk.ID] = wk
		s.finishWorkers(id) // a zero delay completes at once
		body, _ := json.Marshal(map[string]any{"result": wk.ID})
		writeJSON(w, http.StatusOK, body)
	case http.MethodGet, http.MethodHead:
		out := map[string]any{"status": "Not Run", "last_run": "", "record_count": "0", "job_status": "0", "conflicts": []any{}}
		if res, ok := s.d.conflicts[id]; ok {
			out["status"], out["last_run"], out["job_status"] = "Conflict", res.LastRun, "2"
			out["record_count"] = strconv.Itoa(len(res.Conflicts))
			out["conflicts"] = res.Conflicts
		}
		if s.runningWorker(id) != nil {
			out["status"], out["job_status"] = "Conflict", "1"
		}
		body, _ := json.Marshal(map[string]any{"result": out})
		writeJSON(w, http.StatusOK, body)
	case http.MethodDelete:
		if wk := s.runningWorker(id); wk != nil {
			wk.State, wk.Message = workerError, "canceled"
		}
		delete(s.d.conflicts, id)
		w.WriteHeader(http.StatusNoContent)
	default:
		writeAPIError(w, errMethod())
	}
}

// workerGet implements GET /change/worker/{sys_id}.
func (s *Sim) workerGet(w http.ResponseWriter, id string) {
	s.mu.Lock()
	wk, ok := s.d.workers[id]
	if ok && wk.Type != "" {
		body := s.associationAnswer(wk)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, body)
		return
	}
	if ok {
		s.finishWorkers(wk.Change)
	}
	var state any
	var msgs []string
	if ok {
		label := map[string]string{workerRunning: "In-Progress", workerComplete: "Complete", workerError: "Error"}[wk.State]
		var value any = wk.State
		if s.opts.TypedChangeValues {
			n, _ := strconv.Atoi(wk.State)
			value = float64(n)
		}
		state = map[string]any{"value": value, "display_value": label}
		if wk.Message != "" {
			msgs = append(msgs, wk.Message)
		}
	}
	s.mu.Unlock()
	if !ok {
		writeAPIError(w, errNoRecord())
		return
	}
	if msgs == nil {
		msgs = []string{}
	}
	body, _ := json.Marshal(map[string]any{"result": map[string]any{
		"sys_id":   id,
		"state":    state,
		"messages": map[string][]string{"errorMessages": msgs, "infoMessages": {}, "warningMessages": {}},
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
	res := &conflictResult{LastRun: fmtTime(s.now()), Conflicts: []map[string]any{}}
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
			want := time.Weekday(int(c-'0') % 7) // 1=Mon..7=Sun
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
