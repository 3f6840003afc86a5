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
	cmd.AddCommand(a.outboxListCommand(), a.outboxRetryCommand())
	return cmd
}

func (a *app) outboxListCommand() *cobra.Command {
	var (
		out string
		all bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List pending and failed writes (--all: delivered too)",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			db, err := a.store(cmd.Context())
			if err != nil {
				return err
			}
			f := ops.OutboxFilter{}
			if all {
				f.States = []ops.OutboxState{ops.OutboxPending, ops.OutboxFailed, ops.OutboxDelivered}
			}
			items, err := db.ListOutbox(cmd.Context(), f)
			if err != nil {
				return err
			}
			if out == outJSON {
				return a.printJSON(append([]ops.OutboxItem{}, items...))
			}
			if len(items) == 0 {
				fmt.Fprintln(a.stdout, "outbox empty: every write reached ServiceNow")
				return nil
			}
			table := [][]string{{"ID", "KEY", "KIND", "STATE", "ATTEMPTS", "NEXT ATTEMPT", "LAST ERROR"}}
			for _, it := range items {
				next := "-"
				if it.State == ops.OutboxPending {
					next = formatTime(it.NextAttempt)
				}
				table = append(table, []string{strconv.FormatInt(it.ID, 10), it.Key, string(it.Kind), string(it.State),
					strconv.Itoa(it.Attempts), next, truncate(orDash(it.LastError), 60)})
			}
			return a.table(table)
		},
	}
	addOutputFlag(cmd, &out)
	cmd.Flags().BoolVar(&all, "all", false, "include delivered writes")
	return cmd
}

func (a *app) outboxRetryCommand() *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "retry [ID]",
		Short: "Make failed writes pending again (all, or one by ID) and deliver what is due now",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var id int64
			if len(args) == 1 {
				var err error
				if id, err = strconv.ParseInt(args[0], 10, 64); err != nil || id <= 0 {
					return usagef("outbox retry %q: want an item id from `daytwo outbox list`", args[0])
				}
			}
			if err := a.refuseReadOnly(); err != nil {
				return err
			}
			ctx := cmd.Context()
			svc, db, err := a.service(ctx)
			if err != nil {
				return err
			}
			if id != 0 {
				if _, err := db.GetOutbox(ctx, id); err != nil {
					return err
				}
			}
			n, err := db.RetryOutbox(ctx, id)
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
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long to try delivering now")
	return cmd
}
