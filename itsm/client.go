package itsm

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-resty/resty/v2"
)

// Client is a ServiceNow client. It is safe for concurrent use. Build it once
// with New and share it.
type Client struct {
	cfg    Config
	rc     *resty.Client
	log    *slog.Logger
	now    func() time.Time
	sleep  func(context.Context, time.Duration) error
	hook   func(RequestInfo)
	jitter func(time.Duration) time.Duration
	tokens *tokenSource // nil with basic auth

	// changeAPI remembers whether the Change Management API plugin answers
	// (changeAPIUnknown, changeAPIPresent, changeAPIAbsent), so an instance
	// without it is probed once, not on every create.
	changeAPI atomic.Int32
	// ciAPI remembers, the same way, whether /change/{id}/ci answers
	// (older releases have the API without it).
	ciAPI atomic.Int32

	// serverSkew is the instance clock minus ours (from the Date header), in
	// nanoseconds; the mirror's frozen upper bound uses the instance clock.
	serverSkew atomic.Int64
	skewKnown  atomic.Bool

	// tokenSecrets holds the current OAuth tokens for redaction, readable
	// without the token lock.
	tokenSecrets atomic.Pointer[[]string]

	stats statsCounters
	cache lookupCache
}

const (
	changeAPIUnknown int32 = iota
	changeAPIPresent
	changeAPIAbsent
)

// New builds a client from cfg. It validates cfg and reports every problem
// by its config key; secrets are never part of the error.
func New(cfg Config, opts ...Option) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.clock == nil {
		o.clock = time.Now
	}
	if o.sleep == nil {
		o.sleep = sleepCtx
	}
	if o.jitter == nil {
		o.jitter = func(max time.Duration) time.Duration {
			if max <= 0 {
				return 0
			}
			return rand.N(max + 1)
		}
	}
	rt := o.transport
	if rt == nil {
		var err error
		if rt, err = newTransport(cfg.CAFile); err != nil {
			return nil, err
		}
	}
	c := &Client{
		cfg:    cfg,
		log:    o.logger,
		now:    o.clock,
		sleep:  o.sleep,
		hook:   o.hook,
		jitter: o.jitter,
	}
	c.stats.byStatus = map[int]int64{}
	c.cache.entries = map[string]cacheEntry{}
	c.rc = resty.New().
		SetBaseURL(cfg.Instance).
		SetTransport(rt).
		SetRetryCount(0).
		SetLogger(restyLogger{o.logger}).
		SetDisableWarn(true).
		SetHeader("Accept", "application/json").
		SetHeader("User-Agent", cfg.UserAgent).
		// A redirect is never a REST answer (SSO login, maintenance page):
		// stop at the 3xx and report the instance unavailable, instead of
		// following a POST into a GET of a login page.
		SetRedirectPolicy(resty.RedirectPolicyFunc(func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}))
	if cfg.Auth.Method == "oauth" {
		c.tokens = &tokenSource{c: c}
	}
	return c, nil
}

// Instance returns the configured instance base URL.
func (c *Client) Instance() string { return c.cfg.Instance }

func newTransport(caFile string) (http.RoundTripper, error) {
	// Without a CA file, RootCAs stays nil: crypto/tls then verifies
	// against the same system roots, loaded at the first TLS handshake.
	// Loading them here parsed ~150 certificates on every start (a good
	// part of an idle `sync --once`), also for instances never reached
	// over TLS.
	var pool *x509.CertPool
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("itsm: invalid config: servicenow.ca_file: %w", err)
		}
		if pool, err = x509.SystemCertPool(); err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("itsm: invalid config: servicenow.ca_file: no PEM certificate in %s", caFile)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return tr, nil
}

// restyLogger routes resty's own messages to slog at debug level.
type restyLogger struct{ l *slog.Logger }

func (r restyLogger) Errorf(format string, v ...any) {
	r.l.Debug("resty", "msg", fmt.Sprintf(format, v...))
}

func (r restyLogger) Warnf(format string, v ...any) {
	r.l.Debug("resty", "msg", fmt.Sprintf(format, v...))
}

func (r restyLogger) Debugf(format string, v ...any) {
	r.l.Debug("resty", "msg", fmt.Sprintf(format, v...))
}

// RequestInfo describes one HTTP attempt, for WithRequestHook.
type RequestInfo struct {
	Method string
	// Path is the URL path without query string.
	Path string
	// Status is the HTTP status, 0 when no answer arrived.
	Status int
	// Attempt counts from 1 within one logical call.
	Attempt  int
	Duration time.Duration
	// Err is the transport error, if any.
	Err error
}

