package exec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/daytwo/daytwo/ops"
)

var (
	_ ops.HealthChecker      = (*Health)(nil)
	_ ops.BatchHealthChecker = (*Health)(nil)
)

// maxBody bounds how much of an HTTP body is read for matching.
const maxBody = 1 << 20

// Health runs an environment's health checks against a target. It is safe
// for concurrent use.
type Health struct {
	env      string
	checks   []*check
	metrics  []*metricCheck  // run during bakes only
	ansible  []*ansibleCheck // run before the others; once per batch in CheckBatch
	interval time.Duration   // between bake rounds: the shortest check interval
	o        options
}

type checkKind int

const (
	kindHTTP checkKind = iota
	kindTCP
	kindCommand
)

// check is one parsed ops.HealthCheck.
type check struct {
	name     string
	kind     checkKind
	attempts int
	interval time.Duration
	timeout  time.Duration

	method string // http
	url    tmpl
	status int
	body   *tmpl
	json   []jsonExpect

	addr tmpl // tcp

	argv argvTemplate // command
}

type jsonExpect struct {
	path string
	want tmpl
}

// NewHealth parses the health checks of environment env. Each check is
// exactly one of http, tcp and command; templates are parsed here, once,
// and errors name the check and the field. WithHTTPClient, WithSleep,
// WithClock and WithDir apply.
func NewHealth(env string, checks []ops.HealthCheck, opts ...Option) (*Health, error) {
	h := &Health{env: env, o: newOptions(opts)}
	for i, hc := range checks {
		if hc.Metrics != nil || hc.Prometheus != nil {
			m, err := parseMetric(fmt.Sprintf("health[%d]", i), hc, h.o)
			if err != nil {
				return nil, fmt.Errorf("exec: environment %s: %w", env, err)
			}
			h.metrics = append(h.metrics, m)
			continue
		}
		if hc.Ansible != nil {
			c, err := parseAnsibleCheck(env, fmt.Sprintf("health[%d]", i), hc, opts)
			if err != nil {
				return nil, fmt.Errorf("exec: environment %s: %w", env, err)
			}
			h.ansible = append(h.ansible, c)
			continue
		}
		c, err := parseCheck(fmt.Sprintf("health[%d]", i), hc)
		if err != nil {
			return nil, fmt.Errorf("exec: environment %s: %w", env, err)
		}
		h.checks = append(h.checks, c)
		if h.interval == 0 || c.interval < h.interval {
			h.interval = c.interval
		}
	}
	if h.interval == 0 {
		h.interval = DefaultCheckInterval
	}
	return h, nil
}

func parseCheck(key string, hc ops.HealthCheck) (*check, error) {
	c := &check{name: hc.Name, attempts: 1 + hc.Retries, interval: hc.Interval, timeout: hc.Timeout}
	if hc.Retries < 0 {
		return nil, fmt.Errorf("%s.retries: %d is negative", key, hc.Retries)
	}
	if c.interval <= 0 {
		c.interval = DefaultCheckInterval
	}
	if c.timeout <= 0 {
		c.timeout = DefaultCheckTimeout
	}
	kinds := 0
	var err error
	if h := hc.HTTP; h != nil {
		kinds++
		c.kind = kindHTTP
		c.method = strings.ToUpper(h.Method)
		if c.method == "" {
			c.method = http.MethodGet
		}
		c.status = h.ExpectStatus
		if c.status == 0 {
			c.status = http.StatusOK
		}
		if c.url, err = parseTmpl(key+".http.url", h.URL); err != nil {
			return nil, fmt.Errorf("%s.http.url: %w", key, err)
		}
		if h.ExpectBody != "" {
			t, err := parseTmpl(key+".http.expect_body", h.ExpectBody)
			if err != nil {
				return nil, fmt.Errorf("%s.http.expect_body: %w", key, err)
			}
			c.body = &t
		}
		for _, p := range slices.Sorted(maps.Keys(h.ExpectJSON)) {
			k := key + ".http.expect_json." + p
			if p == "" || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") || strings.Contains(p, "..") {
				return nil, fmt.Errorf("%s: %q is not a dotted path such as build.version", k, p)
			}
			t, err := parseTmpl(k, h.ExpectJSON[p])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			c.json = append(c.json, jsonExpect{path: p, want: t})
		}
	}
	if hc.TCP != nil {
		kinds++
		c.kind = kindTCP
		if c.addr, err = parseTmpl(key+".tcp.address", hc.TCP.Address); err != nil {
			return nil, fmt.Errorf("%s.tcp.address: %w", key, err)
		}
	}
	if len(hc.Command) > 0 {
		kinds++
		c.kind = kindCommand
		if c.argv, err = parseArgv(key+".command", hc.Command); err != nil {
			return nil, err
		}
	}
	if kinds != 1 {
		return nil, fmt.Errorf("%s: set exactly one of http, tcp and command", key)
	}
	return c, nil
}

