package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/ops"
)

// proposeArgs checks propose's arguments: SERVICE ENV VERSION or ENV
// VERSION, or ENV SERVICE=VERSION... with --bundle.
func proposeArgs(opts *proposeOptions) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if opts.bundle {
			if len(args) < 3 {
				return usagef("%s --bundle: want ENV and at least two SERVICE=VERSION, got %d argument(s)", cmd.CommandPath(), len(args))
			}
			return nil
		}
		if len(args) != 2 && len(args) != 3 {
			return usagef("%s: want SERVICE ENV VERSION (or ENV VERSION when one service runs in ENV), got %d argument(s)", cmd.CommandPath(), len(args))
		}
		return nil
	}
}

// completeBundle builds the bundle request: ENV, then SERVICE=VERSION for
// each service in the order they run.
func (o *proposeOptions) completeBundle(args []string) error {
	switch {
	case len(o.sets) > 0:
		return usagef("--set does not apply to --bundle (each service's config is its own)")
	case o.supersede:
		return usagef("--supersede does not apply to --bundle: a bundle is refused while one of its services has an open update")
	}
	o.breq = ops.BundleRequest{Stage: args[0], Parallel: o.parallel, ChangeType: ops.ChangeType(o.changeType), Force: o.force, DryRun: o.dryRun}
	for _, arg := range args[1:] {
		name, version, ok := strings.Cut(arg, "=")
		if !ok || name == "" || version == "" {
			return usagef("--bundle: %q: want SERVICE=VERSION", arg)
		}
		if err := ops.ValidateVersion(version); err != nil {
			return usagef("--bundle: %s: %v", arg, err)
		}
		for _, m := range o.breq.Members {
			if m.Service == name {
				return usagef("--bundle: service %s is named twice", name)
			}
		}
		o.breq.Members = append(o.breq.Members, ops.BundleMember{Service: name, Version: version})
	}
	var err error
	if o.breq.Start, err = parseWhen("--start", o.start); err != nil {
		return err
	}
	o.breq.End, err = parseWhen("--end", o.end)
	return err
}

// proposeUnit is the environment (the store's unit key) a proposal names:
// SERVICE (positional or --service) in ENV, or ENV itself — a configured
// environment, or a stage where exactly one service runs.
func (a *app) proposeUnit(svc *ops.Service, service, stage string) (string, error) {
	if service == "" {
		service = a.serviceFlag
	}
	env, err := svc.ResolveEnvironment(service, stage)
	if err != nil {
		return "", usageError{err}
	}
	return env.Name, nil
}

// bundleResult is `propose --bundle -o json` and `run -o json` of a bundle.
type bundleResult struct {
	ID          string              `json:"id"`
	Environment string              `json:"environment"`
	Parallel    bool                `json:"parallel"`
	State       string              `json:"state,omitempty"`
	Change      string              `json:"change"`
	ChangeState string              `json:"change_state,omitempty"`
	Description string              `json:"change_short_description,omitempty"`
	Updates     []bundleMemberJSON  `json:"updates"`
	Rollbacks   []bundleMemberJSON  `json:"rollbacks,omitempty"`
	Failed      string              `json:"failed_service,omitempty"`
	Queued      int                 `json:"queued"`
	DryRun      bool                `json:"dry_run,omitempty"`
	Error       string              `json:"error,omitempty"`
	Verdicts    map[string][]string `json:"warnings,omitempty"`
}

type bundleMemberJSON struct {
	ID          string          `json:"id"`
	Service     string          `json:"service"`
	Environment string          `json:"environment"`
	Seq         int             `json:"bundle_seq"`
	Version     string          `json:"version"`
	FromVersion string          `json:"from_version"`
	State       ops.UpdateState `json:"state"`
	PlanDigest  string          `json:"plan_digest"`
	Reason      string          `json:"reason,omitempty"`
}

func bundleMember(svc *ops.Service, u ops.Update) bundleMemberJSON {
	name := u.Environment
	if env, err := svc.Environment(u.Environment); err == nil && env.Service != "" {
		name = env.Service
	}
	return bundleMemberJSON{
		ID: u.ID, Service: name, Environment: u.Environment, Seq: u.BundleSeq, Version: u.Version, FromVersion: u.FromVersion,
		State: u.State, PlanDigest: u.PlanDigest, Reason: u.Reason,
	}
}

