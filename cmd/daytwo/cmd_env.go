package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/ops"
)

func (a *app) envCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "env", Short: "Configured environments and what they run"}
	cmd.AddCommand(a.envListCommand(), a.envShowCommand(), a.envDiffCommand())
	return cmd
}

// envRow is one environment in `env list -o json`.
type envRow struct {
	Name           string    `json:"name"`
	Service        string    `json:"service"`
	Stage          string    `json:"stage"`
	Tier           string    `json:"tier"`
	RequiresChange bool      `json:"requires_change"`
	ChangeType     string    `json:"change_type,omitempty"`
	AutoRun        bool      `json:"auto_run"`
	PromoteFrom    string    `json:"promote_from,omitempty"`
	Targets        []string  `json:"targets"`
	Version        string    `json:"version"`
	Digest         string    `json:"digest,omitempty"`
	DeployedAt     time.Time `json:"deployed_at,omitzero"`
}

func (a *app) envListCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List environments with their current release",
		Args:  exactArgs(),
		RunE: a.runE(&out, nil, func(ctx context.Context, svc *ops.Service, _ []string) error {
			return a.runEnvList(ctx, svc, out)
		}),
	}
	addListFlags(cmd, &out)
	return cmd
}

func (a *app) runEnvList(ctx context.Context, svc *ops.Service, out string) error {
	current, err := svc.CurrentReleases(ctx)
	if err != nil {
		return err
	}
	rows := make([]envRow, 0, len(a.cfg.Environments))
	for _, e := range a.cfg.Environments {
		if a.serviceFlag != "" && e.Service != a.serviceFlag {
			continue
		}
		r := envRow{
			Name: e.Name, Service: e.Service, Stage: e.StageName(), Tier: e.Tier, RequiresChange: e.RequiresChange, AutoRun: e.AutoRun,
			PromoteFrom: e.PromoteFrom, Targets: targetNames(e),
		}
		if e.RequiresChange {
			r.ChangeType = string(e.Change.Type)
		}
		if rel, ok := current[e.Name]; ok {
			r.Version, r.Digest, r.DeployedAt = rel.Version, rel.Digest, rel.CreatedAt
		}
		rows = append(rows, r)
	}
	if a.serviceFlag != "" && len(rows) == 0 {
		return usagef("no service named %q (configured: %s)", a.serviceFlag, strings.Join(svc.ServiceNames(), ", "))
	}
	header := []string{"NAME", "TIER", "GATE", "AUTO", "PROMOTES FROM", "TARGETS", "VERSION", "DEPLOYED"}
	services := len(a.cfg.Services) > 0
	if services {
		header = append([]string{"NAME", "SERVICE", "ENV"}, header[1:]...)
	}
	return printList(a, out, rows, header, func(r envRow) []string {
		gate := "none"
		if r.RequiresChange {
			gate = r.ChangeType + " change"
		}
		cells := []string{
			r.Name, r.Tier, gate, yesNo(r.AutoRun), orDash(r.PromoteFrom),
			strconv.Itoa(len(r.Targets)), orDash(r.Version), formatTime(r.DeployedAt),
		}
		if services {
			cells = append([]string{r.Name, r.Service, r.Stage}, cells[1:]...)
		}
		return cells
	}, wideColumns[envRow]{header: []string{"DIGEST", "TARGET NAMES"}, cells: func(r envRow) []string {
		return []string{orDash(r.Digest), strings.Join(r.Targets, ",")}
	}})
}

// envDetail is `env show -o json`.
type envDetail struct {
	ops.Environment
	Releases []ops.Release `json:"releases"`
}

// envShowOptions are `env show`'s flags and argument.
type envShowOptions struct {
	out   string
	limit int
	env   ops.Environment
}

func (a *app) envShowCommand() *cobra.Command {
	opts := &envShowOptions{}
	cmd := &cobra.Command{
		Use:   "show ENV",
		Short: "Show an environment's configuration and release history",
		Args:  exactArgs("ENV"),
		RunE: a.runE(&opts.out, func(_ *cobra.Command, args []string) (err error) {
			opts.env, err = a.environment(args[0])
			return err
		}, func(ctx context.Context, svc *ops.Service, _ []string) error {
			return a.runEnvShow(ctx, svc, opts)
		}),
	}
	addOutputFlag(cmd, &opts.out)
	cmd.Flags().IntVar(&opts.limit, "limit", 10, "how many releases of history to show (0 = all)")
	return cmd
}

