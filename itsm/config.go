package itsm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Config is the ServiceNow part of daytwo's configuration (the servicenow:
// section of daytwo.yaml). cmd reads the file and passes this struct in.
type Config struct {
	// Instance is the base URL, e.g. https://example.service-now.com. It must
	// be https, except for loopback hosts (simulator, tests), and must not
	// carry credentials.
	Instance string
	// Auth selects Basic or OAuth authentication.
	Auth AuthConfig
	// CAFile is an optional PEM bundle appended to the system roots. TLS
	// verification is always on.
	CAFile string
	// Timeout bounds each HTTP attempt (default 30s).
	Timeout time.Duration
	// PageSize is the default page size for lists and the mirror (default
	// 1000, at most 10000; ServiceNow rejects 0).
	PageSize int
	// UserAgent is sent on every call, e.g. "daytwo/1.2.3" (default
	// "daytwo/dev").
	UserAgent string
	// Retry bounds retries of idempotent calls.
	Retry RetryConfig
}

// AuthConfig holds credentials. Its String and LogValue methods redact the
// secrets, so printing or logging a Config never leaks them.
type AuthConfig struct {
	// Method is "basic" (default) or "oauth".
	Method string
	// Username and Password are the integration user's credentials (basic, and
	// the oauth password grant).
	Username string
	Password string
	// Grant is the OAuth grant: "password" (default) or "client_credentials".
	Grant string
	// ClientID and ClientSecret identify the OAuth application.
	ClientID     string
	ClientSecret string
}

// String implements fmt.Stringer without secrets.
func (a AuthConfig) String() string {
	return fmt.Sprintf("{Method:%s Username:%s Password:%s Grant:%s ClientID:%s ClientSecret:%s}",
		a.Method, a.Username, redact(a.Password), a.Grant, a.ClientID, redact(a.ClientSecret))
}

// GoString implements fmt.GoStringer without secrets.
func (a AuthConfig) GoString() string { return "itsm.AuthConfig" + a.String() }

// LogValue implements slog.LogValuer without secrets.
func (a AuthConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("method", a.Method),
		slog.String("username", a.Username),
		slog.String("grant", a.Grant),
		slog.String("client_id", a.ClientID),
	)
}

func redact(s string) string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// RetryConfig bounds the retries of idempotent calls.
type RetryConfig struct {
	// MaxAttempts is the total number of attempts, first included (default 5;
	// 1 disables retries).
	MaxAttempts int
	// MaxWait bounds the total time spent waiting between attempts of one
	// call (default 2m). A Retry-After longer than what is left fails fast
	// with ErrRateLimited, carrying RetryAfter for the caller to schedule.
	MaxWait time.Duration
	// BaseDelay is the first backoff ceiling (default 500ms); it doubles per
	// attempt up to MaxDelay (default 30s). Each wait is drawn uniformly from
	// [0, ceiling] ("full jitter").
	BaseDelay time.Duration
	MaxDelay  time.Duration
}

const (
	defaultTimeout     = 30 * time.Second
	defaultPageSize    = 1000
	maxPageSize        = 10000
	defaultUserAgent   = "daytwo/dev"
	defaultMaxAttempts = 5
	defaultMaxWait     = 2 * time.Minute
	defaultBaseDelay   = 500 * time.Millisecond
	defaultMaxDelay    = 30 * time.Second
)

// withDefaults returns cfg with zero fields defaulted.
func (cfg Config) withDefaults() Config {
	cfg.Instance = strings.TrimRight(strings.TrimSpace(cfg.Instance), "/")
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = defaultPageSize
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = defaultUserAgent
	}
	if cfg.Auth.Method == "" {
		cfg.Auth.Method = "basic"
	}
	cfg.Auth.Method = strings.ToLower(cfg.Auth.Method)
	if cfg.Auth.Method == "oauth" && cfg.Auth.Grant == "" {
		cfg.Auth.Grant = "password"
	}
	cfg.Auth.Grant = strings.ToLower(cfg.Auth.Grant)
	r := &cfg.Retry
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = defaultMaxAttempts
	}
	if r.MaxWait <= 0 {
		r.MaxWait = defaultMaxWait
	}
	if r.BaseDelay <= 0 {
		r.BaseDelay = defaultBaseDelay
	}
	if r.MaxDelay <= 0 {
		r.MaxDelay = defaultMaxDelay
	}
	if r.MaxDelay < r.BaseDelay {
		r.MaxDelay = r.BaseDelay
	}
	return cfg
}