func (a *app) runProposeBundle(ctx context.Context, svc *ops.Service, opts *proposeOptions) error {
	req := opts.breq
	for _, m := range req.Members {
		if _, err := svc.Unit(m.Service, req.Stage); err != nil {
			return usageError{fmt.Errorf("--bundle: %s: %w", m.Service, err)}
		}
	}
	bp, err := svc.ProposeBundle(ctx, req)
	if err != nil {
		return err
	}
	res := bundleResult{ID: bp.ID, Environment: bp.Stage, Parallel: bp.Parallel, Description: bp.Change, Queued: len(bp.Queued), DryRun: req.DryRun}
	ups := make([]ops.Update, len(bp.Members))
	for i, p := range bp.Members {
		ups[i] = p.Update
	}
	if !req.DryRun && len(bp.Queued) > 0 && opts.wait > 0 {
		dctx, cancel := context.WithTimeout(ctx, opts.wait)
		_, derr := svc.DeliverOutbox(dctx, bp.ID)
		cancel()
		if derr != nil && !errors.Is(derr, context.DeadlineExceeded) {
			a.log().Warn("delivering the change request failed; it stays queued", "bundle", bp.ID, "err", derr)
		}
		for i := range ups {
			if u, err := svc.GetUpdate(ctx, ups[i].ID); err == nil {
				ups[i] = u
			}
		}
		if ps, err := svc.ProposalStatus(ctx, bp.ID); err == nil {
			if ps.Change != nil {
				res.ChangeState = ps.Change.State.String()
			}
			res.Queued = ps.Queued
		}
	}
	res.Change = ups[0].ChangeNumber
	for _, u := range ups {
		res.Updates = append(res.Updates, bundleMember(svc, u))
	}
	for _, p := range bp.Members {
		for _, v := range p.Verdicts {
			if !v.Passed {
				if res.Verdicts == nil {
					res.Verdicts = map[string][]string{}
				}
				svcName := bundleMember(svc, p.Update).Service
				res.Verdicts[svcName] = append(res.Verdicts[svcName], v.Policy+": "+verdictMessage(v))
			}
		}
	}
	if opts.out == outJSON {
		return a.printJSON(res)
	}
	a.printBundle(res)
	return nil
}

func (a *app) printBundle(r bundleResult) {
	w := a.stdout
	if r.DryRun {
		fmt.Fprintln(w, "Dry run: nothing was saved or raised.")
	}
	order := "in this order"
	if r.Parallel {
		order = "all at once"
	}
	fmt.Fprintf(w, "Bundle %s: %d services to %s, %s\n", r.ID, len(r.Updates), r.Environment, order)
	if r.State != "" {
		fmt.Fprintf(w, "State:   %s\n", r.State)
	}
	switch {
	case r.Change != "":
		fmt.Fprintf(w, "Change:  %s (%s)\n", r.Change, orDash(r.ChangeState))
	case r.Queued > 0:
		fmt.Fprintf(w, "Change:  queued (%d write(s) wait for ServiceNow; see `daytwo outbox list`)\n", r.Queued)
	}
	for _, m := range r.Updates {
		line := fmt.Sprintf("  %d. %-12s %s → %s  update %s  %s", m.Seq, m.Service, orDash(m.FromVersion), m.Version, m.ID, m.State)
		if m.Reason != "" && m.State != ops.UpdateSucceeded {
			line += " (" + m.Reason + ")"
		}
		fmt.Fprintln(w, line)
	}
	for _, m := range r.Rollbacks {
		fmt.Fprintf(w, "  rollback of %s to %s: update %s %s\n", m.Service, m.Version, m.ID, m.State)
	}
	services := slices.Sorted(func(yield func(string) bool) {
		for s := range r.Verdicts {
			if !yield(s) {
				return
			}
		}
	})
	for _, s := range services {
		for _, v := range r.Verdicts[s] {
			fmt.Fprintf(w, "  warn %s: %s\n", s, v)
		}
	}
	if r.Failed != "" {
		fmt.Fprintf(w, "Failed:  %s; every service touched was rolled back, the others were stopped early or not started\n", r.Failed)
	}
}

// runBundleAndReport runs the bundle u belongs to (`daytwo run` on any of
// its members or its change).
func (a *app) runBundleAndReport(ctx context.Context, svc *ops.Service, u ops.Update, out string) error {
	res, err := svc.RunBundle(ctx, u.ID, a.progress(out))
	if res.ID == "" {
		return a.reportGate(ctx, svc, u.ID, out, err)
	}
	r := a.bundleReport(svc, res)
	if len(res.Runs) == 0 && err != nil && (errors.Is(err, ops.ErrApprovalPending) || errors.Is(err, ops.ErrBlocked)) && res.State == ops.BundleWaiting {
		return a.reportGate(ctx, svc, u.ID, out, err)
	}
	if out == outJSON {
		if err != nil {
			r.Error = err.Error()
		}
		return a.printRunJSON(r, err) // runprint.go
	}
	a.printBundle(r)
	a.printResumable(err, "bundle", res.ID)
	return err
}

// bundleReport is a bundle's outcome as `run` prints it.
func (a *app) bundleReport(svc *ops.Service, res ops.BundleResult) bundleResult {
	r := bundleResult{ID: res.ID, State: string(res.State), Failed: res.FailedService}
	for _, m := range res.Updates {
		r.Updates = append(r.Updates, bundleMember(svc, m))
		if r.Environment == "" {
			if env, eerr := svc.Environment(m.Environment); eerr == nil {
				r.Environment = env.StageName()
			}
			r.Change = m.ChangeNumber
		}
		r.Parallel = len(res.Updates) > 1 && res.Updates[0].BundleSeq == res.Updates[len(res.Updates)-1].BundleSeq
	}
	for _, m := range res.Rollbacks {
		r.Rollbacks = append(r.Rollbacks, bundleMember(svc, m))
	}
	return r
}

// bundleCell is `update list`'s BUNDLE column: the bundle and the member's
// place in it.
func bundleCell(u ops.Update) string {
	if u.BundleID == "" {
		return "-"
	}
	if u.Rollback {
		return u.BundleID + " rollback"
	}
	return u.BundleID + " #" + strconv.Itoa(u.BundleSeq)
}
