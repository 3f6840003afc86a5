package exec

import (
	"context"
	"net/http"
	"time"
)

// Defaults used when the configuration leaves a duration empty.
const (
	// DefaultStepTimeout bounds a deploy or rollback step without a timeout.
	DefaultStepTimeout = 10 * time.Minute
	// DefaultCheckTimeout bounds one attempt of a health check.
	DefaultCheckTimeout = 5 * time.Second
	// DefaultCheckInterval separates the attempts of a health check and the
	// rounds of a bake.
	DefaultCheckInterval = time.Second
	// DefaultProbeTimeout bounds one version probe.
	DefaultProbeTimeout = 5 * time.Second
)

// Option configures a [Command], a [Health] or a [Probe]. Options that do
// not apply to what is being built are ignored.
type Option func(*options)

type options struct {
	client *http.Client
	sleep  func(ctx context.Context, d time.Duration) error
	now    func() time.Time
	dir    string
}

func newOptions(opts []Option) options {
	o := options{
		client: &http.Client{},
		sleep:  sleepCtx,
		now:    time.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithHTTPClient sets the client for http health checks and probes. Each
// request is still bounded by the check's or the probe's own timeout.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) {
		if c != nil {
			o.client = c
		}
	}
}

// WithSleep replaces the wait between health check attempts and bake
// rounds. The function must return ctx.Err() when ctx is done first.
func WithSleep(sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(o *options) {
		if sleep != nil {
			o.sleep = sleep
		}
	}
}

// WithClock replaces the clock that measures evidence durations and the
// length of a bake.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// WithDir sets the working directory of the programs run, against which a
// relative program path such as "./deploy.sh" resolves. The default is the
// daytwo process's working directory.
func WithDir(dir string) Option {
	return func(o *options) { o.dir = dir }
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
