package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/itsm"
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
		RunE: a.runE(&out, nil, func(ctx context.Context, svc *ops.Service, _ []string) error {
			events, err := svc.AuditEvents(ctx, filter)
			if err != nil {
				return err
			}
			return printList(a, out, events, []string{"SEQ", "TIME", "ACTOR", "ACTION", "ENV", "SUBJECT", "CHANGE", "RESULT"}, func(e ops.Event) []string {
				return []string{
					strconv.FormatInt(e.Seq, 10), formatTime(e.Time), e.Actor, e.Action,
					orDash(e.Environment), orDash(e.Subject), orDash(e.ChangeNumber), orDash(e.Result),
				}
			}, wideColumns[ops.Event]{header: []string{"UPDATE", "HASH"}, cells: func(e ops.Event) []string {
				return []string{orDash(e.UpdateID), e.Hash}
			}})
		}),
	}
	addListFlags(cmd, &out)
	cmd.Flags().StringVar(&filter.Environment, "env", "", "only events of this environment")
	cmd.Flags().StringVar(&filter.UpdateID, "update", "", "only events of this update")
	cmd.Flags().IntVar(&filter.Limit, "limit", 50, "show the newest N events (0 = all)")
	return cmd
}

// auditVerifyOptions are `audit verify`'s flags.
type auditVerifyOptions struct {
	out        string
	anchorFile string
	// anchorFileSet: --anchor-file was given (even empty: no anchor file).
	anchorFileSet bool
	againstSN     bool
}

func (a *app) auditVerifyCommand() *cobra.Command {
	opts := &auditVerifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the whole audit chain (and its anchors); exit 1 and name the first bad event if it was tampered with",
		Long: `Walks the hash chain and, with the audit key (DAYTWO_AUDIT_KEY or
audit.key_file), checks every event's HMAC. Anchors — the chain head written
at every run's close — are compared with the chain: those in the anchor file
(audit.anchor_file, or --anchor-file) always, those in the work notes of
daytwo's changes with --against-servicenow. A chain that was cut short,
emptied, or rewritten and rehashed fails (exit 1) naming the anchor that
disagrees.`,
		Args: exactArgs(),
		RunE: a.runE(&opts.out, func(cmd *cobra.Command, _ []string) error {
			opts.anchorFileSet = cmd.Flags().Changed("anchor-file")
			return nil
		}, func(ctx context.Context, svc *ops.Service, _ []string) error {
			return a.runAuditVerify(ctx, svc, opts)
		}),
	}
	addOutputFlag(cmd, &opts.out)
	cmd.Flags().BoolVar(&opts.againstSN, "against-servicenow", false, "also compare the chain with the anchors in the work notes of daytwo's changes")
	cmd.Flags().StringVar(&opts.anchorFile, "anchor-file", "", "anchor file to compare with (default: audit.anchor_file)")
	return cmd
}

func (a *app) runAuditVerify(ctx context.Context, svc *ops.Service, opts *auditVerifyOptions) error {
	cfg := a.cfg
	anchorFile := opts.anchorFile
	if !opts.anchorFileSet {
		anchorFile = cfg.Audit.AnchorFile
	}
	var (
		anchors []ops.AuditAnchor
		notes   []string
	)
	if anchorFile != "" {
		got, err := readAnchorFile(anchorFile)
		switch {
		case errors.Is(err, os.ErrNotExist):
			notes = append(notes, fmt.Sprintf("anchor file %s does not exist: no run closed since it was configured, or it was deleted", anchorFile))
		case err != nil:
			return err
		}
		anchors = append(anchors, got...)
	}
	if opts.againstSN {
		got, changes, err := a.serviceNowAnchors(ctx, cfg.ServiceNow.CorrelationPrefix)
		if err != nil {
			return err
		}
		notes = append(notes, fmt.Sprintf("ServiceNow: %d anchor(s) in the work notes of %d change(s) with correlation prefix %q", len(got), changes, cfg.ServiceNow.CorrelationPrefix))
		anchors = append(anchors, got...)
	}
	res, err := svc.VerifyAuditAnchors(ctx, anchors)
	if err != nil {
		return err
	}
	res.Notes = append(res.Notes, notes...)
	if opts.out == outJSON {
		if err := a.printJSON(res); err != nil {
			return err
		}
	} else {
		a.printVerification(res)
	}
	if !res.OK {
		return silentError{exitError}
	}
	return nil
}

