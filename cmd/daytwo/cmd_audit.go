package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/ops"
)

func (a *app) auditCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "The hash-chained audit log"}
	cmd.AddCommand(a.auditListCommand(), a.auditVerifyCommand(), a.auditExportCommand())
	return cmd
}

func (a *app) auditListCommand() *cobra.Command {
	var (
		out    string
		filter ops.EventFilter
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List audit events, oldest first",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			db, err := a.store(cmd.Context())
			if err != nil {
				return err
			}
			events, err := db.ListEvents(cmd.Context(), filter)
			if err != nil {
				return err
			}
			if out == outJSON {
				return a.printJSON(append([]ops.Event{}, events...))
			}
			table := [][]string{{"SEQ", "TIME", "ACTOR", "ACTION", "ENV", "SUBJECT", "CHANGE", "RESULT"}}
			for _, e := range events {
				table = append(table, []string{strconv.FormatInt(e.Seq, 10), formatTime(e.Time), e.Actor, e.Action,
					orDash(e.Environment), orDash(e.Subject), orDash(e.ChangeNumber), orDash(e.Result)})
			}
			return a.table(table)
		},
	}
	addOutputFlag(cmd, &out)
	cmd.Flags().StringVar(&filter.Environment, "env", "", "only events of this environment")
	cmd.Flags().StringVar(&filter.UpdateID, "update", "", "only events of this update")
	cmd.Flags().IntVar(&filter.Limit, "limit", 50, "show the newest N events (0 = all)")
	return cmd
}

func (a *app) auditVerifyCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the whole audit chain; exit 1 and name the first bad event if it was tampered with",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			db, err := a.store(cmd.Context())
			if err != nil {
				return err
			}
			res, err := db.VerifyAudit(cmd.Context())
			if err != nil {
				return err
			}
			if out == outJSON {
				if err := a.printJSON(res); err != nil {
					return err
				}
			} else if res.OK {
				fmt.Fprintf(a.stdout, "audit chain ok: %d events, head %s\n", res.Events, orDash(res.HeadHash))
			} else {
				fmt.Fprintf(a.stdout, "audit chain BROKEN at event %d: %s\n", res.BadSeq, res.Problem)
			}
			if !res.OK {
				return silentError{exitError}
			}
			return nil
		},
	}
	addOutputFlag(cmd, &out)
	return cmd
}

func (a *app) auditExportCommand() *cobra.Command {
	var (
		file   string
		filter ops.EventFilter
	)
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write audit events as JSON lines (one event per line) for a log pipeline",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := a.store(cmd.Context())
			if err != nil {
				return err
			}
			events, err := db.ListEvents(cmd.Context(), filter)
			if err != nil {
				return err
			}
			if file == "" {
				return writeJSONLines(a.stdout, events)
			}
			f, err := os.Create(file)
			if err != nil {
				return err
			}
			if err := writeJSONLines(f, events); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "wrote %d events to %s\n", len(events), file)
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "write to this file instead of standard output")
	cmd.Flags().Int64Var(&filter.AfterSeq, "after", 0, "only events after this sequence number (incremental export)")
	return cmd
}

func writeJSONLines(w io.Writer, events []ops.Event) error {
	enc := json.NewEncoder(w)
	for _, e := range events {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return nil
}
