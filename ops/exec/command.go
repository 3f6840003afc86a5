package exec

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// Compile-time checks that Command is what the engine expects.
var (
	_ ops.Executor   = (*Command)(nil)
	_ ops.Rollbacker = (*Command)(nil)
)

// Command is the command executor: it deploys a release to a target by
// running the configured argv, without a shell, and rolls it back with the
// rollback argv or by deploying the previous release. It is safe for
// concurrent use.
type Command struct {
	env      string
	deploy   argvTemplate
	rollback *argvTemplate
	timeout  time.Duration
	extraEnv []string
	dir      string
}

// NewCommand builds the command executor of environment env. The argv
// templates are parsed here, once; an error names the offending element.
// Only WithDir applies among the options.
func NewCommand(env string, spec ops.DeploySpec, opts ...Option) (*Command, error) {
	o := newOptions(opts)
	deploy, err := parseArgv("deploy.command", spec.Command)
	if err != nil {
		return nil, fmt.Errorf("exec: environment %s: %w", env, err)
	}
	c := &Command{env: env, deploy: deploy, timeout: spec.Timeout, dir: o.dir}
	if len(spec.Rollback) > 0 {
		rb, err := parseArgv("deploy.rollback", spec.Rollback)
		if err != nil {
			return nil, fmt.Errorf("exec: environment %s: %w", env, err)
		}
		c.rollback = &rb
	}
	if c.timeout <= 0 {
		c.timeout = DefaultStepTimeout
	}
	if c.extraEnv, err = parseExtraEnv("deploy.env", spec.Env); err != nil {
		return nil, fmt.Errorf("exec: environment %s: %w", env, err)
	}
	return c, nil
}

// Deploy puts req.Version with req.Config on req.Target by running the
// deploy argv. The versions are validated before anything runs.
func (c *Command) Deploy(ctx context.Context, req ops.StepRequest, log ops.LogSink) error {
	if err := c.validate(req); err != nil {
		return fmt.Errorf("exec: deploy to %s: %w", req.Target.Name, err)
	}
	if err := c.run(ctx, c.deploy, req, log); err != nil {
		return fmt.Errorf("exec: deploy %s to %s: %w", req.Version, req.Target.Name, err)
	}
	return nil
}

// Rollback returns req.Target from req.Version to req.PreviousVersion. req
// is the request the target was deployed with; Rollback swaps it, so the
// program sees the version it restores as DAYTWO_VERSION (and .Version),
// the version it undoes as DAYTWO_PREVIOUS_VERSION, and DAYTWO_ROLLBACK set
// to true. Without a rollback argv, the deploy argv runs with that swapped
// request: the previous release, previous config included, is deployed.
func (c *Command) Rollback(ctx context.Context, req ops.StepRequest, log ops.LogSink) error {
	if req.PreviousVersion == "" {
		return fmt.Errorf("exec: roll back %s: %w", req.Target.Name, errNoPrevious)
	}
	back := req
	back.Version, back.PreviousVersion = req.PreviousVersion, req.Version
	back.Config, back.PreviousConfig = req.PreviousConfig, req.Config
	back.Rollback = true
	if err := c.validate(back); err != nil {
		return fmt.Errorf("exec: roll back %s: %w", req.Target.Name, err)
	}
	argv := c.deploy
	if c.rollback != nil {
		argv = *c.rollback
	}
	if err := c.run(ctx, argv, back, log); err != nil {
		return fmt.Errorf("exec: roll back %s to %s: %w", req.Target.Name, back.Version, err)
	}
	return nil
}

var errNoPrevious = errors.New("no previous version to return to")

func (c *Command) validate(req ops.StepRequest) error {
	if req.Environment != "" && req.Environment != c.env {
		return fmt.Errorf("request for environment %q sent to the executor of %q", req.Environment, c.env)
	}
	if err := ops.ValidateVersion(req.Version); err != nil {
		return err
	}
	if req.PreviousVersion != "" {
		if err := ops.ValidateVersion(req.PreviousVersion); err != nil {
			return fmt.Errorf("previous %w", err)
		}
	}
	return nil
}

func (c *Command) run(ctx context.Context, argvT argvTemplate, req ops.StepRequest, log ops.LogSink) error {
	d := newData(c.env, req)
	argv, err := argvT.render(d)
	if err != nil {
		return err
	}
	env, err := stepEnv(c.extraEnv, d)
	if err != nil {
		return err
	}
	sl := newStepLog(log, req.Target.Name)
	sl.emit("daytwo", "run "+quoteArgv(argv))
	p := proc{argv: argv, env: env, dir: c.dir, timeout: c.timeout, log: sl}
	return p.forStep(req).run(ctx)
}
