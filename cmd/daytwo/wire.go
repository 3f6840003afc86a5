package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/cmd/daytwo/internal/config"

	"github.com/daytwo/daytwo/itsm"
	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/ops/exec"
)

// itsmClient builds the ServiceNow client from the configuration, or nil
// when no instance is configured.
func (a *app) itsmClient(opts ...itsm.Option) (*itsm.Client, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	return a.itsmClientFor(cfg, opts...)
}

func (a *app) itsmClientFor(cfg *config.Config, opts ...itsm.Option) (*itsm.Client, error) {
	sn := cfg.ServiceNow
	if sn.Instance == "" {
		return nil, nil
	}
	c, err := itsm.New(itsm.Config{
		Instance: sn.Instance,
		Auth: itsm.AuthConfig{
			Method: sn.Auth.Method, Username: sn.Auth.Username, Password: cfg.Secrets.Password,
			Grant: sn.Auth.Grant, ClientID: sn.Auth.ClientID, ClientSecret: cfg.Secrets.ClientSecret,
		},
		CAFile: sn.CAFile, Timeout: sn.Timeout, PageSize: sn.PageSize, UserAgent: "daytwo/" + version,
	}, append([]itsm.Option{itsm.WithLogger(a.log())}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("servicenow: %w", err)
	}
	return c, nil
}

// approverClient is the ServiceNow client decisions are made with, as
// servicenow.approver.username. Its errors name the approver's keys and
// variables, never the integration user's.
func (a *app) approverClient(base itsm.Config, username, password string) (*itsm.Client, error) {
	if password == "" {
		return nil, fmt.Errorf("servicenow.approver.username is %q but the approver has no password: "+
			"set DAYTWO_SN_APPROVER_PASSWORD or servicenow.approver.password_file (or remove servicenow.approver "+
			"to decide as the integration user)", username)
	}
	base.Auth = itsm.AuthConfig{Method: "basic", Username: username, Password: password}
	c, err := itsm.New(base, itsm.WithLogger(a.log()))
	if err != nil {
		return nil, fmt.Errorf("servicenow.approver (%s): %w", username, err)
	}
	return c, nil
}

// service wires the use cases: configuration, store and (if an instance is
// configured) ServiceNow.
func (a *app) service(ctx context.Context, opts ...itsm.Option) (*ops.Service, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	return a.serviceFor(ctx, cfg, opts...)
}

// serviceFor wires the use cases for cfg (the daemon's reload builds a
// service for the new configuration over the open store).
func (a *app) serviceFor(ctx context.Context, cfg *config.Config, opts ...itsm.Option) (*ops.Service, error) {
	db, err := a.store(ctx)
	if err != nil {
		return nil, err
	}
	// Incomplete ServiceNow settings stop only the work that needs
	// ServiceNow (an ungated environment can still be proposed to).
	var (
		changes ops.ChangeSystem
		svcOpts = []ops.Option{ops.WithLogger(a.log()), ops.WithClock(a.clock)}
	)
	client, err := a.itsmClientFor(cfg, opts...)
	switch {
	case err != nil:
		svcOpts = append(svcOpts, ops.WithChangeSystemError(usageError{err}))
	case client != nil:
		changes = itsm.NewBridge(client)
		if ap := cfg.ServiceNow.Approver; ap.Username != "" {
			// A broken approver stops only decisions: reads and every
			// other write go on.
			approver, err := a.approverClient(client.Config(), ap.Username, cfg.Secrets.ApproverPassword)
			if err != nil {
				svcOpts = append(svcOpts, ops.WithApproverError(usageError{err}))
			} else {
				svcOpts = append(svcOpts, ops.WithApprover(itsm.NewBridge(approver)))
			}
		}
	}
	execOpts := []exec.Option{}
	if cfg.File != "" {
		execOpts = append(execOpts, exec.WithDir(filepath.Dir(cfg.File)))
	}
	svcOpts = append(svcOpts, ops.WithExecutors(func(env ops.Environment) (ops.Executor, ops.HealthChecker, error) {
		c, err := newExecutor(env, execOpts)
		if err != nil {
			return nil, nil, err
		}
		h, err := exec.NewHealth(env.Name, env.Health, execOpts...)
		if err != nil {
			return nil, nil, err
		}
		return c, h, nil
	}))
	svcOpts = append(svcOpts, ops.WithProbers(func(env ops.Environment) (ops.VersionProber, error) {
		return exec.NewProbe(env.Name, env.VersionProbe, execOpts...)
	}))
	// Steps on one target never overlap across this host's processes, and
	// recovery stops the programs a dead or fenced-off runner left behind.
	svcOpts = append(svcOpts, ops.WithLeaseTTL(cfg.Sync.LeaseTTL), ops.WithStepReaper(&exec.Reaper{}),
		ops.WithTargetLocker(&exec.TargetLocks{Dir: db.Path() + ".locks"}))
	svc, err := ops.New(ops.Config{
		Environments: cfg.Environments, Freezes: cfg.Freezes, Policies: cfg.Policies,
		CorrelationPrefix: cfg.ServiceNow.CorrelationPrefix, MirrorCIChanges: cfg.ServiceNow.MirrorCIChanges,
		FourEyes: cfg.ServiceNow.FourEyes, Actor: a.actor(), Username: cfg.ServiceNow.Auth.Username,
		ApproverUsername: cfg.ServiceNow.Approver.Username, AlertIncidents: cfg.Alertmanager.OpenIncidents,
	}, db, changes, svcOpts...)
	if err != nil {
		return nil, err
	}
	return svc, nil
}

// The commands' preamble, in one place (cli/cli's RunE → runX split):
// the -o flag is checked (out may be nil), then the command's own checks
// of its arguments and flags (check may be nil; a usage error comes before
// anything is loaded or opened), then the configuration is loaded and, for
// the commands that work through it, the service wired; run does the work.

// checkFunc checks a command's arguments and flags before anything loads.
type checkFunc func(cmd *cobra.Command, args []string) error

// runE is the preamble of the commands that work through the service.
func (a *app) runE(out *string, check checkFunc, run func(ctx context.Context, svc *ops.Service, args []string) error) func(*cobra.Command, []string) error {
	return a.preamble(out, check, func(cmd *cobra.Command, args []string) error {
		svc, err := a.service(cmd.Context())
		if err != nil {
			return err
		}
		if a.watch {
			return a.watchList(cmd.Context(), func() error { return run(cmd.Context(), svc, args) })
		}
		return run(cmd.Context(), svc, args)
	})
}

// configRunE is the preamble of the commands that need the configuration
// only (no store, no ServiceNow).
func (a *app) configRunE(out *string, check checkFunc, run func(ctx context.Context, cfg *config.Config, args []string) error) func(*cobra.Command, []string) error {
	return a.preamble(out, check, func(cmd *cobra.Command, args []string) error {
		cfg, err := a.config()
		if err != nil {
			return err
		}
		return run(cmd.Context(), cfg, args)
	})
}

func (a *app) preamble(out *string, check checkFunc, then func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if out != nil {
			if err := a.checkOutput(cmd, out); err != nil {
				return err
			}
		}
		if check != nil {
			if err := check(cmd, args); err != nil {
				return err
			}
		}
		return then(cmd, args)
	}
}