// Check runs every check once, in order, each with its retries, and
// returns the first failure. The evidence joins what each check saw, e.g.
// "http GET http://127.0.0.1:18091/healthz → 200 in 3ms; tcp
// 127.0.0.1:18091 ok in 1ms". Every failed attempt is logged to log.
func (h *Health) Check(ctx context.Context, req ops.StepRequest, log ops.LogSink) (string, error) {
	ev, err := h.check(ctx, req, log)
	if err != nil {
		return "", fmt.Errorf("exec: health of %s: %w", req.Target.Name, err)
	}
	return ev, nil
}

// Bake keeps checking: it runs Check every interval (the shortest interval
// among the checks) until d has passed, a last time at the end, and fails
// on the first failed round (each check in a round keeps its retries, so a
// single dropped request does not fail a bake). The evidence counts the
// rounds and repeats the last round's.
//
// Metric checks (metrics, prometheus) run only here, alongside the rounds,
// each for its own count of intervals (so a bake lasts at least that
// long); their verdicts join the evidence, and a failed or inconclusive
// verdict fails the bake.
func (h *Health) Bake(ctx context.Context, req ops.StepRequest, d time.Duration, log ops.LogSink) (string, error) {
	if len(h.metrics) == 0 {
		return h.bakeRounds(ctx, req, d, log)
	}
	sl := newStepLog(log, req.Target.Name)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type res struct {
		ev  string
		err error
	}
	results := make([]res, 1+len(h.metrics))
	var wg sync.WaitGroup
	wg.Go(func() {
		ev, err := h.bakeRounds(ctx, req, d, log)
		results[0] = res{ev, err}
		if err != nil {
			cancel()
		}
	})
	for i, m := range h.metrics {
		wg.Go(func() {
			v, err := h.analyse(ctx, m, req, d, sl)
			results[i+1] = res{v.String(), err}
			if err != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	// The first failure cancels the others: report the failures, and a
	// cancellation only when nothing failed (the bake itself was stopped).
	var evs []string
	var failed, canceled []error
	for _, r := range results {
		switch {
		case r.err == nil:
			evs = append(evs, r.ev)
		case errors.Is(r.err, context.Canceled):
			canceled = append(canceled, r.err)
		default:
			failed = append(failed, r.err)
		}
	}
	if len(failed) == 0 && len(canceled) > 0 {
		failed = canceled[:1]
	}
	if len(failed) > 0 {
		return "", fmt.Errorf("exec: bake of %s: %w", req.Target.Name, errors.Join(failed...))
	}
	return strings.Join(evs, "; "), nil
}

func (h *Health) bakeRounds(ctx context.Context, req ops.StepRequest, d time.Duration, log ops.LogSink) (string, error) {
	start := h.o.now()
	deadline := start.Add(d)
	for round := 1; ; round++ {
		// Ansible checks ran at the health step (once per batch); a
		// round repeats the others.
		ev, err := h.checkRest(ctx, req, log)
		if err != nil {
			return "", fmt.Errorf("exec: bake of %s: round %d, %s into %s: %w",
				req.Target.Name, round, fmtDur(h.o.now().Sub(start)), fmtTimeout(d), err)
		}
		left := deadline.Sub(h.o.now())
		if left <= 0 {
			return fmt.Sprintf("bake %s: %d rounds ok; last: %s", fmtTimeout(d), round, ev), nil
		}
		if err := h.o.sleep(ctx, min(h.interval, left)); err != nil {
			return "", fmt.Errorf("exec: bake of %s: %w", req.Target.Name, err)
		}
	}
}

func validVersions(req ops.StepRequest) error {
	for _, v := range []string{req.Version, req.PreviousVersion} {
		if v != "" {
			if err := ops.ValidateVersion(v); err != nil {
				return err
			}
		}
	}
	return nil
}

func (h *Health) check(ctx context.Context, req ops.StepRequest, log ops.LogSink) (string, error) {
	if err := validVersions(req); err != nil {
		return "", err
	}
	var evidence []string
	for _, c := range h.ansible {
		ev, err := c.run(ctx, []ops.StepRequest{req}, log)
		if err[req.Target.Name] != nil {
			return "", err[req.Target.Name]
		}
		evidence = append(evidence, ev)
	}
	rest, err := h.checkRest(ctx, req, log)
	if err != nil {
		return "", err
	}
	if rest != "" {
		evidence = append(evidence, rest)
	}
	return strings.Join(evidence, "; "), nil
}

// checkRest runs the checks other than the Ansible ones ("" when there
// are only Ansible ones).
func (h *Health) checkRest(ctx context.Context, req ops.StepRequest, log ops.LogSink) (string, error) {
	if err := validVersions(req); err != nil {
		return "", err
	}
	if len(h.checks) == 0 {
		if len(h.ansible) > 0 {
			return "", nil
		}
		if len(h.metrics) > 0 {
			return "metric checks run during the bake", nil
		}
		return "no health checks configured", nil
	}
	d := newData(h.env, req)
	sl := newStepLog(log, req.Target.Name)
	evidence := make([]string, 0, len(h.checks))
	for _, c := range h.checks {
		ev, err := h.retry(ctx, c, d, sl)
		if err != nil {
			if c.name != "" {
				return "", fmt.Errorf("check %q: %w", c.name, err)
			}
			return "", err
		}
		if c.name != "" {
			ev = c.name + ": " + ev
		}
		evidence = append(evidence, ev)
	}
	return strings.Join(evidence, "; "), nil
}

// retry runs one check up to its number of attempts, interval apart.
func (h *Health) retry(ctx context.Context, c *check, d *TemplateData, sl *stepLog) (string, error) {
	for attempt := 1; ; attempt++ {
		ev, err := h.attempt(ctx, c, d, sl)
		if err == nil {
			if attempt > 1 {
				ev += fmt.Sprintf(" (attempt %d of %d)", attempt, c.attempts)
			}
			return ev, nil
		}
		if c.attempts > 1 {
			err = fmt.Errorf("%w (attempt %d of %d)", err, attempt, c.attempts)
		}
		if attempt >= c.attempts || ctx.Err() != nil {
			sl.emit("daytwo", "health: "+err.Error())
			return "", err
		}
		sl.emit("daytwo", "health: "+err.Error()+"; retrying in "+fmtTimeout(c.interval))
		if err := h.o.sleep(ctx, c.interval); err != nil {
			return "", err
		}
	}
}

func (h *Health) attempt(ctx context.Context, c *check, d *TemplateData, sl *stepLog) (string, error) {
	if c.kind == kindCommand {
		return h.command(ctx, c, d, sl)
	}
	// The cause lets http and tcp say "timed out after 2s" rather than
	// "context deadline exceeded".
	actx, cancel := context.WithTimeoutCause(ctx, c.timeout, &TimeoutError{After: c.timeout})
	defer cancel()
	if c.kind == kindHTTP {
		return h.http(actx, c, d)
	}
	return h.tcp(actx, c, d)
}

// causeOr prefers why ctx ended, if it did, over the error it produced.
func causeOr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	return err
}

func (h *Health) http(ctx context.Context, c *check, d *TemplateData) (string, error) {
	raw, err := c.url.render(d)
	if err != nil {
		return "", fmt.Errorf("http url: %w", err)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("http url %q: want an absolute http:// or https:// URL", raw)
	}
	what := "http " + c.method + " " + u.Redacted()
	req, err := http.NewRequestWithContext(ctx, c.method, raw, nil)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	start := h.o.now()
	resp, err := h.o.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, causeOr(ctx, unwrapURLError(err)))
	}
	defer resp.Body.Close()
	var body []byte
	if c.body != nil || len(c.json) > 0 {
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
	} else {
		// Drain a little so the connection can be reused.
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	}
	if err != nil {
		return "", fmt.Errorf("%s → %d: read body: %w", what, resp.StatusCode, causeOr(ctx, err))
	}
	ev := fmt.Sprintf("%s → %d in %s", what, resp.StatusCode, fmtDur(h.o.now().Sub(start)))
	// Redirects follow the client's policy; the evidence says where the
	// answer really came from, and says so loudly when it is another host.
	if final := resp.Request.URL; final.String() != u.String() {
		if final.Host != u.Host {
			ev += " (redirected off-host to " + final.Redacted() + ")"
		} else {
			ev += " (redirected to " + final.Redacted() + ")"
		}
	}
	if resp.StatusCode != c.status {
		return "", fmt.Errorf("%s, want %d", ev, c.status)
	}
	if c.body != nil {
		want, err := c.body.render(d)
		if err != nil {
			return "", fmt.Errorf("%s: expect_body: %w", ev, err)
		}
		if !strings.Contains(string(body), want) {
			return "", fmt.Errorf("%s: body does not contain %q (body: %s)", ev, want, snippet(body))
		}
	}
	if len(c.json) > 0 {
		if err := matchJSON(body, c.json, d); err != nil {
			return "", fmt.Errorf("%s: %w", ev, err)
		}
	}
	return ev, nil
}

