package exec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/daytwo/daytwo/ops"
)

var _ ops.VersionProber = (*Probe)(nil)

// maxProbeBody bounds a version answer: a version is at most 128 bytes,
// a JSON document around it a little more.
const maxProbeBody = 64 << 10

// Probe asks a target which version it really runs, over HTTP or with a
// command. It is safe for concurrent use.
type Probe struct {
	env     string
	url     *tmpl
	field   string
	argv    argvTemplate
	timeout time.Duration
	o       options
}

// NewProbe parses the version probe of environment env: exactly one of
// http and command. WithHTTPClient and WithDir apply.
func NewProbe(env string, p ops.VersionProbe, opts ...Option) (*Probe, error) {
	pr := &Probe{env: env, timeout: p.Timeout, o: newOptions(opts)}
	if pr.timeout <= 0 {
		pr.timeout = DefaultProbeTimeout
	}
	switch {
	case p.HTTP != nil && len(p.Command) > 0:
		return nil, fmt.Errorf("exec: environment %s: version_probe: set http or command, not both", env)
	case p.HTTP != nil:
		t, err := parseTmpl("version_probe.http.url", p.HTTP.URL)
		if err != nil {
			return nil, fmt.Errorf("exec: environment %s: version_probe.http.url: %w", env, err)
		}
		pr.url = &t
		pr.field = p.HTTP.JSONField
	case len(p.Command) > 0:
		a, err := parseArgv("version_probe.command", p.Command)
		if err != nil {
			return nil, fmt.Errorf("exec: environment %s: %w", env, err)
		}
		pr.argv = a
	default:
		return nil, fmt.Errorf("exec: environment %s: version_probe: set http or command", env)
	}
	return pr, nil
}

// Probe returns the version target reports. An answer that is not a valid
// version (see ops.ValidateVersion) is an error, never a version.
func (p *Probe) Probe(ctx context.Context, env string, target ops.Target) (string, error) {
	if env != "" && env != p.env {
		return "", fmt.Errorf("exec: probe %s: environment %q asked of the probe of %q", target.Name, env, p.env)
	}
	d := &TemplateData{Env: ops.StageOf(p.env), Target: target}
	var v string
	var err error
	if p.url != nil {
		v, err = p.http(ctx, d)
	} else {
		v, err = p.command(ctx, d)
	}
	if err != nil {
		return "", fmt.Errorf("exec: probe %s: %w", target.Name, err)
	}
	return v, nil
}

func (p *Probe) http(ctx context.Context, d *TemplateData) (string, error) {
	raw, err := p.url.render(d)
	if err != nil {
		return "", fmt.Errorf("url: %w", err)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("url %q: want an absolute http:// or https:// URL", raw)
	}
	what := "GET " + u.Redacted()
	ctx, cancel := context.WithTimeoutCause(ctx, p.timeout, &TimeoutError{After: p.timeout})
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	resp, err := p.o.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, causeOr(ctx, unwrapURLError(err)))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
	if err != nil {
		return "", fmt.Errorf("%s: read body: %w", what, causeOr(ctx, err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", fmt.Errorf("%s → %d (body: %s)", what, resp.StatusCode, snippet(body))
	}
	if p.field == "" {
		return answer(what, string(body))
	}
	doc, err := decodeJSON(body)
	if err != nil {
		return "", fmt.Errorf("%s: body is not JSON: %w (body: %s)", what, err, snippet(body))
	}
	v, ok := lookupJSON(doc, p.field)
	if !ok {
		return "", fmt.Errorf("%s: json %s is missing (body: %s)", what, p.field, snippet(body))
	}
	switch v.(type) {
	case string, json.Number:
	default:
		return "", fmt.Errorf("%s: json %s is %s, not a version", what, p.field, jsonString(v))
	}
	return answer(what, jsonString(v))
}

func (p *Probe) command(ctx context.Context, d *TemplateData) (string, error) {
	argv, err := p.argv.render(d)
	if err != nil {
		return "", err
	}
	env, err := stepEnv(nil, d)
	if err != nil {
		return "", err
	}
	out := &limitedBuffer{max: maxProbeBody}
	pr := proc{argv: argv, env: env, dir: p.o.dir, timeout: p.timeout, log: newStepLog(nil, d.Target.Name), stdout: out}
	if err := pr.run(ctx); err != nil {
		return "", err
	}
	return answer(argv[0], out.buf.String())
}

// ErrNotVersion reports a version probe whose answer is not a valid
// version: the target answered, but with something else.
var ErrNotVersion = errors.New("not a version")

// answer trims a probe's raw answer and refuses anything but a version.
func answer(what, raw string) (string, error) {
	v := strings.TrimSpace(raw)
	if err := ops.ValidateVersion(v); err != nil {
		return "", fmt.Errorf("%s answered %s: %w", what, snippet([]byte(v)), ErrNotVersion)
	}
	return v, nil
}