func (a *app) runEnvShow(ctx context.Context, svc *ops.Service, opts *envShowOptions) error {
	e := opts.env
	rels, err := svc.Releases(ctx, e.Name, opts.limit)
	if err != nil {
		return err
	}
	if opts.out == outJSON {
		return a.printJSON(envDetail{Environment: e, Releases: append([]ops.Release{}, rels...)})
	}
	w := a.stdout
	fmt.Fprintf(w, "Environment:  %s (tier %s)\n", e.Name, e.Tier)
	if e.RequiresChange {
		fmt.Fprintf(w, "Gate:         %s change, CI %s, group %s, window %s\n", e.Change.Type, orDash(e.Change.CmdbCI), orDash(e.Change.AssignmentGroup), e.Change.Window)
	} else {
		fmt.Fprintln(w, "Gate:         none")
	}
	fmt.Fprintf(w, "Auto-run:     %s\n", yesNo(e.AutoRun))
	fmt.Fprintf(w, "Promotes:     %s\n", orDash(e.PromoteFrom))
	fmt.Fprintf(w, "Targets:      %s\n", strings.Join(targetNames(e), ", "))
	fmt.Fprintf(w, "Strategy:     batch %s, parallel %d, max failures %d, pause %s, bake %s\n",
		e.Strategy.BatchSize, e.Strategy.MaxParallel, e.Strategy.MaxFailures, e.Strategy.Pause, e.Strategy.Bake)
	fmt.Fprintf(w, "Deploy:       %s\n", strings.Join(e.Deploy.Command, " "))
	fmt.Fprintf(w, "Health:       %d check(s)\n", len(e.Health))
	fmt.Fprintf(w, "Config:       %s\n", formatConfig(e.Config))
	fmt.Fprintln(w)
	if len(rels) == 0 {
		fmt.Fprintln(w, "No release recorded yet.")
		return nil
	}
	return printList(a, outTable, rels, []string{"RELEASE", "VERSION", "STATUS", "UPDATE", "CREATED"}, func(r ops.Release) []string {
		return []string{strconv.FormatInt(r.ID, 10), r.Version, string(r.Status), orDash(r.UpdateID), formatTime(r.CreatedAt)}
	})
}

// envDiffRow is one difference in `env diff -o json`.
type envDiffRow struct {
	Key string `json:"key"`
	A   string `json:"a"`
	B   string `json:"b"`
}

func (a *app) envDiffCommand() *cobra.Command {
	var (
		out        string
		envA, envB ops.Environment
	)
	cmd := &cobra.Command{
		Use:   "diff A B",
		Short: "Show the version and config keys that differ between two environments",
		Long: `Compare what two environments run: the version of their current release and
their config maps (the deployed release's config, or the configured map where
nothing was deployed yet). Only differences are listed.`,
		Args: exactArgs("A", "B"),
		RunE: a.runE(&out, func(_ *cobra.Command, args []string) (err error) {
			if envA, err = a.environment(args[0]); err != nil {
				return err
			}
			envB, err = a.environment(args[1])
			return err
		}, func(ctx context.Context, svc *ops.Service, _ []string) error {
			return a.runEnvDiff(ctx, svc, envA, envB, out)
		}),
	}
	addOutputFlag(cmd, &out)
	return cmd
}

func (a *app) runEnvDiff(ctx context.Context, svc *ops.Service, envA, envB ops.Environment, out string) error {
	current, err := svc.CurrentReleases(ctx)
	if err != nil {
		return err
	}
	diff := diffReleases(effectiveRelease(envA, current), effectiveRelease(envB, current))
	if out == outTable && len(diff) == 0 {
		fmt.Fprintf(a.stdout, "%s and %s run the same version and config\n", envA.Name, envB.Name)
		return nil
	}
	return printList(a, out, diff, []string{"KEY", strings.ToUpper(envA.Name), strings.ToUpper(envB.Name)}, func(d envDiffRow) []string {
		return []string{d.Key, orDash(d.A), orDash(d.B)}
	})
}

// effectiveRelease is what an environment runs: its current release, or
// no version and the configured config when nothing was deployed.
func effectiveRelease(e ops.Environment, current map[string]ops.Release) ops.Release {
	if r, ok := current[e.Name]; ok {
		return r
	}
	return ops.Release{Environment: e.Name, Config: e.Config}
}

func diffReleases(a, b ops.Release) []envDiffRow {
	diff := []envDiffRow{}
	if a.Version != b.Version {
		diff = append(diff, envDiffRow{Key: "version", A: a.Version, B: b.Version})
	}
	for _, c := range ops.DiffConfig(a.Config, b.Config) {
		diff = append(diff, envDiffRow{Key: "config." + c.Key, A: c.From, B: c.To})
	}
	return diff
}

// environment returns a configured environment or a usage error listing
// the valid names.
func (a *app) environment(name string) (ops.Environment, error) {
	cfg, err := a.config()
	if err != nil {
		return ops.Environment{}, err
	}
	e, err := ops.ResolveEnvironment(cfg.Environments, a.serviceFlag, name)
	if err != nil {
		return ops.Environment{}, usageError{err}
	}
	return e, nil
}

func targetNames(e ops.Environment) []string {
	names := make([]string, 0, len(e.Targets))
	for _, t := range e.Targets {
		names = append(names, t.Name)
	}
	return names
}

func formatConfig(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, " ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
