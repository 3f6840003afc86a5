package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"
)

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "daytwo",
		Short: "Day-2 operations: gated rollouts of app versions and config, with ServiceNow change control",
		Long: `daytwo rolls app versions and config out to environments. Environments that need
it are gated by a ServiceNow change request: daytwo raises the change, syncs its
approval, waits for its window, rolls out in batches with health checks, rolls
back on failure and writes the evidence back to ServiceNow.

Run without a command to open the console.

Exit codes: 0 ok, 1 error, 2 usage or configuration error,
3 blocked (policy, window, freeze, lease), 4 pending (awaiting approval).`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       version,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if a.logLevel != "" {
				var l slog.Level
				if err := l.UnmarshalText([]byte(a.logLevel)); err != nil {
					return usagef("--log-level %q: want debug, info, warn or error", a.logLevel)
				}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runConsole(cmd, args)
		},
	}
	a.root = root
	pf := root.PersistentFlags()
	pf.StringVarP(&a.configFile, "config", "c", "", "configuration file (default $DAYTWO_CONFIG, else ./daytwo.yaml)")
	pf.String("db", "", "SQLite database path (overrides store.path and $DAYTWO_DB)")
	pf.String("instance", "", "ServiceNow instance URL (overrides servicenow.instance and $DAYTWO_SN_INSTANCE)")
	pf.Bool("read-only", false, "disable every action that changes ServiceNow or an environment")
	pf.StringVar(&a.logLevel, "log-level", "", "log level: debug, info, warn, error (default warn; info for the daemon)")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError{err} })
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetIn(a.stdin)

	root.AddCommand(
		a.tuiCommand(),
		a.demoCommand(),
		a.snowsimCommand(),
		a.syncCommand(),
		a.configCommand(),
		a.envCommand(),
		a.proposeCommand(),
		a.changeCommand(),
		a.runCommand(),
		a.rollbackCommand(),
		a.driftCommand(),
		a.policyCommand(),
		a.updateCommand(),
		a.auditCommand(),
		a.outboxCommand(),
		a.statusCommand(),
		a.storeCommand(),
		a.fleetCommand(),
		a.versionCommand(),
	)
	return root
}

func (a *app) versionCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print daytwo's version",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			v := buildInfo()
			if out == outJSON {
				return a.printJSON(v)
			}
			fmt.Fprintf(a.stdout, "daytwo %s (%s, schema %d)\n", v.Version, v.GoVersion, v.Schema)
			return nil
		},
	}
	addOutputFlag(cmd, &out)
	return cmd
}