// validate reports every problem, naming the config key, never the secret.
func (cfg Config) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("servicenow.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if cfg.Instance == "" {
		bad("instance", "is required (e.g. https://example.service-now.com)")
	} else if u, err := url.Parse(cfg.Instance); err != nil || u.Host == "" {
		bad("instance", "is not an absolute URL")
	} else {
		switch {
		case u.User != nil:
			bad("instance", "must not contain credentials; use servicenow.auth")
		case u.Scheme == "https":
		case u.Scheme == "http" && isLoopback(u.Hostname()):
		case u.Scheme == "http":
			bad("instance", "must use https (http is allowed only for loopback hosts)")
		default:
			bad("instance", "scheme %q is not supported", u.Scheme)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			bad("instance", "must not have a query or fragment")
		}
	}
	switch cfg.Auth.Method {
	case "basic":
		if cfg.Auth.Username == "" {
			bad("auth.username", "is required for basic auth")
		}
		if cfg.Auth.Password == "" {
			bad("auth.password", "is required for basic auth (password_file or DAYTWO_SN_PASSWORD)")
		}
	case "oauth":
		if cfg.Auth.ClientID == "" {
			bad("auth.client_id", "is required for oauth")
		}
		if cfg.Auth.ClientSecret == "" {
			bad("auth.client_secret", "is required for oauth (client_secret_file or DAYTWO_SN_CLIENT_SECRET)")
		}
		switch cfg.Auth.Grant {
		case "password":
			if cfg.Auth.Username == "" {
				bad("auth.username", "is required for the oauth password grant")
			}
			if cfg.Auth.Password == "" {
				bad("auth.password", "is required for the oauth password grant")
			}
		case "client_credentials":
		default:
			bad("auth.grant", "must be password or client_credentials, not %q", cfg.Auth.Grant)
		}
	default:
		bad("auth.method", "must be basic or oauth, not %q", cfg.Auth.Method)
	}
	if cfg.PageSize < 0 || cfg.PageSize > maxPageSize {
		bad("page_size", "must be between 1 and %d, not %d", maxPageSize, cfg.PageSize)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("itsm: invalid config: %w", err)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Option customises a Client.
type Option func(*options)

type options struct {
	transport http.RoundTripper
	logger    *slog.Logger
	clock     func() time.Time
	sleep     func(context.Context, time.Duration) error
	hook      func(RequestInfo)
	jitter    func(max time.Duration) time.Duration
}

// WithTransport replaces the HTTP transport (the test seam; CAFile is then
// ignored).
func WithTransport(rt http.RoundTripper) Option { return func(o *options) { o.transport = rt } }

// WithLogger sets the structured logger (default: discard). Requests are
// logged at debug, retries at info; bodies and credentials never are.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithClock sets the clock used for token expiry, rate-limit resets and the
// mirror's upper bound (default time.Now).
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// WithSleep sets how the client waits between attempts and polls (default: a
// timer that honours ctx). Tests pass a recorder that returns at once.
func WithSleep(sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(o *options) { o.sleep = sleep }
}

// WithRequestHook registers a function called after every HTTP attempt,
// including OAuth token calls and retried attempts. It must be fast and safe
// for concurrent use; metrics (API calls by status) hang off it.
func WithRequestHook(fn func(RequestInfo)) Option { return func(o *options) { o.hook = fn } }

// withJitter replaces the random jitter (tests only).
func withJitter(fn func(max time.Duration) time.Duration) Option {
	return func(o *options) { o.jitter = fn }
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
