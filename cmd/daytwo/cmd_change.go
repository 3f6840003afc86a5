package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/ops"
)

func (a *app) changeCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "change", Short: "Mirrored ServiceNow change requests"}
	cmd.AddCommand(a.changeListCommand(), a.changeShowCommand(), a.changeDecideCommand(true), a.changeDecideCommand(false))
	return cmd
}

// changeRow is one change in `change list -o json`.
type changeRow struct {
	Number           string    `json:"number"`
	SysID            string    `json:"sys_id"`
	Type             string    `json:"type"`
	State            string    `json:"state"`
	StateCode        int       `json:"state_code"`
	Approval         string    `json:"approval"`
	ShortDescription string    `json:"short_description"`
	CmdbCI           string    `json:"cmdb_ci"`
	Start            time.Time `json:"start,omitzero"`
	End              time.Time `json:"end,omitzero"`
	CorrelationID    string    `json:"correlation_id"`
	Active           bool      `json:"active"`
	CloseCode        string    `json:"close_code,omitempty"`
	UpdatedOn        time.Time `json:"sys_updated_on"`
}

func toChangeRow(c ops.Change) changeRow {
	return changeRow{Number: c.Number, SysID: c.SysID, Type: string(c.Type), State: c.State.String(), StateCode: int(c.State),
		Approval: string(c.Approval), ShortDescription: c.ShortDescription, CmdbCI: c.CmdbCI, Start: c.StartDate, End: c.EndDate,
		CorrelationID: c.CorrelationID, Active: c.Active, CloseCode: c.CloseCode, UpdatedOn: c.SysUpdatedOn}
}

func (a *app) changeListCommand() *cobra.Command {
	var (
		out   string
		all   bool
		mine  bool
		limit int
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List mirrored change requests, most recently updated first (from the local mirror: works offline)",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			cfg, err := a.config()
			if err != nil {
				return err
			}
			db, err := a.store(cmd.Context())
			if err != nil {
				return err
			}
			f := ops.ChangeFilter{ActiveOnly: !all, Limit: limit}
			if mine {
				f.CorrelationPrefix = cfg.ServiceNow.CorrelationPrefix + ":"
			}
			changes, err := db.ListChanges(cmd.Context(), f)
			if err != nil {
				return err
			}
			rows := make([]changeRow, 0, len(changes))
			for _, c := range changes {
				rows = append(rows, toChangeRow(c))
			}
			if out == outJSON {
				return a.printJSON(rows)
			}
			table := [][]string{{"NUMBER", "TYPE", "STATE", "APPROVAL", "CI", "WINDOW", "DESCRIPTION"}}
			for _, r := range rows {
				table = append(table, []string{r.Number, r.Type, r.State, r.Approval, orDash(r.CmdbCI),
					window(r.Start, r.End), truncate(r.ShortDescription, 50)})
			}
			return a.table(table)
		},
	}
	addOutputFlag(cmd, &out)
	cmd.Flags().BoolVar(&all, "all", false, "include closed and canceled changes")
	cmd.Flags().BoolVar(&mine, "mine", false, "only changes daytwo raised (by correlation prefix)")
	cmd.Flags().IntVar(&limit, "limit", 200, "at most this many (0 = all)")
	return cmd
}

// changeDetail is `change show -o json`.
type changeDetail struct {
	changeRow
	RequestedBy     string         `json:"requested_by"`
	AssignmentGroup string         `json:"assignment_group"`
	Risk            string         `json:"risk"`
	Approvals       []ops.Approval `json:"approvals"`
	Update          *ops.Update    `json:"update,omitempty"`
	Incidents       []ops.Incident `json:"incidents"`
}

func (a *app) changeShowCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "show CHG",
		Short: "Show a mirrored change with its approvals and the daytwo update behind it",
		Args:  exactArgs("CHG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			ctx := cmd.Context()
			db, err := a.store(ctx)
			if err != nil {
				return err
			}
			c, err := db.GetChange(ctx, args[0])
			if err != nil {
				return fmt.Errorf("change %s is not in the local mirror (run `daytwo sync --once`): %w", args[0], err)
			}
			d := changeDetail{changeRow: toChangeRow(c), RequestedBy: c.RequestedBy, AssignmentGroup: c.AssignmentGroup, Risk: c.Risk,
				Approvals: []ops.Approval{}, Incidents: []ops.Incident{}}
			if as, err := db.Approvals(ctx, c.SysID); err == nil {
				d.Approvals = append(d.Approvals, as...)
			} else {
				return err
			}
			if u, err := db.GetUpdate(ctx, c.Number); err == nil {
				d.Update = &u
				if inc, err := db.Incidents(ctx, u.ID); err == nil {
					d.Incidents = append(d.Incidents, inc...)
				}
			}
			if out == outJSON {
				return a.printJSON(d)
			}
			w := a.stdout
			fmt.Fprintf(w, "Change:      %s (%s)\n", c.Number, c.Type)
			fmt.Fprintf(w, "State:       %s, approval %s\n", c.State, c.Approval)
			fmt.Fprintf(w, "Summary:     %s\n", c.ShortDescription)
			fmt.Fprintf(w, "CI / group:  %s / %s, risk %s\n", orDash(c.CmdbCI), orDash(c.AssignmentGroup), orDash(c.Risk))
			fmt.Fprintf(w, "Window:      %s\n", window(c.StartDate, c.EndDate))
			fmt.Fprintf(w, "Requested:   %s\n", orDash(c.RequestedBy))
			if c.CloseCode != "" {
				fmt.Fprintf(w, "Closed:      %s\n", c.CloseCode)
			}
			if d.Update != nil {
				fmt.Fprintf(w, "Update:      %s (%s → %s, %s)\n", d.Update.ID, d.Update.Environment, d.Update.Version, d.Update.State)
			}
			for _, inc := range d.Incidents {
				fmt.Fprintf(w, "Incident:    %s %s\n", inc.Number, inc.ShortDescription)
			}
			if len(d.Approvals) == 0 {
				fmt.Fprintln(w, "Approvals:   none")
				return nil
			}
			fmt.Fprintln(w, "Approvals:")
			for _, ap := range d.Approvals {
				fmt.Fprintf(w, "  %-10s %s\n", ap.State, orDash(firstNonEmpty(ap.ApproverName, ap.Approver)))
			}
			return nil
		},
	}
	addOutputFlag(cmd, &out)
	return cmd
}

