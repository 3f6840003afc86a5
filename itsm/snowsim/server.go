package snowsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/daytwo/daytwo/fixtures"
)

// Options configures a simulator.
type Options struct {
	// Seed is the seed data; nil means the embedded fixtures.ServiceNow
	// (sub-directory "servicenow"). Use os.DirFS for a --seed directory.
	Seed fs.FS
	// StatePath, when set, is loaded at start if it exists and written
	// atomically (temp file + rename) shortly after writes and on Close.
	StatePath string
	// Faults are the injected faults (see ParseFaults).
	Faults Faults
	// LenientTransitions answers illegal state moves with 200 and the state
	// unchanged instead of the 403 business-rule envelope.
	LenientTransitions bool
	// AutoApprove configures unattended approvals; the zero value is off.
	AutoApprove AutoApprove
	// TypedChangeValues makes the Change Management API return typed
	// values (JSON booleans and numbers such as 3.0) as in the documented
	// samples instead of strings.
	TypedChangeValues bool
	// ConflictDelay is how long a conflict check runs in the background
	// (POST /change/{id}/conflict answers at once with the worker); zero
	// means 2s, negative means it completes at once.
	ConflictDelay time.Duration
	// AssociateDelay is how long a CI association runs in the background
	// (POST /change/{id}/ci answers at once with the worker, Waiting);
	// zero means 1s, negative means it completes at once.
	AssociateDelay time.Duration
	// NoChangeCIEndpoint makes the instance an older release whose Change
	// Management API has no /change/{id}/ci: it answers there as on any
	// path it does not serve (400 "Requested URI does not represent any
	// resource"). The task_ci table is there either way.
	NoChangeCIEndpoint bool
	// Clock is the time source; nil means time.Now.
	Clock func() time.Time
	// Logger receives one line per request and state events; nil discards.
	Logger *slog.Logger
}

// AutoApprove makes changes move without a human approver, for demos.
type AutoApprove struct {
	// Standard moves a new standard change (pre-approved) to Scheduled at once.
	Standard bool
	// NormalAfter, when positive, approves pending approvals of normal and
	// emergency changes this long after they were requested.
	NormalAfter time.Duration
	// NormalApprover is the user who approves; when that user is not an
	// approver of a pending approval, a member of "CAB Approval" who is
	// approves instead, and failing that the approver named on the row.
	NormalApprover string
}

// Sim is an in-memory ServiceNow instance. It implements http.Handler and is
// safe for concurrent use.
type Sim struct {
	opts  Options
	seed  fs.FS
	log   *slog.Logger
	clock func() time.Time

	mu      sync.RWMutex // guards d, pending, assocRunning
	d       *db
	pending []autoTask
	// assocRunning counts CI association workers not yet run.
	assocRunning int

	faultMu sync.Mutex
	faults  Faults
	counts  map[string]uint64
	rnd     uint64

	logMu  sync.Mutex
	reqLog []RequestLogEntry
	logPos int

	persistMu    sync.Mutex // serialises state file writes
	timerMu      sync.Mutex
	autoTimer    *time.Timer
	persistTimer *time.Timer
	closed       bool
}

// user is the authenticated caller of one request.
type user struct {
	id, userName, name string
	roles              []string
}

func (u *user) has(roles ...string) bool {
	for _, r := range roles {
		if slices.Contains(u.roles, r) {
			return true
		}
	}
	return false
}

func (u *user) admin() bool { return u.has("admin") }