func (h *Health) tcp(ctx context.Context, c *check, d *TemplateData) (string, error) {
	addr, err := c.addr.render(d)
	if err != nil {
		return "", fmt.Errorf("tcp address: %w", err)
	}
	start := h.o.now()
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) {
			err = oe.Err
		}
		return "", fmt.Errorf("tcp %s: %w", addr, causeOr(ctx, err))
	}
	_ = conn.Close() // only reachability matters
	return fmt.Sprintf("tcp %s ok in %s", addr, fmtDur(h.o.now().Sub(start))), nil
}

func (h *Health) command(ctx context.Context, c *check, d *TemplateData, sl *stepLog) (string, error) {
	argv, err := c.argv.render(d)
	if err != nil {
		return "", err
	}
	env, err := stepEnv(nil, d)
	if err != nil {
		return "", err
	}
	start := h.o.now()
	p := proc{argv: argv, env: env, dir: h.o.dir, timeout: c.timeout, log: sl}
	if err := p.forStep(d.step).run(ctx); err != nil {
		return "", fmt.Errorf("command %w", err)
	}
	return fmt.Sprintf("command %s ok in %s", argv[0], fmtDur(h.o.now().Sub(start))), nil
}

// matchJSON compares the dotted paths of a JSON body with their rendered
// expected values.
func matchJSON(body []byte, want []jsonExpect, d *TemplateData) error {
	doc, err := decodeJSON(body)
	if err != nil {
		return fmt.Errorf("body is not JSON: %w (body: %s)", err, snippet(body))
	}
	for _, e := range want {
		w, err := e.want.render(d)
		if err != nil {
			return fmt.Errorf("expect_json.%s: %w", e.path, err)
		}
		v, ok := lookupJSON(doc, e.path)
		if !ok {
			return fmt.Errorf("json %s is missing, want %q", e.path, w)
		}
		if got := jsonString(v); got != w {
			return fmt.Errorf("json %s = %q, want %q", e.path, got, w)
		}
	}
	return nil
}

