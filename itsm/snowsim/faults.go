package snowsim

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Rule says how often a fault fires: on every Nth request (Every) or on a
// percentage of requests (Percent). The zero Rule never fires.
type Rule struct {
	Percent float64 `json:"percent,omitempty"`
	Every   int     `json:"every,omitempty"`
}

// IsZero reports whether the rule never fires.
func (r Rule) IsZero() bool { return r.Percent <= 0 && r.Every <= 0 }

func (r Rule) String() string {
	if r.Every > 0 {
		return "1/" + strconv.Itoa(r.Every)
	}
	return strconv.FormatFloat(r.Percent, 'f', -1, 64) + "%"
}

// Faults are the failures the simulator injects into /api/ requests. They
// never apply to /__admin/ or to /oauth_token.do.
type Faults struct {
	Latency     time.Duration `json:"latency,omitempty"`     // added to every API request
	RateLimit   Rule          `json:"rate_limit"`            // 429 + Retry-After / X-RateLimit-*
	RetryAfter  time.Duration `json:"retry_after,omitempty"` // Retry-After of the 429 (default 1s)
	ServerError Rule          `json:"server_error"`          // 500 JSON envelope
	Unavailable Rule          `json:"unavailable"`           // 503 with an HTML body
	HTML        Rule          `json:"html"`                  // hibernation page, 200 text/html
	Hibernate   bool          `json:"hibernate,omitempty"`   // every API request gets the hibernation page
	Drop        Rule          `json:"drop"`                  // connection closed without an answer
	CreateDrop  Rule          `json:"create_drop"`           // create performed, then connection closed
	// CreateEmpty performs a create and answers 200/201 with an empty
	// result ({"result":{}} and {"result":null} in turn), no sys_id.
	CreateEmpty Rule `json:"create_empty"`
	// CreateDelayMin..CreateDelayMax delay the commit of every create (a
	// slow instance): the record becomes visible only when the delay is
	// over, and it is committed even when the client gave up waiting.
	// Each create draws its delay uniformly from the range.
	CreateDelayMin time.Duration `json:"create_delay_min,omitempty"`
	CreateDelayMax time.Duration `json:"create_delay_max,omitempty"`
}

// String renders the faults in ParseFaults syntax ("" when none).
func (f Faults) String() string {
	var parts []string
	if f.Latency > 0 {
		parts = append(parts, "latency="+f.Latency.String())
	}
	for _, p := range []struct {
		k string
		r Rule
	}{{"429", f.RateLimit}, {"500", f.ServerError}, {"503", f.Unavailable}, {"html", f.HTML}, {"drop", f.Drop}, {"create-drop", f.CreateDrop}, {"create-empty", f.CreateEmpty}} {
		if !p.r.IsZero() {
			parts = append(parts, p.k+"="+p.r.String())
		}
	}
	if f.RetryAfter > 0 {
		parts = append(parts, "retry-after="+f.RetryAfter.String())
	}
	if f.CreateDelayMax > 0 {
		d := "create-delay=" + f.CreateDelayMax.String()
		if f.CreateDelayMin != f.CreateDelayMax {
			d = "create-delay=" + f.CreateDelayMin.String() + "-" + f.CreateDelayMax.String()
		}
		parts = append(parts, d)
	}
	if f.Hibernate {
		parts = append(parts, "hibernate")
	}
	return strings.Join(parts, ",")
}