// Stats are cumulative request counters since New.
type Stats struct {
	// Requests counts HTTP attempts (token calls and retries included).
	Requests int64
	// Retries counts attempts that were retries of an earlier one.
	Retries int64
	// TransportErrors counts attempts without an HTTP answer.
	TransportErrors int64
	// ByStatus counts attempts by HTTP status.
	ByStatus map[int]int64
}

type statsCounters struct {
	mu       sync.Mutex
	requests int64
	retries  int64
	errors   int64
	byStatus map[int]int64
}

// Stats returns a snapshot of the request counters. Benchmarks use it to
// assert that an idle mirror cycle costs one request per table.
func (c *Client) Stats() Stats {
	c.stats.mu.Lock()
	defer c.stats.mu.Unlock()
	s := Stats{
		Requests: c.stats.requests, Retries: c.stats.retries, TransportErrors: c.stats.errors,
		ByStatus: make(map[int]int64, len(c.stats.byStatus)),
	}
	for k, v := range c.stats.byStatus {
		s.ByStatus[k] = v
	}
	return s
}

func (c *Client) record(info RequestInfo) {
	c.stats.mu.Lock()
	c.stats.requests++
	if info.Attempt > 1 {
		c.stats.retries++
	}
	if info.Status == 0 {
		c.stats.errors++
	} else {
		c.stats.byStatus[info.Status]++
	}
	c.stats.mu.Unlock()
	if c.hook != nil {
		c.hook(info)
	}
	c.log.Debug("servicenow request", "method", info.Method, "path", info.Path, "status", info.Status,
		"attempt", info.Attempt, "duration", info.Duration)
}

// request is one logical call.
type request struct {
	method      string
	path        string
	query       url.Values
	body        []byte
	contentType string
	form        url.Values
	// idempotent calls may be retried after an unknown outcome; others
	// (creates, work notes, attachments) are retried only when the server
	// certainly did not act (429, connection refused).
	idempotent bool
	noAuth     bool
	// maxBody overrides the answer size limit (see bodyLimit).
	maxBody int
}

// Answer size limits. A ServiceNow answer is read into memory before it is
// decoded, so its size is bounded: an instance that ignores sysparm_limit,
// or a record with a runaway field, is refused with a clear error instead
// of being decoded into gigabytes. A request that asks for N rows
// (sysparm_limit) may receive N × bodyBytesPerRow, and never less than
// minBodyLimit (single records, small pages): at the default page_size of
// 1000 that is 32 MiB, at the maximum of 10000 it is 320 MiB.
const (
	bodyBytesPerRow = 32 << 10
	minBodyLimit    = 8 << 20
)

// ErrResponseTooLarge matches an answer refused for its size (see
// bodyLimit). It is not retried: the same request gets the same answer.
var ErrResponseTooLarge = errors.New("itsm: answer too large")

// bodyLimit is the size limit of req's answer, derived from the rows it
// asks for.
func bodyLimit(req request) int {
	if req.maxBody > 0 {
		return req.maxBody
	}
	limit := minBodyLimit
	if n, err := strconv.Atoi(req.query.Get("sysparm_limit")); err == nil && n > 0 && n*bodyBytesPerRow > limit {
		limit = n * bodyBytesPerRow
	}
	return limit
}

