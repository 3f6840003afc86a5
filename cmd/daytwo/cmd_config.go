package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/daytwo/daytwo/cmd/daytwo/internal/config"
)

func (a *app) configCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check and show the configuration"}
	cmd.AddCommand(a.configCheckCommand(), a.configShowCommand())
	return cmd
}

type configCheckResult struct {
	File         string `json:"file"`
	OK           bool   `json:"ok"`
	Environments int    `json:"environments"`
	// Services are the services' names (the implicit one's without
	// services:); Pairs the (service, environment) pairs they make.
	Services []string         `json:"services"`
	Implicit bool             `json:"implicit_service"`
	Pairs    int              `json:"pairs"`
	Freezes  int              `json:"freezes"`
	Policies int              `json:"policies"`
	Problems []config.Problem `json:"problems"`
}

func (a *app) configCheckCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "check [FILE]",
		Short: "Validate a configuration file; exit 0 when valid, 2 with every problem listed otherwise",
		Args:  cobra.MaximumNArgs(1),
		RunE: a.preamble(&out, nil, func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				a.configFile = args[0]
			}
			cfg, err := a.config()
			var cfgErr *config.Error
			if err != nil && !errors.As(err, &cfgErr) {
				return err
			}
			if err == nil { // what the executors need outside the file (playbooks, inventory, ssh keys)
				if probs := config.CheckExecutors(cmd.Context(), cfg); len(probs) > 0 {
					cfgErr = &config.Error{File: cfg.File, Problems: probs}
					err = cfgErr
				}
			}
			res := configCheckResult{OK: err == nil, Problems: []config.Problem{}, Services: []string{}}
			if cfgErr != nil {
				res.File, res.Problems = cfgErr.File, cfgErr.Problems
			} else {
				res.File, res.Environments, res.Freezes, res.Policies = cfg.File, len(cfg.Stages), len(cfg.Freezes), len(cfg.Policies)
				res.Pairs, res.Implicit = len(cfg.Environments), len(cfg.Services) == 0
				for _, e := range cfg.Environments {
					if !slices.Contains(res.Services, e.Service) {
						res.Services = append(res.Services, e.Service)
					}
				}
			}
			if out == outJSON {
				if err := a.printJSON(res); err != nil {
					return err
				}
				if !res.OK {
					return silentError{exitUsage}
				}
				return nil
			}
			if !res.OK {
				return err
			}
			fmt.Fprintf(a.stdout, "%s: ok (%d environments, %d freezes, %d policies)\n",
				orDash(res.File), res.Environments, res.Freezes, res.Policies)
			switch {
			case res.Implicit && len(res.Services) > 0:
				fmt.Fprintf(a.stdout, "  one service, %s (named after its CI, or default): to run several services over these environments, give each its own entry under services: (README: Services)\n", res.Services[0])
			case !res.Implicit:
				fmt.Fprintf(a.stdout, "  %d services (%s) over these environments: %d (service, environment) pairs\n", len(res.Services), strings.Join(res.Services, ", "), res.Pairs)
			}
			return nil
		}),
	}
	addOutputFlag(cmd, &out)
	return cmd
}

func (a *app) configShowCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print the merged configuration (defaults, file, environment, flags); secrets are redacted",
		Args:  exactArgs(),
		RunE: a.configRunE(&out, nil, func(_ context.Context, cfg *config.Config, _ []string) error {
			tree := cfg.Merged()
			secrets := map[string]any{}
			if s := cfg.Secrets.PasswordSource; s != "" {
				secrets["servicenow.auth.password"] = "[redacted] from " + s
			}
			if s := cfg.Secrets.ClientSecretSource; s != "" {
				secrets["servicenow.auth.client_secret"] = "[redacted] from " + s
			}
			if out == outJSON {
				return a.printJSON(map[string]any{"file": cfg.File, "config": tree, "secrets": secrets})
			}
			fmt.Fprintf(a.stdout, "# file: %s\n", orDash(cfg.File))
			for k, v := range secrets {
				fmt.Fprintf(a.stdout, "# %s: %s\n", k, v)
			}
			enc := yaml.NewEncoder(a.stdout)
			enc.SetIndent(2)
			if err := enc.Encode(tree); err != nil {
				return err
			}
			return enc.Close()
		}),
	}
	addOutputFlag(cmd, &out)
	return cmd
}
