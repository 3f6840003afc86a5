package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/ops"
)

func (a *app) outboxCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "outbox", Short: "Writes waiting for ServiceNow"}
	cmd.AddCommand(a.outboxListCommand(), a.outboxRetryCommand(), a.outboxDiscardCommand())
	return cmd
}

func (a *app) outboxListCommand() *cobra.Command {
	var (
		out string
		all bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List pending and failed writes, with who is sending each now (--all: delivered, discarded and superseded too)",
		Args:  exactArgs(),
		RunE: a.runE(&out, nil, func(ctx context.Context, svc *ops.Service, _ []string) error {
			f := ops.OutboxFilter{}
			if all {
				f.States = []ops.OutboxState{ops.OutboxPending, ops.OutboxFailed, ops.OutboxDelivered, ops.OutboxDiscarded, ops.OutboxSuperseded}
			}
			items, err := svc.Outbox(ctx, f)
			if err != nil {
				return err
			}
			if out == outJSON {
				return a.printJSON(append([]ops.OutboxItem{}, items...))
			}
			if a.format == outName {
				for _, it := range items {
					fmt.Fprintln(a.stdout, it.ID)
				}
				return nil
			}
			if len(items) == 0 {
				fmt.Fprintln(a.stdout, "outbox empty: every write reached ServiceNow")
				return nil
			}
			now := a.clock()
			refused := map[string]int64{} // key -> first refused item on it
			for _, it := range items {
				if _, seen := refused[it.Key]; !seen && it.State == ops.OutboxFailed {
					refused[it.Key] = it.ID
				}
			}
			table := [][]string{{"ID", "KEY", "KIND", "STATE", "ATTEMPTS", "NEXT ATTEMPT", "CLAIMED BY", "LAST ERROR"}}
			var notes []string
			for _, it := range items {
				next, state := "-", string(it.State)
				if it.State == ops.OutboxPending {
					next = formatTime(it.NextAttempt)
					if b, ok := refused[it.Key]; ok && b < it.ID {
						state = fmt.Sprintf("held back by #%d", b)
					}
				}
				table = append(table, []string{
					strconv.FormatInt(it.ID, 10), it.Key, string(it.Kind), state,
					strconv.Itoa(it.Attempts), next, claimText(it, now), truncate(orDash(it.LastError), 60),
				})
				if it.State == ops.OutboxFailed && len([]rune(it.LastError)) > 60 {
					notes = append(notes, fmt.Sprintf("#%d %s: %s", it.ID, it.State, it.LastError))
				}
			}
			if a.noHeaders {
				table = table[1:]
			}
			if a.format == outWide {
				for i := range table {
					if i == 0 && !a.noHeaders {
						table[i] = append(table[i], "CREATED")
						continue
					}
					n := i
					if !a.noHeaders {
						n--
					}
					it := items[n]
					table[i] = append(table[i], formatTime(it.CreatedAt))
				}
			}
			if err := a.table(table); err != nil {
				return err
			}
			for _, n := range notes {
				fmt.Fprintln(a.stdout, n)
			}
			return nil
		}),
	}
	addListFlags(cmd, &out)
	cmd.Flags().BoolVar(&all, "all", false, "include delivered, discarded and superseded writes")
	return cmd
}

// claimText says who holds an item's claim (a delivery pass sending it),
// and whether that process is gone (the next delivery takes it at once).
func claimText(it ops.OutboxItem, now time.Time) string {
	switch {
	case it.ClaimedBy == "" || !it.Claimed(now) && !it.ClaimHolderGone():
		return "-"
	case it.ClaimHolderGone():
		return it.ClaimHolder() + " (process gone: released at the next delivery)"
	default:
		return it.ClaimHolder() + " until " + formatTime(it.ClaimedUntil)
	}
}

func (a *app) outboxDiscardCommand() *cobra.Command {
	var (
		reason string
		id     int64
	)
	cmd := &cobra.Command{
		Use:   "discard ID",
		Short: "Give up a write that will not be delivered (refused, or nobody can send it), so the writes behind it go on; audited",
		Args:  exactArgs("ID"),
		RunE: a.runE(nil, func(_ *cobra.Command, args []string) (err error) {
			if id, err = outboxID("discard", args[0]); err != nil {
				return err
			}
			return a.refuseReadOnly()
		}, func(ctx context.Context, svc *ops.Service, _ []string) error {
			it, err := svc.DiscardOutbox(ctx, id, reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "discarded #%d (%s on %s): it will never be sent; writes queued after it on %s are no longer held back\n",
				it.ID, it.Kind, it.Key, it.Key)
			return nil
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the audit log)")
	return cmd
}

func (a *app) outboxRetryCommand() *cobra.Command {
	var (
		wait time.Duration
		id   int64 // 0: every failed write
	)
	cmd := &cobra.Command{
		Use:   "retry [ID]",
		Short: "Make failed writes pending again (all, or one by ID) and deliver what is due now",
		Args:  cobra.MaximumNArgs(1),
		RunE: a.runE(nil, func(_ *cobra.Command, args []string) (err error) {
			if len(args) == 1 {
				if id, err = outboxID("retry", args[0]); err != nil {
					return err
				}
			}
			return a.refuseReadOnly()
		}, func(ctx context.Context, svc *ops.Service, _ []string) error {
			n, err := svc.RequeueOutbox(ctx, id)
			if err != nil {
				return err
			}
			dctx, cancel := context.WithTimeout(ctx, wait)
			st, derr := svc.DeliverOutbox(dctx)
			cancel()
			fmt.Fprintf(a.stdout, "requeued %d, delivered %d, still retrying %d, refused %d\n", n, st.Delivered, st.Retrying, st.Failed)
			if derr != nil && dctx.Err() == nil {
				return derr
			}
			if st.Failed > 0 {
				return fmt.Errorf("%d write(s) refused by ServiceNow; see `daytwo outbox list`", st.Failed)
			}
			return nil
		}),
	}
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long to try delivering now")
	return cmd
}

// outboxID reads an outbox item id argument of `outbox verb`.
func outboxID(verb, arg string) (int64, error) {
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef("outbox %s %q: want an item id from `daytwo outbox list`", verb, arg)
	}
	return id, nil
}