// tooLarge describes an answer refused by bodyLimit.
func tooLarge(req request, status int) *Error {
	limit := bodyLimit(req)
	msg := fmt.Sprintf("answer larger than %d MiB refused", limit>>20)
	if n := req.query.Get("sysparm_limit"); n != "" {
		msg += fmt.Sprintf(" (the limit for sysparm_limit=%s is %d KiB per row, at least %d MiB)", n, bodyBytesPerRow>>10, minBodyLimit>>20)
	}
	msg += "; the instance ignored sysparm_limit or sent an oversized field"
	return &Error{Status: status, Method: req.method, Path: req.path, Message: msg, Err: ErrResponseTooLarge}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do runs req with authentication, retries and error classification. A nil
// error means a 2xx JSON (or empty) answer.
func (c *Client) do(ctx context.Context, req request) (*response, error) {
	var waited time.Duration
	refreshed := false
	attempt := 0
	for {
		attempt++
		if err := ctx.Err(); err != nil {
			return nil, c.ctxError(req, err, false)
		}
		resp, wrote, token, err := c.send(ctx, req, attempt)
		var e *Error
		retryable := false
		var serverWait time.Duration
		switch {
		case err != nil:
			var te *Error
			if errors.As(err, &te) { // token acquisition failed
				return nil, err
			}
			if ctx.Err() != nil {
				return nil, c.ctxError(req, ctx.Err(), wrote)
			}
			notSent := !wrote && isDialError(err)
			e = &Error{
				Method: req.method, Path: req.path, Message: transportMessage(err, c.cfg.Timeout), Err: redactedError{err, c.redact(err.Error())},
				OutcomeUnknown: !req.idempotent && !notSent,
			}
			retryable = (req.idempotent || notSent) && !isTLSError(err)
		default:
			e = c.classify(req, resp)
			if e == nil {
				return resp, nil
			}
			switch {
			case e.Status == http.StatusUnauthorized && c.tokens != nil && !req.noAuth && !refreshed:
				// Expired or revoked token: refresh once and retry once. The
				// server refused before acting, so this is safe for creates.
				refreshed = true
				c.tokens.invalidate(token)
				attempt--
				continue
			case e.Status == http.StatusTooManyRequests:
				retryable = true // refused before acting: safe even for POST
				serverWait = c.retryAfter(resp.header)
				e.RetryAfter = serverWait
			case !e.HTML && (e.Status == http.StatusBadGateway || e.Status == http.StatusServiceUnavailable ||
				e.Status == http.StatusGatewayTimeout):
				retryable = req.idempotent
				serverWait = c.retryAfter(resp.header)
			}
		}
		if !retryable || attempt >= c.cfg.Retry.MaxAttempts {
			return nil, e
		}
		wait := serverWait
		if wait <= 0 {
			wait = c.backoff(attempt)
		}
		if waited+wait > c.cfg.Retry.MaxWait {
			return nil, e
		}
		if dl, ok := ctx.Deadline(); ok && c.now().Add(wait).After(dl) {
			return nil, e
		}
		c.log.Info("servicenow retry", "method", req.method, "path", req.path, "status", e.Status,
			"attempt", attempt, "wait", wait)
		if err := c.sleep(ctx, wait); err != nil {
			return nil, c.ctxError(req, err, false)
		}
		waited += wait
	}
}

// redactedError keeps a transport error for errors.Is/As while printing a
// redacted text.
type redactedError struct {
	err  error
	text string
}

func (r redactedError) Error() string { return r.text }
func (r redactedError) Unwrap() error { return r.err }

// ctxError reports a cancelled or expired caller context. A non-idempotent
// request that was already written has an unknown outcome.
func (c *Client) ctxError(req request, err error, wrote bool) error {
	return &Error{
		Method: req.method, Path: req.path, Message: "call abandoned", Err: err,
		OutcomeUnknown: !req.idempotent && wrote,
	}
}

// send performs one HTTP attempt. wrote reports whether the request was
// written to the connection (so a failure may have been acted upon).
func (c *Client) send(ctx context.Context, req request, attempt int) (resp *response, wrote bool, token string, err error) {
	if c.tokens != nil && !req.noAuth {
		token, err = c.tokens.get(ctx)
		if err != nil {
			return nil, false, "", err
		}
	}
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var wroteFlag atomic.Bool
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		WroteHeaders: func() { wroteFlag.Store(true) },
	})
	// The body is read here, not by resty: its reader copies 512 bytes at
	// a time into a slice that doubles, which was a tenth of the mirror's
	// CPU for 1.3 MB pages; readBody reads into one buffer sized from
	// Content-Length.
	r := c.rc.R().SetContext(actx).SetDoNotParseResponse(true)
	if len(req.query) > 0 {
		r.SetQueryParamsFromValues(req.query)
	}
	switch {
	case req.noAuth:
	case c.tokens != nil:
		r.SetAuthToken(token)
	default:
		r.SetBasicAuth(c.cfg.Auth.Username, c.cfg.Auth.Password)
	}
	if req.form != nil {
		r.SetFormDataFromValues(req.form)
	} else if req.body != nil {
		ct := req.contentType
		if ct == "" {
			ct = "application/json"
		}
		r.SetHeader("Content-Type", ct)
		r.SetBody(req.body)
	}
	start := time.Now()
	rr, err := r.Execute(req.method, req.path)
	var body []byte
	if err == nil {
		raw := rr.RawBody()
		body, err = readBody(raw, rr.RawResponse.ContentLength, bodyLimit(req))
		raw.Close()
	}
	info := RequestInfo{Method: req.method, Path: req.path, Attempt: attempt, Duration: time.Since(start)}
	wrote = wroteFlag.Load()
	if errors.Is(err, errBodyTooLarge) {
		info.Status = rr.StatusCode()
		c.record(info)
		return nil, wrote, token, tooLarge(req, info.Status)
	}
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		info.Err = err
		c.record(info)
		return nil, wrote, token, err
	}
	info.Status = rr.StatusCode()
	c.record(info)
	c.noteServerDate(rr.Header().Get("Date"))
	return &response{status: rr.StatusCode(), header: rr.Header(), body: body}, true, token, nil
}

// errBodyTooLarge: an answer over bodyLimit.
var errBodyTooLarge = errors.New("response body too large")

