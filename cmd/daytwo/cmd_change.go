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
	return changeRow{
		Number: c.Number, SysID: c.SysID, Type: string(c.Type), State: c.State.String(), StateCode: int(c.State),
		Approval: string(c.Approval), ShortDescription: c.ShortDescription, CmdbCI: c.CmdbCI, Start: c.StartDate, End: c.EndDate,
		CorrelationID: c.CorrelationID, Active: c.Active, CloseCode: c.CloseCode, UpdatedOn: c.SysUpdatedOn,
	}
}

// changeListOptions are `change list`'s flags.
type changeListOptions struct {
	out   string
	all   bool
	mine  bool
	limit int
}

func (a *app) changeListCommand() *cobra.Command {
	opts := &changeListOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List mirrored change requests, most recently updated first (from the local mirror: works offline)",
		Args:  exactArgs(),
		RunE: a.runE(&opts.out, nil, func(ctx context.Context, svc *ops.Service, _ []string) error {
			return a.runChangeList(ctx, svc, opts)
		}),
	}
	addListFlags(cmd, &opts.out)
	cmd.Flags().BoolVar(&opts.all, "all", false, "include closed and canceled changes")
	cmd.Flags().BoolVar(&opts.mine, "mine", false, "only changes daytwo raised (by correlation prefix)")
	cmd.Flags().IntVar(&opts.limit, "limit", 200, "at most this many (0 = all)")
	return cmd
}

func (a *app) runChangeList(ctx context.Context, svc *ops.Service, opts *changeListOptions) error {
	f := ops.ChangeFilter{ActiveOnly: !opts.all, Limit: opts.limit}
	if opts.mine {
		f.CorrelationPrefix = a.cfg.ServiceNow.CorrelationPrefix + ":"
	}
	changes, err := svc.Changes(ctx, f)
	if err != nil {
		return err
	}
	rows := make([]changeRow, 0, len(changes))
	for _, c := range changes {
		rows = append(rows, toChangeRow(c))
	}
	return printList(a, opts.out, rows, []string{"NUMBER", "TYPE", "STATE", "APPROVAL", "CI", "WINDOW", "DESCRIPTION"}, func(r changeRow) []string {
		return []string{r.Number, r.Type, r.State, r.Approval, orDash(r.CmdbCI), window(r.Start, r.End), truncate(r.ShortDescription, 50)}
	}, wideColumns[changeRow]{header: []string{"SYS_ID", "CORRELATION", "UPDATED"}, cells: func(r changeRow) []string {
		return []string{r.SysID, orDash(r.CorrelationID), formatTime(r.UpdatedOn)}
	}})
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
		RunE: a.runE(&out, nil, func(ctx context.Context, svc *ops.Service, args []string) error {
			return a.runChangeShow(ctx, svc, args[0], out)
		}),
	}
	addOutputFlag(cmd, &out)
	return cmd
}

func (a *app) runChangeShow(ctx context.Context, svc *ops.Service, number, out string) error {
	cd, err := svc.ChangeDetail(ctx, number)
	var nm *ops.NotMirroredError
	if errors.As(err, &nm) {
		return fmt.Errorf("change %s is not in the local mirror (run `daytwo sync --once`): %w", nm.Change, nm.Err)
	}
	if err != nil {
		return err
	}
	c := cd.Change
	d := changeDetail{
		changeRow: toChangeRow(c), RequestedBy: c.RequestedBy, AssignmentGroup: c.AssignmentGroup, Risk: c.Risk,
		Approvals: cd.Approvals, Update: cd.Update, Incidents: cd.Incidents,
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
}

// changeDecideOptions are `change approve|reject`'s flags.
type changeDecideOptions struct {
	approve bool
	comment string
	wait    time.Duration
	out     string
}

func (a *app) changeDecideCommand(approve bool) *cobra.Command {
	opts := &changeDecideOptions{approve: approve}
	verb, use := "Approve", "approve CHG"
	if !approve {
		verb, use = "Reject", "reject CHG"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: verb + " a change as the configured ServiceNow user (four-eyes: not one you requested)",
		Args:  exactArgs("CHG"),
		RunE: a.runE(&opts.out, func(*cobra.Command, []string) error { return a.refuseReadOnly() },
			func(ctx context.Context, svc *ops.Service, args []string) error {
				return a.runChangeDecide(ctx, svc, args[0], opts)
			}),
	}
	addOutputFlag(cmd, &opts.out)
	cmd.Flags().StringVar(&opts.comment, "comment", "", "comment recorded with the decision (required to reject)")
	cmd.Flags().DurationVar(&opts.wait, "wait", 30*time.Second, "how long to try delivering now (0: leave it to the daemon)")
	return cmd
}

func (a *app) runChangeDecide(ctx context.Context, svc *ops.Service, number string, opts *changeDecideOptions) error {
	out := opts.out
	ch, err := svc.Decide(ctx, ops.DecideRequest{Change: number, Approve: opts.approve, Comment: opts.comment})
	if err != nil {
		return err
	}
	if opts.wait > 0 {
		dctx, cancel := context.WithTimeout(ctx, opts.wait)
		_, _ = svc.DeliverOutbox(dctx, ch.Number)
		cancel()
	}
	st, err := svc.DecisionOutcome(ctx, ch)
	if err != nil {
		return err
	}
	last, after := st.Item, st.Change
	res := map[string]any{
		"number": ch.Number, "decision": map[bool]string{true: "approved", false: "rejected"}[opts.approve],
		"outbox_id": last.ID, "as": svc.DecidesAs(), "delivery": last.State, "state": after.State.String(), "approval": after.Approval, "error": last.LastError,
	}
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
