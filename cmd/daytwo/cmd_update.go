package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/ops"
)

func (a *app) updateCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "update", Short: "Proposed updates: list, show, cancel, logs"}
	cmd.AddCommand(a.updateListCommand(), a.updateShowCommand(), a.updateCancelCommand(), a.updateLogsCommand())
	return cmd
}

// updateListOptions are `update list`'s flags.
type updateListOptions struct {
	out, env string
	all      bool
	limit    int
}

func (a *app) updateListCommand() *cobra.Command {
	opts := &updateListOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List updates with their change and gate status (newest first)",
		Args:  exactArgs(),
		RunE: a.runE(&opts.out, nil, func(ctx context.Context, svc *ops.Service, _ []string) error {
			return a.runUpdateList(ctx, svc, opts)
		}),
	}
	addListFlags(cmd, &opts.out)
	cmd.Flags().StringVar(&opts.env, "env", "", "only this environment (a stage with --service, or service/stage)")
	cmd.Flags().BoolVar(&opts.all, "all", false, "include finished updates")
	cmd.Flags().IntVar(&opts.limit, "limit", 100, "at most this many")
	return cmd
}

func (a *app) runUpdateList(ctx context.Context, svc *ops.Service, opts *updateListOptions) error {
	// --env and --service name pairs: one (--env, maybe with --service),
	// every pair of the service (--service alone), or all (neither).
	keys := []string{""}
	switch {
	case opts.env != "":
		key, err := a.envKey(svc, opts.env)
		if err != nil {
			return err
		}
		keys = []string{key}
	case a.serviceFlag != "":
		var err error
		if keys, err = a.envKeys(svc); err != nil {
			return err
		}
	}
	var sts []ops.UpdateStatus
	for _, key := range keys {
		f := ops.UpdateFilter{Environment: key, Limit: opts.limit}
		if !opts.all {
			f.States = ops.OpenUpdateStates()
		}
		some, err := svc.UpdateStatuses(ctx, f)
		if err != nil {
			return err
		}
		sts = append(sts, some...)
	}
	if len(keys) > 1 { // newest first across the service's pairs, as for one
		slices.SortStableFunc(sts, func(x, y ops.UpdateStatus) int {
			return cmp.Or(y.Update.CreatedAt.Compare(x.Update.CreatedAt), strings.Compare(y.Update.ID, x.Update.ID))
		})
		if opts.limit > 0 && len(sts) > opts.limit {
			sts = sts[:opts.limit]
		}
	}
	return printList(a, opts.out, sts, []string{"ID", "ENV", "VERSION", "STATE", "CHANGE", "BUNDLE", "GATE"}, func(s ops.UpdateStatus) []string {
		return []string{
			s.Update.ID, s.Update.Environment, s.Update.Version, string(s.Update.State),
			orDash(s.Update.ChangeNumber), bundleCell(s.Update), truncate(s.GateText, 80),
		}
	}, wideColumns[ops.UpdateStatus]{header: []string{"FROM", "CREATED BY", "CREATED", "LAST RUN"}, cells: func(s ops.UpdateStatus) []string {
		run := "-"
		if s.LastRun != nil {
			run = s.LastRun.ID + " " + string(s.LastRun.State)
		}
		return []string{orDash(s.Update.FromVersion), orDash(s.Update.CreatedBy), formatTime(s.Update.CreatedAt), run}
	}})
}

func (a *app) updateShowCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "show ID|CHG",
		Short: "Show an update: plan, config diff, policies, approvals, work notes, runs",
		Args:  exactArgs("ID|CHG"),
		RunE: a.runE(&out, nil, func(ctx context.Context, svc *ops.Service, args []string) error {
			return a.runUpdateShow(ctx, svc, args[0], out)
		}),
	}
	addOutputFlag(cmd, &out)
	return cmd
}

func (a *app) runUpdateShow(ctx context.Context, svc *ops.Service, id, out string) error {
	d, err := svc.UpdateDetail(ctx, id)
	if err != nil {
		return err
	}
	if out == outJSON {
		return a.printJSON(d)
	}
	w := a.stdout
	u := d.Update
	fmt.Fprintf(w, "Update %s: %s %s → %s, %s\n", u.ID, u.Environment, orDash(u.FromVersion), u.Version, u.State)
	if u.ChangeNumber != "" {
		state := "not mirrored yet"
		if d.Change != nil {
			state = d.Change.State.String() + ", approval " + string(d.Change.Approval)
		}
		fmt.Fprintf(w, "Change: %s (%s)\n", u.ChangeNumber, state)
	}
	fmt.Fprintf(w, "Gate:   %s\n\n", d.GateText)
	fmt.Fprint(w, d.PlanText)
	for _, v := range d.Verdicts {
		res := "pass"
		if !v.Passed {
			res = "FAIL: " + verdictMessage(v)
		}
		fmt.Fprintf(w, "Policy %s (%s): %s\n", v.Policy, v.Action, res)
	}
	for _, ap := range d.Approvals {
		fmt.Fprintf(w, "Approval: %s %s\n", ap.State, firstNonEmpty(ap.ApproverName, ap.Approver))
	}
	for _, n := range d.Notes {
		mark := "queued"
		if n.Delivered {
			mark = "sent"
		}
		fmt.Fprintf(w, "Work note (%s): %s\n", mark, strings.ReplaceAll(n.Text, "\n", "\n  "))
	}
	for _, inc := range d.Incidents {
		fmt.Fprintf(w, "Incident: %s %s\n", inc.Number, inc.ShortDescription)
	}
	for _, r := range d.Runs {
		fmt.Fprintf(w, "Run %s: %s %s, started %s\n", r.ID, r.Kind, r.State, formatTime(r.StartedAt))
	}
	return nil
}

func (a *app) updateCancelCommand() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "cancel ID|CHG",
		Short: "Withdraw an update that has not started (its change is canceled in ServiceNow)",
		Args:  exactArgs("ID|CHG"),
		RunE: a.runE(nil, nil, func(ctx context.Context, svc *ops.Service, args []string) error {
			defer svc.Wait()
			u, err := svc.Cancel(ctx, args[0], reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "update %s canceled\n", u.ID)
			return nil
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the audit log and the change's work notes)")
	return cmd
}