func (a *app) changeDecideCommand(approve bool) *cobra.Command {
	var (
		comment string
		wait    time.Duration
		out     string
	)
	verb, use := "Approve", "approve CHG"
	if !approve {
		verb, use = "Reject", "reject CHG"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: verb + " a change as the configured ServiceNow user (four-eyes: not one you requested)",
		Args:  exactArgs("CHG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			ctx := cmd.Context()
			if err := a.refuseReadOnly(); err != nil {
				return err
			}
			svc, db, err := a.service(ctx)
			if err != nil {
				return err
			}
			ch, err := svc.Decide(ctx, ops.DecideRequest{Change: args[0], Approve: approve, Comment: comment})
			if err != nil {
				return err
			}
			if wait > 0 {
				dctx, cancel := context.WithTimeout(ctx, wait)
				_, _ = svc.DeliverOutbox(dctx, ch.Number)
				cancel()
			}
			st, err := svc.Decision(ctx, ch.Number)
			if err != nil {
				return err
			}
			last := st.Item
			after, _ := db.GetChange(ctx, ch.SysID)
			res := map[string]any{"number": ch.Number, "decision": map[bool]string{true: "approved", false: "rejected"}[approve],
				"outbox_id": last.ID, "as": svc.DecidesAs(), "delivery": last.State, "state": after.State.String(), "approval": after.Approval, "error": last.LastError}
			if st.BlockedBy != nil {
				res["blocked_by"] = st.BlockedBy.ID
			}
			if out == outJSON {
				if err := a.printJSON(res); err != nil {
					return err
				}
			}
			quiet := func(err error) error {
				if out != outJSON {
					return err
				}
				if errors.Is(err, ops.ErrBlocked) {
					return silentError{exitBlocked}
				}
				return silentError{exitError}
			}
			switch {
			case last.State == ops.OutboxDelivered:
				if out != outJSON {
					fmt.Fprintf(a.stdout, "%s %s: now %s, approval %s (decided as %s)\n", ch.Number, res["decision"], after.State, after.Approval, svc.DecidesAs())
				}
				return nil
			case last.State == ops.OutboxFailed:
				return quiet(fmt.Errorf("the decision on %s was not delivered (outbox item #%d): %s", ch.Number, last.ID, last.LastError))
			case st.BlockedBy != nil:
				b := st.BlockedBy
				return quiet(fmt.Errorf("the decision on %s is queued as outbox item #%d but will not be delivered: item #%d (%s) ahead of it on %s was refused: %s; retry it (`daytwo outbox retry %d`) or discard it (`daytwo outbox discard %d`): %w",
					ch.Number, last.ID, b.ID, b.Kind, b.Key, b.LastError, b.ID, b.ID, ops.ErrBlocked))
			default:
				if out != outJSON {
					fmt.Fprintf(a.stdout, "%s: decision queued as outbox item #%d; ServiceNow did not answer yet (%s). It will be delivered by `daytwo sync`.\n",
						ch.Number, last.ID, orDash(last.LastError))
				}
				return nil
			}
		},
	}
	addOutputFlag(cmd, &out)
	cmd.Flags().StringVar(&comment, "comment", "", "comment recorded with the decision (required to reject)")
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long to try delivering now (0: leave it to the daemon)")
	return cmd
}

// refuseReadOnly stops dangerous commands in read-only mode.
func (a *app) refuseReadOnly() error {
	cfg, err := a.config()
	if err != nil {
		return err
	}
	if cfg.Console.ReadOnly {
		return fmt.Errorf("read-only mode (console.read_only / --read-only): this command changes ServiceNow or an environment: %w", ops.ErrBlocked)
	}
	return nil
}

func window(start, end time.Time) string {
	if start.IsZero() && end.IsZero() {
		return "-"
	}
	return formatTime(start) + " → " + formatTime(end)
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