func (a *app) printVerification(res ops.AuditVerification) {
	if res.OK {
		fmt.Fprintf(a.stdout, "audit chain ok: %d events, head %s\n", res.Events, orDash(res.HeadHash))
	} else {
		fmt.Fprintf(a.stdout, "audit chain BROKEN at event %d: %s\n", res.BadSeq, res.Problem)
		for _, p := range res.AnchorProblems {
			if p != res.Problem {
				fmt.Fprintf(a.stdout, "  also: %s\n", p)
			}
		}
	}
	switch {
	case res.KeyedFrom > 0 && res.MACsChecked:
		fmt.Fprintf(a.stdout, "  keyed (HMAC-SHA256) from event %d, key id %s: MACs checked\n", res.KeyedFrom, orDash(res.ChainKeyID))
	case res.KeyedFrom > 0:
		fmt.Fprintf(a.stdout, "  keyed (HMAC-SHA256) from event %d, key id %s: MACs NOT checked (no audit key)\n", res.KeyedFrom, orDash(res.ChainKeyID))
	default:
		fmt.Fprintln(a.stdout, "  not keyed: a rewrite-and-rehash is detected only by anchors")
	}
	if res.AnchorsChecked > 0 {
		fmt.Fprintf(a.stdout, "  anchors: %d compared (newest at event %d)\n", res.AnchorsChecked, res.LastAnchorSeq)
	} else {
		fmt.Fprintln(a.stdout, "  anchors: none compared (audit.anchor_file, --against-servicenow)")
	}
	for _, n := range res.Notes {
		fmt.Fprintf(a.stdout, "  note: %s\n", n)
	}
}

// serviceNowAnchors reads the audit anchors from the work notes of every
// change whose correlation id carries daytwo's prefix, straight from the
// instance (not the mirror, which lives in the database being checked).
func (a *app) serviceNowAnchors(ctx context.Context, prefix string) ([]ops.AuditAnchor, int, error) {
	client, err := a.itsmClient()
	if err != nil {
		return nil, 0, usageError{err}
	}
	if client == nil {
		return nil, 0, usagef("--against-servicenow: no ServiceNow instance is configured (servicenow.instance or DAYTWO_SN_INSTANCE)")
	}
	var changes []itsm.Change
	_, err = client.SyncChanges(ctx, itsm.SyncRequest{
		Query: "correlation_idSTARTSWITH" + prefix + ":", Fields: []string{"sys_id", "number", "correlation_id"},
		Until: a.clock().Add(time.Hour), // every change, including one closed a moment ago
	}, func(page []itsm.Change, _ itsm.Watermark) error {
		changes = append(changes, page...)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("audit verify: read daytwo's changes from ServiceNow: %w", err)
	}
	var out []ops.AuditAnchor
	for _, ch := range changes {
		entries, err := client.ListJournal(ctx, ch.SysID)
		if err != nil {
			return nil, 0, fmt.Errorf("audit verify: read the work notes of %s: %w", ch.Number, err)
		}
		for _, e := range entries {
			if e.Element != "work_notes" {
				continue
			}
			if an, ok := ops.ParseAnchorNote(e.Value); ok {
				an.Change, an.Time = ch.Number, e.CreatedOn
				an.Source = fmt.Sprintf("the work note of %s at %s", ch.Number, formatTime(e.CreatedOn))
				out = append(out, an)
			}
		}
	}
	return out, len(changes), nil
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
		RunE: a.runE(nil, nil, func(ctx context.Context, svc *ops.Service, _ []string) error {
			events, err := svc.AuditEvents(ctx, filter)
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
		}),
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