// ParseFaults parses the --faults flag. The grammar is a comma-separated
// list of terms:
//
//	latency=DURATION      delay every API request (Go duration: 50ms, 1s)
//	429=RATE              rate-limit answer with Retry-After and X-RateLimit-*
//	retry-after=DURATION  Retry-After of the 429 (whole seconds, default 1s)
//	500=RATE              500 with the JSON error envelope
//	503=RATE              503 with an HTML body
//	html=RATE             hibernation HTML page with status 200
//	drop=RATE             close the connection without answering
//	create-drop=RATE      perform a create (POST), then close without answering
//	create-empty=RATE     perform a create, answer with an empty result (no sys_id)
//	create-delay=D[-D2]   commit every create only after D (or a delay drawn
//	                      from D..D2): a slow instance; the record is not
//	                      visible before, and is committed even if the
//	                      client gave up
//	hibernate             every API request gets the hibernation page
//	off | none            no faults (only on its own)
//
// RATE is a percentage ("10%", "2.5%") or every Nth request ("1/20"). An
// empty spec means no faults.
func ParseFaults(spec string) (Faults, error) {
	var f Faults
	spec = strings.TrimSpace(spec)
	if spec == "" || spec == "off" || spec == "none" {
		return f, nil
	}
	for _, raw := range strings.Split(spec, ",") {
		term := strings.TrimSpace(raw)
		if term == "" {
			continue
		}
		key, val, hasVal := strings.Cut(term, "=")
		key, val = strings.ToLower(strings.TrimSpace(key)), strings.TrimSpace(val)
		if key == "hibernate" && !hasVal {
			f.Hibernate = true
			continue
		}
		if !hasVal {
			return Faults{}, fmt.Errorf("snowsim: faults: term %q: want key=value or hibernate", term)
		}
		var err error
		switch key {
		case "latency", "retry-after":
			var d time.Duration
			d, err = time.ParseDuration(val)
			if err != nil {
				if n, aerr := strconv.Atoi(val); aerr == nil && key == "retry-after" {
					d, err = time.Duration(n)*time.Second, nil
				}
			}
			if err == nil && d < 0 {
				err = fmt.Errorf("negative duration")
			}
			if key == "latency" {
				f.Latency = d
			} else {
				f.RetryAfter = d
			}
		case "429":
			f.RateLimit, err = parseRule(val)
		case "500":
			f.ServerError, err = parseRule(val)
		case "503":
			f.Unavailable, err = parseRule(val)
		case "html":
			f.HTML, err = parseRule(val)
		case "drop":
			f.Drop, err = parseRule(val)
		case "create-drop":
			f.CreateDrop, err = parseRule(val)
		case "create-empty":
			f.CreateEmpty, err = parseRule(val)
		case "create-delay":
			f.CreateDelayMin, f.CreateDelayMax, err = parseDelayRange(val)
		default:
			return Faults{}, fmt.Errorf("snowsim: faults: unknown term %q (want latency, 429, retry-after, 500, 503, html, drop, create-drop, create-empty, create-delay, hibernate)", term)
		}
		if err != nil {
			return Faults{}, fmt.Errorf("snowsim: faults: term %q: %w", term, err)
		}
	}
	return f, nil
}

// parseDelayRange parses "1s" or "500ms-3s".
func parseDelayRange(v string) (time.Duration, time.Duration, error) {
	lo, hi, isRange := strings.Cut(v, "-")
	from, err := time.ParseDuration(strings.TrimSpace(lo))
	if err != nil {
		return 0, 0, fmt.Errorf("delay %q: want a duration (2s) or a range (500ms-3s)", v)
	}
	to := from
	if isRange {
		if to, err = time.ParseDuration(strings.TrimSpace(hi)); err != nil {
			return 0, 0, fmt.Errorf("delay %q: want a duration (2s) or a range (500ms-3s)", v)
		}
	}
	if from <= 0 || to < from {
		return 0, 0, fmt.Errorf("delay %q: want positive durations, the first not above the second", v)
	}
	return from, to, nil
}

func parseRule(v string) (Rule, error) {
	if p, ok := strings.CutSuffix(v, "%"); ok {
		n, err := strconv.ParseFloat(p, 64)
		if err != nil || n < 0 || n > 100 {
			return Rule{}, fmt.Errorf("percentage %q must be between 0%% and 100%%", v)
		}
		return Rule{Percent: n}, nil
	}
	if a, b, ok := strings.Cut(v, "/"); ok && strings.TrimSpace(a) == "1" {
		n, err := strconv.Atoi(strings.TrimSpace(b))
		if err != nil || n < 1 {
			return Rule{}, fmt.Errorf("every-Nth %q needs a positive N (1/N)", v)
		}
		return Rule{Every: n}, nil
	}
	return Rule{}, fmt.Errorf("rate %q: want a percentage (10%%) or every Nth request (1/20)", v)
}

// SetFaults replaces the injected faults at run time and resets counters.
func (s *Sim) SetFaults(f Faults) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.faults = f
	s.counts = map[string]uint64{}
}

// Faults returns the faults in effect.
func (s *Sim) Faults() Faults {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.faults
}

