package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/ops"
)

func (a *app) serviceCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "service", Short: "Services and where each runs what"}
	cmd.AddCommand(a.serviceListCommand(), a.serviceShowCommand())
	return cmd
}

// serviceRow is one service in `service list`.
type serviceRow struct {
	Name string `json:"name"`
	// CI is the service's configuration item (of its first environment;
	// an environment may name another, see service show).
	CI           string       `json:"cmdb_ci"`
	Environments []serviceEnv `json:"environments"`
}

// serviceEnv is one (service, environment) pair at a glance.
type serviceEnv struct {
	Name    string     `json:"name"` // the pair's key
	Stage   string     `json:"stage"`
	Version string     `json:"version"`
	Health  ops.Health `json:"health"`
	Pending int        `json:"pending"`
	// Behind are the newer versions the promotion source ran successfully.
	Behind  []string `json:"behind"`
	Targets int      `json:"targets"`
	CI      string   `json:"cmdb_ci"`
}

func (a *app) serviceRows(ctx context.Context, svc *ops.Service) ([]serviceRow, error) {
	sts, err := svc.EnvironmentStatuses(ctx)
	if err != nil {
		return nil, err
	}
	var rows []serviceRow
	index := map[string]int{}
	for _, st := range sts {
		e := st.Environment
		i, ok := index[e.Service]
		if !ok {
			i = len(rows)
			index[e.Service] = i
			rows = append(rows, serviceRow{Name: e.Service, CI: e.Change.CmdbCI, Environments: []serviceEnv{}})
		}
		rows[i].Environments = append(rows[i].Environments, serviceEnv{
			Name: e.Name, Stage: e.StageName(), Version: st.Current.Version, Health: st.Health(),
			Pending: st.Pending, Behind: st.Behind, Targets: len(e.Targets), CI: e.Change.CmdbCI,
		})
	}
	return rows, nil
}

func (a *app) serviceListCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List services with the version and state of each environment",
		Long: `One row per service: in each environment it runs in, the current version
and its state (healthy, rolling out, rolled back, failed, drifted, pending,
not deployed), and "↑N" when the promotion source ran N newer versions.
A configuration without services: lists its one implicit service.`,
		Args: exactArgs(),
		RunE: a.runE(&out, nil, func(ctx context.Context, svc *ops.Service, _ []string) error {
			rows, err := a.serviceRows(ctx, svc)
			if err != nil {
				return err
			}
			return printList(a, out, rows, []string{"SERVICE", "CI", "ENVIRONMENTS"}, func(r serviceRow) []string {
				cells := make([]string, len(r.Environments))
				for i, e := range r.Environments {
					cells[i] = e.Stage + " " + orDash(e.Version) + " " + cellState(e)
				}
				return []string{r.Name, orDash(r.CI), strings.Join(cells, "  ")}
			})
		}),
	}
	addListFlags(cmd, &out)
	return cmd
}

// cellState is a pair's state in words, with its promotion lag.
func cellState(e serviceEnv) string {
	s := "(" + string(e.Health)
	if len(e.Behind) > 0 {
		s += fmt.Sprintf(", ↑%d", len(e.Behind))
	}
	return s + ")"
}

func (a *app) serviceShowCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "show SERVICE",
		Short: "Show one service: each environment's version, state, targets and CI",
		Args:  exactArgs("SERVICE"),
		RunE: a.runE(&out, nil, func(ctx context.Context, svc *ops.Service, args []string) error {
			rows, err := a.serviceRows(ctx, svc)
			if err != nil {
				return err
			}
			var names []string
			for _, r := range rows {
				if r.Name != args[0] {
					names = append(names, r.Name)
					continue
				}
				if out == outJSON {
					return a.printJSON(r)
				}
				fmt.Fprintf(a.stdout, "Service: %s (CI %s)\n", r.Name, orDash(r.CI))
				return printList(a, outTable, r.Environments, []string{"ENV", "KEY", "VERSION", "STATE", "PENDING", "BEHIND", "TARGETS", "CI"}, func(e serviceEnv) []string {
					return []string{
						e.Stage, e.Name, orDash(e.Version), string(e.Health), fmt.Sprint(e.Pending),
						orDash(strings.Join(e.Behind, ",")), fmt.Sprint(e.Targets), orDash(e.CI),
					}
				})
			}
			return usagef("no service named %q (configured: %s)", args[0], strings.Join(names, ", "))
		}),
	}
	addOutputFlag(cmd, &out)
	return cmd
}
