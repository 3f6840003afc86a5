package snowsim

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// requestLogSize is the capacity of the request log ring buffer.
const requestLogSize = 2000

// RequestLogEntry is one served request, as listed by GET /__admin/requests.
type RequestLogEntry struct {
	Time       time.Time `json:"time"`
	Method     string    `json:"method"`
	Path       string    `json:"path"`
	Query      string    `json:"query,omitempty"`
	Status     int       `json:"status"`
	User       string    `json:"user,omitempty"`
	Fault      string    `json:"fault,omitempty"`
	DurationMS float64   `json:"duration_ms"`
}

func (s *Sim) record(e RequestLogEntry) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if len(s.reqLog) < requestLogSize {
		s.reqLog = append(s.reqLog, e)
		return
	}
	s.reqLog[s.logPos] = e
	s.logPos = (s.logPos + 1) % requestLogSize
}

// Requests returns the request log, oldest first.
func (s *Sim) Requests() []RequestLogEntry {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	out := make([]RequestLogEntry, 0, len(s.reqLog))
	out = append(out, s.reqLog[s.logPos:]...)
	return append(out, s.reqLog[:s.logPos]...)
}

// Reset reseeds the instance: all records, tokens and pending automatic
// approvals are discarded; faults stay as they are.
func (s *Sim) Reset() error {
	d, err := s.loadSeed()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.d = d
	s.pending = nil
	s.assocRunning = 0
	s.markDirty()
	s.mu.Unlock()
	s.logMu.Lock()
	s.reqLog, s.logPos = nil, 0
	s.logMu.Unlock()
	return nil
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func writeAdmin(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encode"}`)
	}
	writeJSON(w, status, b)
}

func adminError(w http.ResponseWriter, status int, msg string) {
	writeAdmin(w, status, map[string]string{"error": msg})
}

// serveAdmin implements the loopback-only /__admin/ endpoints:
//
//	GET      /__admin/state[?table=NAME]  state dump (all tables or one)
//	GET      /__admin/requests[?limit=N]  request log, oldest first
//	GET      /__admin/faults              current faults (spec and JSON)
//	PUT|POST /__admin/faults              set faults: spec text, {"spec":"..."} or Faults JSON
//	POST     /__admin/approve             {"number","user","comment"}
//	POST     /__admin/reject              {"number","user","comment"}
//	POST     /__admin/reset               reseed
//	GET      /__admin/users               seed users
func (s *Sim) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if !isLoopback(r.RemoteAddr) {
		adminError(w, http.StatusForbidden, "admin endpoints are loopback only")
		return
	}
	route := strings.TrimPrefix(r.URL.Path, "/__admin/")
	switch {
	case route == "state" && r.Method == http.MethodGet:
		s.mu.RLock()
		st := s.snapshot(false)
		s.mu.RUnlock()
		if name := r.URL.Query().Get("table"); name != "" {
			rows, ok := st.Tables[name]
			if !ok {
				adminError(w, http.StatusNotFound, "no table "+name)
				return
			}
			writeAdmin(w, http.StatusOK, map[string]any{"table": name, "records": rows})
			return
		}
		writeAdmin(w, http.StatusOK, map[string]any{
			"saved_at": st.SavedAt, "counters": st.Counters, "tables": st.Tables,
			"faults": s.Faults().String(),
		})
	case route == "requests" && r.Method == http.MethodGet:
		reqs := s.Requests()
		if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n >= 0 && n < len(reqs) {
			reqs = reqs[len(reqs)-n:]
		}
		writeAdmin(w, http.StatusOK, map[string]any{"requests": reqs})
	case route == "faults" && r.Method == http.MethodGet:
		f := s.Faults()
		writeAdmin(w, http.StatusOK, map[string]any{"spec": f.String(), "faults": f})
	case route == "faults" && (r.Method == http.MethodPut || r.Method == http.MethodPost):
		f, err := parseFaultsBody(r)
		if err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.SetFaults(f)
		writeAdmin(w, http.StatusOK, map[string]any{"spec": f.String(), "faults": f})
	case (route == "approve" || route == "reject") && r.Method == http.MethodPost:
		var body struct{ Number, User, Comment string }
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil || body.Number == "" || body.User == "" {
			adminError(w, http.StatusBadRequest, `want {"number":"CHG...","user":"cab.manager","comment":"..."}`)
			return
		}
		fn := s.Approve
		if route == "reject" {
			fn = s.Reject
		}
		if err := fn(r.Context(), body.Number, body.User, body.Comment); err != nil {
			status := http.StatusBadRequest
			if errors.Is(err, ErrNotFound) {
				status = http.StatusNotFound
			}
			adminError(w, status, err.Error())
			return
		}
		s.mu.RLock()
		ct := s.d.tables["change_request"]
		chg := ct.find("number", body.Number)
		var m map[string]string
		if chg != nil {
			m = ct.toMap(chg, false)
		}
		s.mu.RUnlock()
		writeAdmin(w, http.StatusOK, map[string]any{"change": m})
	case route == "reset" && r.Method == http.MethodPost:
		if err := s.Reset(); err != nil {
			adminError(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeAdmin(w, http.StatusOK, map[string]string{"status": "reset"})
	case route == "users" && r.Method == http.MethodGet:
		writeAdmin(w, http.StatusOK, map[string]any{"users": s.SeedUsers()})
	default:
		adminError(w, http.StatusNotFound, "unknown admin endpoint "+r.Method+" "+r.URL.Path)
	}
}

// parseFaultsBody accepts a spec string, {"spec": "..."} or Faults JSON.
func parseFaultsBody(r *http.Request) (Faults, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		return Faults{}, err
	}
	text := strings.TrimSpace(string(data))
	if !strings.HasPrefix(text, "{") {
		return ParseFaults(text)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return Faults{}, err
	}
	if raw, ok := probe["spec"]; ok {
		var spec string
		if err := json.Unmarshal(raw, &spec); err != nil {
			return Faults{}, err
		}
		return ParseFaults(spec)
	}
	var f Faults
	err = json.Unmarshal(data, &f)
	return f, err
}