// readBody reads an answer of at most limit bytes into one buffer, sized
// from the announced length when there is one (a gzip answer the
// transport decompresses announces none).
func readBody(r io.Reader, announced int64, limit int) ([]byte, error) {
	size := 64 << 10
	if announced >= 0 {
		size = int(min(announced, int64(limit))) + 1 // +1: EOF without growing
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return nil, errBodyTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// classify turns an answer into nil (2xx JSON or empty) or an *Error.
func (c *Client) classify(req request, resp *response) *Error {
	html := isHTML(resp)
	if resp.status >= 200 && resp.status < 300 && !html {
		return nil
	}
	e := &Error{Status: resp.status, Method: req.method, Path: req.path}
	switch {
	case resp.status >= 300 && resp.status < 400:
		e.Message = "instance unavailable (redirected"
		if loc, err := url.Parse(resp.header.Get("Location")); err == nil && loc.Host != "" {
			e.Message += " to " + loc.Host
		}
		e.Message += "; SSO or maintenance page?)"
		e.OutcomeUnknown = !req.idempotent
	case html:
		e.HTML = true
		e.Message = fmt.Sprintf("instance unavailable (HTML answer, HTTP %d", resp.status)
		if t := htmlTitle(resp.body); t != "" {
			e.Message += fmt.Sprintf(": %q", t)
		}
		e.Message += "; hibernating developer instance, SSO or maintenance page?)"
		e.OutcomeUnknown = !req.idempotent
	default:
		parseErrorBody(e, resp.body)
		if e.Message == "" {
			e.Message = http.StatusText(resp.status)
		}
		if resp.status >= 500 && !req.idempotent {
			e.OutcomeUnknown = true
		}
	}
	e.Message, e.Detail = c.redact(e.Message), c.redact(e.Detail)
	return e
}

// redact removes every known secret from server-provided text, in case an
// instance, proxy or login page echoes a credential back.
func (c *Client) redact(s string) string {
	if s == "" {
		return s
	}
	for _, sec := range []string{c.cfg.Auth.Password, c.cfg.Auth.ClientSecret} {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	if p := c.tokenSecrets.Load(); p != nil {
		for _, sec := range *p {
			if len(sec) >= 4 {
				s = strings.ReplaceAll(s, sec, "[redacted]")
			}
		}
	}
	return s
}

// isHTML recognises an HTML page by Content-Type or by its first byte (some
// proxies send text/plain or no type).
func isHTML(resp *response) bool {
	if mt, _, err := mime.ParseMediaType(resp.header.Get("Content-Type")); err == nil {
		if mt == "text/html" || mt == "application/xhtml+xml" {
			return true
		}
	}
	b := bytes.TrimSpace(resp.body)
	return len(b) > 0 && b[0] == '<'
}

// backoff returns a full-jitter wait for the given attempt (1-based).
func (c *Client) backoff(attempt int) time.Duration {
	ceiling := c.cfg.Retry.BaseDelay
	for i := 1; i < attempt && ceiling < c.cfg.Retry.MaxDelay; i++ {
		ceiling *= 2
	}
	if ceiling > c.cfg.Retry.MaxDelay {
		ceiling = c.cfg.Retry.MaxDelay
	}
	return c.jitter(ceiling)
}

// retryAfter reads Retry-After (seconds or HTTP date), else X-RateLimit-Reset
// (Unix seconds). Zero means "no advice".
func (c *Client) retryAfter(h http.Header) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
			return time.Duration(secs * float64(time.Second))
		}
		if t, err := http.ParseTime(v); err == nil {
			if d := t.Sub(c.serverNow()); d > 0 {
				return d
			}
			return 0
		}
	}
	if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
			if d := time.Unix(secs, 0).Sub(c.serverNow()); d > 0 {
				return d
			}
		}
	}
	return 0
}

func (c *Client) noteServerDate(v string) {
	if v == "" {
		return
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return
	}
	c.serverSkew.Store(int64(t.Sub(c.now())))
	c.skewKnown.Store(true)
}

// serverNow is the instance's clock as last observed through the Date
// header (our clock until the first answer).
func (c *Client) serverNow() time.Time {
	now := c.now()
	if c.skewKnown.Load() {
		now = now.Add(time.Duration(c.serverSkew.Load()))
	}
	return now
}

func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

func isTLSError(err error) bool {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var cv *tls.CertificateVerificationError
	return errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) || errors.As(err, &cv)
}

func transportMessage(err error, timeout time.Duration) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("instance unavailable (no answer within %s)", timeout)
	case isTLSError(err):
		return "TLS verification failed (set servicenow.ca_file for a private CA)"
	case isDialError(err):
		return "instance unavailable (cannot connect)"
	}
	return "instance unavailable (connection failed)"
}