// fires advances the rule's counter; callers hold faultMu.
func (s *Sim) fires(name string, r Rule) bool {
	if r.IsZero() {
		return false
	}
	s.counts[name]++
	if r.Every > 0 {
		return s.counts[name]%uint64(r.Every) == 0
	}
	// xorshift64*: deterministic per simulator, no global rand state.
	s.rnd ^= s.rnd >> 12
	s.rnd ^= s.rnd << 25
	s.rnd ^= s.rnd >> 27
	x := s.rnd * 2685821657736338717
	return float64(x>>11)/float64(1<<53)*100 < r.Percent
}

// uniform returns a deterministic number in [0, 1); callers hold faultMu.
func (s *Sim) uniform() float64 {
	s.rnd ^= s.rnd >> 12
	s.rnd ^= s.rnd << 25
	s.rnd ^= s.rnd >> 27
	x := s.rnd * 2685821657736338717
	return float64(x>>11) / float64(1<<53)
}

const rateLimitRuleID = "d2700000000000000000000000000001"

const hibernationPage = `<!DOCTYPE html><html><head><title>Instance Hibernating</title></head>` +
	`<body><h1>Your instance is hibernating</h1><p>Sign in to the site to wake your instance.</p>` +
	`<p><a href="https://developer.servicenow.com">developer.servicenow.com</a></p></body></html>`

// injectFault applies latency and at most one fault. It returns the fault's
// name, or "" when the request should be served normally.
func (s *Sim) injectFault(w http.ResponseWriter, r *http.Request) string {
	s.faultMu.Lock()
	f := s.faults
	kind := ""
	switch {
	case f.Hibernate || s.fires("html", f.HTML):
		kind = "hibernate"
	case s.fires("drop", f.Drop):
		kind = "drop"
	case s.fires("503", f.Unavailable):
		kind = "503"
	case s.fires("500", f.ServerError):
		kind = "500"
	case s.fires("429", f.RateLimit):
		kind = "429"
	}
	s.faultMu.Unlock()
	if f.Latency > 0 {
		select {
		case <-time.After(f.Latency):
		case <-r.Context().Done():
		}
	}
	switch kind {
	case "hibernate":
		w.Header().Set("Content-Type", "text/html;charset=UTF-8")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, hibernationPage)
	case "503":
		w.Header().Set("Content-Type", "text/html;charset=UTF-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1>"+
			"<p>The server is temporarily unable to service your request. Please try again later.</p></body></html>")
	case "500":
		writeAPIError(w, newAPIError(http.StatusInternalServerError, "Internal server error", "An unexpected error occurred (injected fault)"))
	case "429":
		retry := f.RetryAfter
		if retry <= 0 {
			retry = time.Second
		}
		secs := max(int((retry+time.Second-1)/time.Second), 1)
		h := w.Header()
		h.Set("Retry-After", strconv.Itoa(secs))
		h.Set("X-RateLimit-Limit", "100")
		h.Set("X-RateLimit-Reset", strconv.FormatInt(s.now().Add(time.Duration(secs)*time.Second).Unix(), 10))
		h.Set("X-RateLimit-Rule", rateLimitRuleID)
		writeAPIError(w, newAPIError(http.StatusTooManyRequests, "Rate limit exceeded", "Rate limit of 100 requests per hour for Table API exceeded"))
	}
	return kind
}

// createDrop decides whether this create loses its response.
func (s *Sim) createDrop() bool {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.fires("create-drop", s.faults.CreateDrop)
}

// createEmpty decides whether this create is answered with an empty
// result, and which one: {"result":{}} or {"result":null}.
func (s *Sim) createEmpty() (bool, []byte) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if !s.fires("create-empty", s.faults.CreateEmpty) {
		return false, nil
	}
	s.counts["create-empty-answer"]++
	if s.counts["create-empty-answer"]%2 == 0 {
		return true, []byte(`{"result":null}`)
	}
	return true, []byte(`{"result":{}}`)
}

// awaitCommit holds a create back for the injected commit delay. It does
// not stop when the client goes away: like a slow instance, the create is
// committed whether or not anyone still waits for the answer. It reports
// whether a delay applied.
func (s *Sim) awaitCommit() bool {
	s.faultMu.Lock()
	lo, hi := s.faults.CreateDelayMin, s.faults.CreateDelayMax
	d := lo
	if hi > lo {
		d += time.Duration(s.uniform() * float64(hi-lo))
	}
	s.faultMu.Unlock()
	if d <= 0 {
		return false
	}
	time.Sleep(d)
	return true
}