// envKeys resolves ENV arguments (a pair's key, or a stage — with
// --service, or run by one service) to the keys ops knows them by. No
// argument with --service means every environment of that service.
func (a *app) envKeys(svc *ops.Service, names ...string) ([]string, error) {
	if len(names) == 0 && a.serviceFlag != "" {
		for _, e := range svc.Environments() {
			if e.Service == a.serviceFlag {
				names = append(names, e.Name)
			}
		}
		if len(names) == 0 {
			return nil, usagef("no service named %q (configured: %s)", a.serviceFlag, strings.Join(svc.ServiceNames(), ", "))
		}
	}
	keys := make([]string, len(names))
	for i, n := range names {
		e, err := svc.ResolveEnvironment(a.serviceFlag, n)
		if err != nil {
			return nil, usageError{err}
		}
		keys[i] = e.Name
	}
	return keys, nil
}

// envKey is envKeys for one argument.
func (a *app) envKey(svc *ops.Service, name string) (string, error) {
	keys, err := a.envKeys(svc, name)
	if err != nil {
		return "", err
	}
	return keys[0], nil
}

// newExecutor builds the executor an environment's deploy section names:
// Ansible (one playbook run per batch), SSH, or the local command.
func newExecutor(env ops.Environment, opts []exec.Option) (ops.Executor, error) {
	switch {
	case env.Deploy.Ansible != nil:
		return exec.NewAnsible(env.Name, env.Deploy, opts...)
	case env.Deploy.SSH != nil:
		return exec.NewSSH(env.Name, env.Deploy, opts...)
	}
	return exec.NewCommand(env.Name, env.Deploy, opts...)
}
