package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/fixtures/demofleet"
)

// fleetCommand is the demo fleet: small loopback HTTP services whose
// release is switched by `fleet deploy`, the program the demo's command
// executor runs. Hidden: it exists for the demo, the tests and benchmarks.
func (a *app) fleetCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "fleet", Short: "The demo fleet (serve targets; deploy a release to one)", Hidden: true}
	var (
		stateDir string
		targets  []string
		warmUp   time.Duration
		initial  string
	)
	serve := &cobra.Command{
		Use:   "serve --state-dir DIR --target NAME[=127.0.0.1:PORT]...",
		Short: "Serve demo targets on loopback until interrupted",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := demofleet.Options{StateDir: stateDir, WarmUp: warmUp, InitialVersion: initial, Logger: a.log()}
			for _, t := range targets {
				tg, err := demofleet.ParseTarget(t)
				if err != nil {
					return usagef("--target: %v", err)
				}
				opts.Targets = append(opts.Targets, tg)
			}
			if len(opts.Targets) == 0 {
				return usagef("fleet serve: give at least one --target")
			}
			return demofleet.Serve(cmd.Context(), opts, a.stdout)
		},
	}
	serve.Flags().StringArrayVar(&targets, "target", nil, "a target: name or name=127.0.0.1:port (repeatable)")
	serve.Flags().DurationVar(&warmUp, "warm-up", demofleet.DefaultWarmUp, "503 for this long after each release switch")
	serve.Flags().StringVar(&initial, "initial-version", demofleet.DefaultInitialVersion, "release of a target with no state yet")
	deploy := &cobra.Command{
		Use:   "deploy --state-dir DIR",
		Short: "Switch one target's release, reading DAYTWO_TARGET, DAYTWO_VERSION and DAYTWO_CFG_* like any deploy script",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			return demofleet.Deploy(stateDir, os.Environ(), a.stdout)
		},
	}
	for _, c := range []*cobra.Command{serve, deploy} {
		c.Flags().StringVar(&stateDir, "state-dir", "", "directory holding each target's release")
		_ = c.MarkFlagRequired("state-dir")
	}
	cmd.AddCommand(serve, deploy)
	return cmd
}
