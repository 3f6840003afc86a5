package exec

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/ops/analysis"
)

// promSource is a Prometheus server's query API.
type promSource struct {
	address string
	api     promv1.API
}

func newPromSource(key, address string, client *http.Client) (*promSource, error) {
	u, err := url.Parse(address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s.address: %q: want the server's absolute http:// or https:// URL, e.g. http://127.0.0.1:9090", key, address)
	}
	c, err := api.NewClient(api.Config{Address: address, Client: client})
	if err != nil {
		return nil, fmt.Errorf("%s.address: %w", key, err)
	}
	return &promSource{address: u.Redacted(), api: promv1.NewAPI(c)}, nil
}

// promSanity catches the PromQL mistakes that need no server: unbalanced
// brackets and quotes. The server's parser judges the rest, and an
// invalid query fails the check with its message (never inconclusive).
func promSanity(q string) error {
	var stack []byte
	pairs := map[byte]byte{')': '(', ']': '[', '}': '{'}
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch c {
		case '"', '\'', '`':
			j := i + 1
			for j < len(q) && q[j] != c {
				if q[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(q) {
				return fmt.Errorf("unterminated string at column %d", i+1)
			}
			i = j
		case '(', '[', '{':
			stack = append(stack, c)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[c] {
				return fmt.Errorf("unbalanced %q at column %d", c, i+1)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		return fmt.Errorf("unclosed %q", stack[len(stack)-1])
	}
	return nil
}

// errInvalidQuery marks a query the server refused as malformed.
var errInvalidQuery = errors.New("invalid PromQL")

// promRunner queries at the end of every interval, once per target, with
// the query rendered for that target.
type promRunner struct {
	h   *Health
	m   *metricCheck
	req ops.StepRequest
}

func (p *promRunner) start(context.Context, []ops.Target) {}

func (p *promRunner) observe(ctx context.Context, targets []ops.Target) []observation {
	out := make([]observation, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			req := p.req
			req.Target = t
			v, err := p.h.promQuery(ctx, p.m, req)
			if err != nil {
				out[i].err = fmt.Errorf("%s: %w", t.Name, err)
				return
			}
			out[i].env = analysis.Env{Result: &v}
		})
	}
	wg.Wait()
	return out
}

// promQuery runs the check's query for one target. An unreachable server
// or an empty answer is analysis.ErrNoData (inconclusive); a query the
// server refuses is errInvalidQuery.
func (h *Health) promQuery(ctx context.Context, m *metricCheck, req ops.StepRequest) (float64, error) {
	q, err := m.promText.render(newData(h.env, req))
	if err != nil {
		return 0, fmt.Errorf("prometheus.query: %w", err)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, m.timeout, &TimeoutError{After: m.timeout})
	defer cancel()
	val, _, _, err := m.prom.api.Query(ctx, q, h.o.now())
	if err != nil {
		var pe *promv1.Error
		if errors.As(err, &pe) && pe.Type == promv1.ErrBadData {
			return 0, fmt.Errorf("prometheus.query %q: %w: %s", q, errInvalidQuery, pe.Msg)
		}
		return 0, fmt.Errorf("prometheus %s: %w: %w", m.prom.address, analysis.ErrNoData, causeOr(ctx, unwrapURLError(err)))
	}
	switch v := val.(type) {
	case *model.Scalar:
		return float64(v.Value), nil
	case model.Vector:
		switch len(v) {
		case 0:
			return 0, fmt.Errorf("prometheus.query %q: %w: the query returned no series", q, analysis.ErrNoData)
		case 1:
			return float64(v[0].Value), nil
		}
		names := make([]string, 0, 3)
		for _, s := range v[:min(3, len(v))] {
			names = append(names, s.Metric.String())
		}
		return 0, fmt.Errorf("prometheus.query %q: %w: %d series (%s…); aggregate them, e.g. sum(...)", q, analysis.ErrNoData, len(v), strings.Join(names, ", "))
	}
	return 0, fmt.Errorf("prometheus.query %q: %w: a %s result; want a scalar or an instant vector", q, analysis.ErrNoData, val.Type())
}
