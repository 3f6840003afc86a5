package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/ops"
)

func (a *app) rollbackCommand() *cobra.Command {
	var (
		out, to, changeType string
		run, wait           bool
		supersede           bool
		timeout             time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rollback ENV",
		Short: "Propose returning an environment to its previous release (or --to VERSION), and run it",
		Long: `A rollback is an update like any other: it plans the return to an earlier
release (with that release's config) and checks policies. On a gated
environment it raises its own change (--type emergency for the emergency path)
and runs only once that change is approved: rolling back never bypasses the
change process. --run (default) runs it at once when the gate is open; --wait
waits for the approval first. While ENV has another open update the rollback
is refused naming it; --supersede cancels that update (and its change) first.`,
		Args: exactArgs("ENV"),
		RunE: a.runE(&out, nil, func(ctx context.Context, svc *ops.Service, args []string) error {
			env, err := a.envKey(svc, args[0])
			if err != nil {
				return err
			}
			defer svc.Wait()
			p, err := svc.ProposeRollback(ctx, ops.RollbackRequest{Environment: env, To: to, ChangeType: ops.ChangeType(changeType), Supersede: supersede})
			if err != nil {
				return err
			}
			if len(p.Queued) > 0 {
				dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				_, _ = svc.DeliverOutbox(dctx, p.Update.ID)
				cancel()
			}
			u, _ := svc.GetUpdate(ctx, p.Update.ID)
			if out == outTable {
				fmt.Fprintf(a.stdout, "Rollback %s: %s %s → %s (%s)", u.ID, u.Environment, orDash(u.FromVersion), u.Version, u.State)
				if u.ChangeNumber != "" {
					fmt.Fprintf(a.stdout, ", change %s", u.ChangeNumber)
				}
				fmt.Fprintln(a.stdout)
			}
			if !run {
				if out == outJSON {
					return a.printJSON(u)
				}
				return nil
			}
			if wait {
				if err := a.waitForGate(ctx, svc, u.ID, timeout, 5*time.Second, out == outTable); err != nil {
					return a.reportGate(ctx, svc, u.ID, out, err)
				}
			}
			return a.runAndReport(ctx, svc, u.ID, out)
		}),
	}
	addOutputFlag(cmd, &out)
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "version to return to (default: the release before the current one)")
	f.StringVar(&changeType, "type", "", "change type for a gated environment, e.g. emergency")
	f.BoolVar(&run, "run", true, "run the rollback when its gate is open (--run=false only proposes it)")
	f.BoolVar(&wait, "wait", false, "wait for the rollback's change to be approved, then run")
	f.DurationVar(&timeout, "timeout", time.Hour, "with --wait: give up after this long")
	f.BoolVar(&supersede, "supersede", false, "cancel the environment's open update (and its change) instead of refusing")
	return cmd
}