func decodeJSON(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if rest := bytes.TrimSpace(body[dec.InputOffset():]); len(rest) > 0 {
		return nil, fmt.Errorf("unexpected %s after the JSON value", snippet(rest))
	}
	return doc, nil
}

// lookupJSON follows a dotted path through objects; a numeric segment
// indexes an array ("items.0.version").
func lookupJSON(v any, path string) (any, bool) {
	for seg := range strings.SplitSeq(path, ".") {
		switch n := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = n[seg]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(n) {
				return nil, false
			}
			v = n[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// jsonString renders a JSON value for comparison: strings bare, numbers as
// written, anything else as compact JSON.
func jsonString(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case json.Number:
		return s.String()
	}
	b, _ := json.Marshal(v) // decoded values always marshal
	return string(b)
}

// unwrapURLError drops the *url.Error wrapper, whose message repeats the
// method and URL the caller already names.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// snippet quotes the start of a body for an error message.
func snippet(b []byte) string {
	const n = 120
	if len(b) > n {
		return strconv.Quote(strings.ToValidUTF8(string(b[:n]), "")) + "…"
	}
	return strconv.Quote(string(b))
}

// ansibleCheck is a health check run by a playbook (health[].ansible).
type ansibleCheck struct {
	name string
	a    *Ansible
}

func parseAnsibleCheck(env, key string, hc ops.HealthCheck, opts []Option) (*ansibleCheck, error) {
	if hc.HTTP != nil || hc.TCP != nil || len(hc.Command) > 0 || hc.Metrics != nil || hc.Prometheus != nil {
		return nil, fmt.Errorf("%s: set exactly one of http, tcp, command, ansible, metrics and prometheus", key)
	}
	as := *hc.Ansible
	if as.RollbackPlaybook != "" {
		return nil, fmt.Errorf("%s.ansible.rollback_playbook: a health check has no rollback", key)
	}
	// retries does not apply: a check that needs them puts until/retries
	// on its task, so one run serves the whole batch.
	// timeout is the ansible block's (default: a step's); the check's own
	// timeout bounds one attempt of the quick kinds and is too short here.
	a, err := NewAnsible(env, ops.DeploySpec{Ansible: &as}, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s.ansible: %w", key, err)
	}
	return &ansibleCheck{name: hc.Name, a: a}, nil
}

// run runs the check's playbook once over reqs' targets; the evidence
// names the playbook and the hosts it passed on.
func (c *ansibleCheck) run(ctx context.Context, reqs []ops.StepRequest, log ops.LogSink) (string, map[string]error) {
	errs := c.a.run(ctx, c.a.playbook, "health check", reqs, log)
	if c.name != "" {
		for k, err := range errs {
			if err != nil {
				errs[k] = fmt.Errorf("check %q: %w", c.name, err)
			}
		}
	}
	ev := fmt.Sprintf("ansible %s ok", c.a.playbook)
	if len(reqs) > 1 {
		ev += fmt.Sprintf(" (one run over the batch's %d hosts)", len(reqs))
	}
	if c.name != "" {
		ev = c.name + ": " + ev
	}
	return ev, errs
}

// ChecksByBatch reports whether the checks include Ansible ones, which
// CheckBatch runs once per batch.
func (h *Health) ChecksByBatch() bool { return len(h.ansible) > 0 }

// CheckBatch checks the targets of reqs, which share one release: each
// Ansible check runs once over all of their hosts, then the other checks
// run per target (in parallel) on the hosts that passed.
func (h *Health) CheckBatch(ctx context.Context, reqs []ops.StepRequest, log ops.LogSink) (map[string]string, map[string]error) {
	evidence := make(map[string][]string, len(reqs))
	errs := make(map[string]error, len(reqs))
	var live []ops.StepRequest
	for _, r := range reqs {
		if err := validVersions(r); err != nil {
			errs[r.Target.Name] = fmt.Errorf("exec: health of %s: %w", r.Target.Name, err)
			continue
		}
		live = append(live, r)
	}
	for _, c := range h.ansible {
		ev, res := c.run(ctx, live, log)
		var next []ops.StepRequest
		for _, r := range live {
			name := r.Target.Name
			err, ok := res[name]
			if !ok {
				err = fmt.Errorf("exec: ansible reported nothing for %s", name)
			}
			if err != nil {
				errs[name] = fmt.Errorf("exec: health of %s: %w", name, err)
				continue
			}
			evidence[name] = append(evidence[name], ev)
			next = append(next, r)
		}
		live = next
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, r := range live {
		wg.Go(func() {
			ev, err := h.checkRest(ctx, r, log)
			mu.Lock()
			defer mu.Unlock()
			name := r.Target.Name
			if err != nil {
				errs[name] = fmt.Errorf("exec: health of %s: %w", name, err)
				return
			}
			if ev != "" {
				evidence[name] = append(evidence[name], ev)
			}
			errs[name] = nil
		})
	}
	wg.Wait()
	out := make(map[string]string, len(evidence))
	for k, v := range evidence {
		out[k] = strings.Join(v, "; ")
	}
	return out, errs
}
