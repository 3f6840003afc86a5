package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/ops/policy"
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
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			ctx := cmd.Context()
			svc, err := a.serviceFor(ctx, args[0])
			if err != nil {
				return err
			}
			defer svc.Wait()
			p, err := svc.ProposeRollback(ctx, ops.RollbackRequest{Environment: args[0], To: to, ChangeType: ops.ChangeType(changeType), Supersede: supersede})
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
		},
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

func (a *app) driftCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "drift [ENV...]",
		Short: "Compare each environment's recorded release with what its targets report, and its promotion lag",
		Long: `Probes every target's version and compares it with the recorded release.
A target whose probe fails is "unknown": neither in line nor drifted.
Exit codes: 0 every target answered and reports the recorded release (or no
probe is configured), 6 at least one target drifted, 7 no drift seen but at
least one target's release is unknown.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			svc, err := a.serviceFor(cmd.Context(), args...)
			if err != nil {
				return err
			}
			reps, err := svc.Drift(cmd.Context(), args...)
			if err != nil {
				return err
			}
			if out == outJSON {
				if err := a.printJSON(reps); err != nil {
					return err
				}
				return driftExit(reps)
			}
			for _, r := range reps {
				fmt.Fprintf(a.stdout, "%s: %s\n", r.Environment, r.Summary)
				for _, t := range r.Targets {
					switch {
					case t.Unknown:
						fmt.Fprintf(a.stdout, "  %-12s unknown (probe failed: %s)\n", t.Target, t.Error)
					case t.Drifted:
						fmt.Fprintf(a.stdout, "  %-12s reports %s, recorded %s (drift since %s)\n", t.Target, t.Reported, orDash(r.Recorded), formatTime(t.FirstSeen))
					default:
						fmt.Fprintf(a.stdout, "  %-12s %s\n", t.Target, t.Reported)
					}
				}
				if len(r.Behind) > 0 {
					fmt.Fprintf(a.stdout, "  behind %s by: %s\n", r.PromoteFrom, strings.Join(r.Behind, ", "))
				}
			}
			return driftExit(reps)
		},
	}
	addOutputFlag(cmd, &out)
	return cmd
}

// driftExit maps drift reports onto the exit code: a drifted target wins
// over an unknown one (a known divergence is the more urgent news), and
// "in line" (0) needs every probe to have answered.
func driftExit(reps []ops.DriftReport) error {
	drifted, unknown := 0, 0
	for _, r := range reps {
		drifted += r.Drifted
		unknown += r.Unknown
	}
	switch {
	case drifted > 0:
		return silentError{exitDrifted}
	case unknown > 0:
		return silentError{exitUnknown}
	}
	return nil
}

// policyRow is one verdict in `policy check -o json`.
type policyRow struct {
	Environment string `json:"environment"`
	Version     string `json:"version"`
	policy.Verdict
}

func (a *app) policyCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "CEL policies"}
	var out string
	check := &cobra.Command{
		Use:   "check [ENV...]",
		Short: "Evaluate policies against what each environment runs now (exit 3 if a blocking policy fails)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			svc, err := a.serviceFor(cmd.Context(), args...)
			if err != nil {
				return err
			}
			rows, err := svc.PolicyCheck(cmd.Context(), args...)
			if err != nil {
				return err
			}
			blocked := 0
			out2 := make([]policyRow, 0)
			for _, r := range rows {
				for _, v := range r.Verdicts {
					out2 = append(out2, policyRow{Environment: r.Environment, Version: r.Version, Verdict: v})
					if v.Blocking() {
						blocked++
					}
				}
			}
			if out == outJSON {
				if err := a.printJSON(out2); err != nil {
					return err
				}
			} else {
				table := [][]string{{"ENV", "VERSION", "POLICY", "ACTION", "RESULT", "MESSAGE"}}
				for _, r := range out2 {
					res := "pass"
					if !r.Passed {
						res = "FAIL"
					}
					msg := "-"
					if !r.Passed {
						msg = verdictMessage(r.Verdict)
					}
					table = append(table, []string{r.Environment, orDash(r.Version), r.Policy, r.Action, res, msg})
				}
				if err := a.table(table); err != nil {
					return err
				}
			}
			if blocked > 0 {
				if out == outJSON {
					return silentError{exitBlocked}
				}
				return fmt.Errorf("%d blocking policy verdict(s) fail: %w", blocked, ops.ErrBlocked)
			}
			return nil
		},
	}
	addOutputFlag(check, &out)
	cmd.AddCommand(check)
	return cmd
}

func (a *app) updateCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "update", Short: "Proposed updates: list, show, cancel, logs"}
	var (
		out, env string
		all      bool
		limit    int
		reason   string
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List updates with their change and gate status (newest first)",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			svc, _, err := a.service(cmd.Context())
			if err != nil {
				return err
			}
			f := ops.UpdateFilter{Environment: env, Limit: limit}
			if !all {
				f.States = ops.OpenUpdateStates()
			}
			sts, err := svc.UpdateStatuses(cmd.Context(), f)
			if err != nil {
				return err
			}
			if out == outJSON {
				return a.printJSON(append([]ops.UpdateStatus{}, sts...))
			}
			table := [][]string{{"ID", "ENV", "VERSION", "STATE", "CHANGE", "GATE"}}
			for _, s := range sts {
				table = append(table, []string{s.Update.ID, s.Update.Environment, s.Update.Version, string(s.Update.State),
					orDash(s.Update.ChangeNumber), truncate(s.GateText, 80)})
			}
			return a.table(table)
		},
	}
	addOutputFlag(list, &out)
	list.Flags().StringVar(&env, "env", "", "only this environment")
	list.Flags().BoolVar(&all, "all", false, "include finished updates")
	list.Flags().IntVar(&limit, "limit", 100, "at most this many")
	show := &cobra.Command{
		Use:   "show ID|CHG",
		Short: "Show an update: plan, config diff, policies, approvals, work notes, runs",
		Args:  exactArgs("ID|CHG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			svc, _, err := a.service(cmd.Context())
			if err != nil {
				return err
			}
			d, err := svc.UpdateDetail(cmd.Context(), args[0])
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
		},
	}
	addOutputFlag(show, &out)
	cancel := &cobra.Command{
		Use:   "cancel ID|CHG",
		Short: "Withdraw an update that has not started (its change is canceled in ServiceNow)",
		Args:  exactArgs("ID|CHG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, _, err := a.service(cmd.Context())
			if err != nil {
				return err
			}
			defer svc.Wait()
			u, err := svc.Cancel(cmd.Context(), args[0], reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "update %s canceled\n", u.ID)
			return nil
		},
	}
	cancel.Flags().StringVar(&reason, "reason", "", "why (recorded in the audit log and the change's work notes)")
	cmd.AddCommand(list, show, cancel, a.updateLogsCommand())
	return cmd
}
