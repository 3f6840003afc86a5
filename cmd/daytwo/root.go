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

Exit codes: 0 ok, 1 error, 2 usage or configuration error (or no
configuration found), 3 blocked (policy, window, freeze, lease, another open
update, nothing to propose), 4 pending (awaiting approval), 5 refused by
read-only mode, 6 drift (a target drifted), 7 drift unknown (a probe
failed), 8 run stopped at a step boundary or fenced off (it goes on
elsewhere).`,
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
			return a.guardReadOnly(cmd)
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
	pf.StringVarP(&a.serviceFlag, "service", "s", "", "the service an ENV argument or filter refers to (with services:)")
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
		a.serviceCommand(),
		a.proposeCommand(),
		a.changeCommand(),
		a.runCommand(),
		a.rollbackCommand(),
		a.driftCommand(),
		a.policyCommand(),
		a.updateCommand(),
		a.auditCommand(),
		a.feedCommand(),
		a.outboxCommand(),
		a.statusCommand(),
		a.storeCommand(),
		a.backupCommand(),
		a.fleetCommand(),
		a.versionCommand(),
	)
	a.addCompletions(root)
	addExamples(root)
	return root
}

// Read-only classes: what a command does, for the one read-only check.
const (
	// roRead commands only read (the store, the configuration, targets'
	// versions): always allowed.
	roRead = "read"
	// roWrite commands change ServiceNow or an environment: refused.
	roWrite = "write"
	// roWriteUnlessDryRun commands write unless --dry-run is given.
	roWriteUnlessDryRun = "write-unless-dry-run"
	// roMirror commands run in read-only mode as a mirror: they read
	// ServiceNow into the store, but deliver no write and run nothing.
	roMirror = "mirror"
)

// readOnlyClasses classifies every command by its path. A command missing
// here is treated as a write (refused in read-only mode), and
// TestReadOnlyEveryCommand fails until it is classified.
var readOnlyClasses = map[string]string{
	"daytwo":                roMirror, // the console
	"daytwo tui":            roMirror,
	"daytwo sync":           roMirror,
	"daytwo demo":           roWrite,
	"daytwo snowsim":        roRead, // a local simulator: neither ServiceNow nor an environment
	"daytwo config check":   roRead,
	"daytwo config show":    roRead,
	"daytwo env list":       roRead,
	"daytwo service list":   roRead,
	"daytwo service show":   roRead,
	"daytwo env show":       roRead,
	"daytwo env diff":       roRead,
	"daytwo propose":        roWriteUnlessDryRun,
	"daytwo change list":    roRead,
	"daytwo change show":    roRead,
	"daytwo change approve": roWrite,
	"daytwo change reject":  roWrite,
	"daytwo run":            roWrite,
	"daytwo rollback":       roWrite,
	"daytwo drift":          roRead,
	"daytwo policy check":   roRead,
	"daytwo update list":    roRead,
	"daytwo update show":    roRead,
	"daytwo update logs":    roRead,
	"daytwo update cancel":  roWrite,
	"daytwo audit list":     roRead,
	"daytwo audit verify":   roRead,
	"daytwo audit export":   roRead,
	"daytwo feed":           roRead,
	"daytwo outbox list":    roRead,
	"daytwo outbox retry":   roWrite,
	"daytwo outbox discard": roWrite,
	"daytwo store copy":     roWrite, // writes the PostgreSQL database
	"daytwo backup":         roRead,  // copies the local database; changes nothing
	"daytwo status":         roRead,
	"daytwo fleet serve":    roRead, // the demo fleet's own processes
	"daytwo fleet deploy":   roWrite,
	"daytwo version":        roRead,
}

// readOnlyClass returns cmd's class; cobra's own help and completion
// commands read.
func readOnlyClass(cmd *cobra.Command) string {
	if c, ok := readOnlyClasses[cmd.CommandPath()]; ok {
		return c
	}
	for p := cmd; p != nil; p = p.Parent() {
		if p.Name() == "help" || p.Name() == "completion" || p.Name() == cobra.ShellCompRequestCmd || p.Name() == cobra.ShellCompNoDescRequestCmd {
			return roRead
		}
	}
	return roWrite
}

// readOnlyError is a refusal by read-only mode (exit 5).
type readOnlyError struct{ command string }

func (e readOnlyError) Error() string {
	return fmt.Sprintf("read-only mode (--read-only, DAYTWO_READ_ONLY or console.read_only): %s changes ServiceNow or an environment and is refused", e.command)
}

// guardReadOnly is daytwo's one read-only check for commands: it runs
// before every command. Writes are refused; mirrors (sync, the console)
// run without delivering writes or running updates (a.mirrorOnly).
func (a *app) guardReadOnly(cmd *cobra.Command) error {
	class := readOnlyClass(cmd)
	a.class = class
	if class == roRead {
		return nil
	}
	// Read-only mode may come from the flag or the environment alone (demo
	// writes its own configuration file later).
	cfg := a.cfg
	if cfg == nil {
		var err error
		if cfg, err = a.loadConfig(); err != nil {
			return err
		}
		if cfg.File != "" {
			a.cfg = cfg
		}
	}
	if !cfg.Console.ReadOnly {
		return nil
	}
	switch class {
	case roMirror:
		a.mirrorOnly = true
		return nil
	case roWriteUnlessDryRun:
		if dry, _ := cmd.Flags().GetBool("dry-run"); dry {
			return nil
		}
	}
	return readOnlyError{command: cmd.CommandPath()}
}

func (a *app) versionCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print daytwo's version",
		Args:  exactArgs(),
		RunE: a.preamble(&out, nil, func(cmd *cobra.Command, args []string) error {
			v := buildInfo()
			if out == outJSON {
				return a.printJSON(v)
			}
			fmt.Fprintf(a.stdout, "daytwo %s\ncommit:  %s\nbuilt:   %s\ngo:      %s\nschema:  %d\n", v.Version, v.Commit, v.Date, v.GoVersion, v.Schema)
			return nil
		}),
	}
	addOutputFlag(cmd, &out)
	return cmd
}