// New builds a simulator from its options: it loads StatePath when that
// file exists and the seed data otherwise.
func New(opts Options) (*Sim, error) {
	s := &Sim{
		opts: opts, seed: opts.Seed, log: opts.Logger, clock: opts.Clock, faults: opts.Faults,
		counts: map[string]uint64{}, rnd: 0x9e3779b97f4a7c15,
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.seed == nil {
		sub, err := fs.Sub(fixtures.ServiceNow, "servicenow")
		if err != nil {
			return nil, fmt.Errorf("snowsim: embedded seed: %w", err)
		}
		s.seed = sub
	}
	d, err := s.loadSeed()
	if err != nil {
		return nil, err
	}
	s.d = d
	if opts.StatePath != "" {
		loaded, err := s.loadState(opts.StatePath)
		if err != nil {
			return nil, err
		}
		if loaded != nil {
			s.d = loaded
		}
	}
	return s, nil
}

func (s *Sim) now() time.Time { return s.clock().UTC() }

// Close stops the timers and writes the state file one last time.
func (s *Sim) Close() error {
	s.timerMu.Lock()
	if s.closed {
		s.timerMu.Unlock()
		return nil
	}
	s.closed = true
	if s.autoTimer != nil {
		s.autoTimer.Stop()
	}
	if s.persistTimer != nil {
		s.persistTimer.Stop()
	}
	s.timerMu.Unlock()
	if s.opts.StatePath == "" {
		return nil
	}
	return s.persist()
}

// ServeHTTP routes a request to the admin, OAuth or REST API handlers.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusWriter{ResponseWriter: w}
	entry := RequestLogEntry{Time: s.now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery}
	defer func() {
		entry.Status = rec.status
		entry.DurationMS = float64(time.Since(start).Microseconds()) / 1000
		if v := recover(); v != nil {
			entry.Status = 0
			entry.Fault = "dropped"
			s.record(entry)
			panic(v)
		}
		s.record(entry)
		s.log.Debug("snowsim request", "method", entry.Method, "path", entry.Path, "status", entry.Status, "user", entry.User)
	}()
	if m := r.Header.Get("X-Http-Method-Override"); m != "" && r.Method == http.MethodPost {
		r.Method = strings.ToUpper(m)
		entry.Method = r.Method
	}
	path := r.URL.Path
	switch {
	case strings.HasPrefix(path, "/__admin/"):
		s.serveAdmin(rec, r)
	case path == "/oauth_token.do":
		s.serveOAuth(rec, r)
	case strings.HasPrefix(path, "/api/"):
		s.runDue()
		s.runAssociations()
		if f := s.injectFault(rec, r); f != "" {
			entry.Fault = f
			if f == "drop" {
				dropConnection(rec)
			}
			return
		}
		u, aerr := s.authenticate(r)
		if aerr != nil {
			writeAPIError(rec, aerr)
			return
		}
		entry.User = u.userName
		if fault := s.serveAPI(rec, r, u); fault != "" {
			entry.Fault = fault
		}
	default:
		rec.Header().Set("Content-Type", "text/html;charset=UTF-8")
		rec.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(rec, "<html><body><h1>snowsim</h1><p>ServiceNow simulator: use /api/now/table/{table}.</p></body></html>")
	}
}

// serveAPI dispatches /api/... and returns a fault label if one applied.
func (s *Sim) serveAPI(w http.ResponseWriter, r *http.Request, u *user) string {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	// parts[0] == "api"
	if len(parts) >= 3 && parts[1] == "now" {
		rest := parts[2:]
		version := ""
		if rest[0] == "v1" || rest[0] == "v2" {
			version, rest = rest[0], rest[1:]
		}
		if len(rest) > 0 {
			switch rest[0] {
			case "table":
				if len(rest) >= 2 && len(rest) <= 3 {
					return s.serveTable(w, r, u, version, rest[1:])
				}
			case "attachment":
				s.serveAttachment(w, r, u, rest[1:])
				return ""
			case "stats":
				if len(rest) == 2 {
					s.serveStats(w, r, u, rest[1])
					return ""
				}
			}
		}
	}
	if len(parts) >= 3 && parts[1] == "sn_chg_rest" {
		rest := parts[2:]
		if rest[0] == "v1" {
			rest = rest[1:]
		}
		if len(rest) > 0 && rest[0] == "change" {
			return s.serveChange(w, r, u, rest[1:])
		}
	}
	writeAPIError(w, errNoResource())
	return ""
}

// statusWriter remembers the status code for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// dropConnection closes the client connection without an answer.
func dropConnection(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = conn.Close()
		return
	}
	panic(http.ErrAbortHandler)
}

// shutdownGrace bounds how long Close waits for in-flight requests.
const shutdownGrace = 2 * time.Second

// Server is a Sim served over HTTP on a listener.
type Server struct {
	sim  *Sim
	srv  *http.Server
	ln   net.Listener
	url  string
	once sync.Once
	err  error
	done chan struct{}
}

// Listen builds a Sim and serves it on addr (":0" picks a free port). It
// returns once the listener is bound; the server stops when ctx is
// cancelled or Close is called.
func Listen(ctx context.Context, addr string, opts Options) (*Server, error) {
	sim, err := New(opts)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		_ = sim.Close()
		return nil, fmt.Errorf("snowsim: listen %s: %w", addr, err)
	}
	s := &Server{
		sim:  sim,
		ln:   ln,
		url:  "http://" + ln.Addr().String(),
		done: make(chan struct{}),
		srv: &http.Server{
			Handler:           sim,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(sim.log.Handler(), slog.LevelDebug),
		},
	}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			sim.log.Error("snowsim serve", "err", err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = s.Close()
		case <-s.done:
		}
	}()
	return s, nil
}

// URL is the base URL, e.g. http://127.0.0.1:8089.
func (s *Server) URL() string { return s.url }

// Sim returns the simulator behind the server.
func (s *Server) Sim() *Sim { return s.sim }

// Close shuts the server down gracefully and closes the simulator.
func (s *Server) Close() error {
	s.once.Do(func() {
		close(s.done)
		// Shutdown waits for in-flight requests; connections that were
		// dialled but never used count as busy for 5 s in net/http, so
		// after a short grace period the rest are closed hard.
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		err := s.srv.Shutdown(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			err = s.srv.Close()
		}
		s.err = errors.Join(err, s.sim.Close())
	})
	return s.err
}
