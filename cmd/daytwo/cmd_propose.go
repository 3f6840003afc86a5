package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/ops/policy"
)

// proposeResult is `propose -o json`.
type proposeResult struct {
	ID          string           `json:"id"`
	Environment string           `json:"environment"`
	Version     string           `json:"version"`
	FromVersion string           `json:"from_version"`
	State       ops.UpdateState  `json:"state"`
	Change      string           `json:"change"`
	ChangeState string           `json:"change_state,omitempty"`
	PlanDigest  string           `json:"plan_digest"`
	Blocked     bool             `json:"blocked"`
	Reason      string           `json:"reason,omitempty"`
	Verdicts    []policy.Verdict `json:"verdicts"`
	Queued      int              `json:"queued"`
	DryRun      bool             `json:"dry_run"`
	Plan        ops.Plan         `json:"plan"`
	Superseded  []string         `json:"superseded,omitempty"`
}

// proposeOptions are `propose`'s flags and arguments.
type proposeOptions struct {
	out        string
	sets       []string
	changeType string
	start, end string
	dryRun     bool
	force      bool
	supersede  bool
	wait       time.Duration
	// bundle and parallel: `propose --bundle ENV SERVICE=VERSION...`.
	bundle, parallel bool
	// service and stage name the unit: SERVICE ENV, or ENV alone (its one
	// service).
	service, stage string
	// req is the request built from the arguments and flags; breq a
	// bundle's.
	req  ops.ProposeRequest
	breq ops.BundleRequest
}

// complete builds the request from the arguments and flags: usage errors
// before anything is loaded.
func (o *proposeOptions) complete(_ *cobra.Command, args []string) error {
	if o.bundle {
		return o.completeBundle(args)
	}
	if o.parallel {
		return usagef("--parallel: only with --bundle")
	}
	if len(args) == 3 {
		o.service, args = args[0], args[1:]
	}
	o.stage = args[0]
	if err := ops.ValidateVersion(args[1]); err != nil {
		return usageError{err}
	}
	o.req = ops.ProposeRequest{
		Environment: args[0], Version: args[1], ChangeType: ops.ChangeType(o.changeType), DryRun: o.dryRun,
		Force: o.force, Supersede: o.supersede, Set: map[string]string{},
	}
	for _, s := range o.sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return usagef("--set %q: want key=value", s)
		}
		o.req.Set[k] = v
	}
	var err error
	if o.req.Start, err = parseWhen("--start", o.start); err != nil {
		return err
	}
	o.req.End, err = parseWhen("--end", o.end)
	return err
}

func (a *app) proposeCommand() *cobra.Command {
	opts := &proposeOptions{}
	cmd := &cobra.Command{
		Use:   "propose [SERVICE] ENV VERSION | propose --bundle ENV SERVICE=VERSION...",
		Short: "Propose an update: plan it, check policies, and raise its change if the environment is gated",
		Long: `Plan moving SERVICE in ENV to VERSION (ENV alone when one service runs there;
with --set overrides of its config map), evaluate
the CEL policies, and record the update. For a gated environment the change
request is queued in the outbox and delivered at once when ServiceNow answers;
when it does not, it waits and nothing is lost ('daytwo outbox list').

One update per environment at a time: while ENV has an open update (proposed,
awaiting approval, approved, scheduled or running), a new proposal is refused
naming it; --supersede cancels it (its change too) and proposes this one in
the same transaction (a running update is never superseded). Proposing the
release ENV already runs (same version and config) is refused unless --force.

--bundle releases several services to ENV under ONE change request (a release
train): its description lists every service's plan and every service's CI is
attached to it. The services run in the order given (--parallel: all at once);
if one fails, every service already touched is rolled back, the others are not
started, the change is closed unsuccessful once and one incident names the
failed service. Any service refused refuses the whole bundle, creating nothing.

Exit 3 when a blocking policy fails (the update is recorded as blocked and
closed; nothing is raised), when another update is open, or when ENV already
runs this release.`,
		Args: proposeArgs(opts),
		RunE: a.runE(&opts.out, opts.complete, func(ctx context.Context, svc *ops.Service, _ []string) error {
			if opts.bundle {
				return a.runProposeBundle(ctx, svc, opts) // cmd_bundle.go
			}
			return a.runPropose(ctx, svc, opts)
		}),
	}
	addOutputFlag(cmd, &opts.out)
	f := cmd.Flags()
	f.StringArrayVar(&opts.sets, "set", nil, "override a config key: --set key=value (repeatable)")
	f.StringVar(&opts.changeType, "type", "", "change type: normal, standard or emergency (default: the environment's)")
	f.StringVar(&opts.start, "start", "", "planned window start (RFC 3339, e.g. 2026-11-27T22:00:00Z; default now)")
	f.StringVar(&opts.end, "end", "", "planned window end (RFC 3339; default start + the environment's change.window)")
	f.BoolVar(&opts.dryRun, "dry-run", false, "print the plan, config diff and policy verdicts without saving anything")
	f.BoolVar(&opts.force, "force", false, "propose even the release the environment already runs (a redeploy)")
	f.BoolVar(&opts.supersede, "supersede", false, "cancel the environment's open update (and its change) instead of refusing")
	f.DurationVar(&opts.wait, "wait", 30*time.Second, "how long to try delivering the change request now (0: leave it to the daemon)")
	f.BoolVar(&opts.bundle, "bundle", false, "release several services to ENV under one change: propose --bundle ENV SERVICE=VERSION...")
	f.BoolVar(&opts.parallel, "parallel", false, "with --bundle: run every service at once instead of in the order given")
	return cmd
}

func (a *app) runPropose(ctx context.Context, svc *ops.Service, opts *proposeOptions) error {
	req, out := opts.req, opts.out
	unit, err := a.proposeUnit(svc, opts.service, opts.stage)
	if err != nil {
		return err
	}
	req.Environment = unit
	p, perr := svc.Propose(ctx, req)
	if perr != nil && !errors.Is(perr, ops.ErrBlocked) {
		return perr
	}
	res := proposeResult{
		ID: p.Update.ID, Environment: p.Update.Environment, Version: p.Update.Version,
		FromVersion: p.Update.FromVersion, State: p.Update.State, PlanDigest: p.Update.PlanDigest, Blocked: p.Blocked,
		Reason: p.Update.Reason, Verdicts: append([]policy.Verdict{}, p.Verdicts...), Queued: len(p.Queued), DryRun: opts.dryRun, Plan: p.Plan,
	}
	for _, u := range p.Superseded {
		res.Superseded = append(res.Superseded, u.ID)
	}
	if !opts.dryRun && len(p.Queued) > 0 && opts.wait > 0 {
		dctx, cancel := context.WithTimeout(ctx, opts.wait)
		_, derr := svc.DeliverOutbox(dctx, p.Update.ID)
		cancel()
		if derr != nil && !errors.Is(derr, context.DeadlineExceeded) {
			a.log().Warn("delivering the change request failed; it stays queued", "update", p.Update.ID, "err", derr)
		}
		// What could not be read stays as proposed: the proposal stands.
		ps, _ := svc.ProposalStatus(ctx, p.Update.ID)
		if ps.Update != nil {
			res.State, res.Change = ps.Update.State, ps.Update.ChangeNumber
		}
		if ps.Change != nil {
			res.ChangeState = ps.Change.State.String()
		}
		res.Queued = ps.Queued
	}
	if out == outJSON {
		if err := a.printJSON(res); err != nil {
			return err
		}
		if perr != nil {
			return silentError{exitBlocked}
		}
		return nil
	}
	a.printProposal(res, p.Plan)
	return perr
}

func parseWhen(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, usagef("%s %q: want RFC 3339, e.g. 2026-11-27T22:00:00Z", flag, s)
	}
	return t.UTC(), nil
}

func (a *app) printProposal(r proposeResult, plan ops.Plan) {
	w := a.stdout
	if r.DryRun {
		fmt.Fprintln(w, "Dry run: nothing was saved or raised.")
		fmt.Fprintln(w)
		fmt.Fprint(w, plan.Text())
	} else {
		from := r.FromVersion
		if from == "" {
			from = "(nothing deployed)"
		}
		fmt.Fprintf(w, "Update %s: %s %s → %s\n", r.ID, r.Environment, from, r.Version)
		fmt.Fprintf(w, "State:       %s\n", r.State)
		switch {
		case r.Change != "":
			fmt.Fprintf(w, "Change:      %s (%s)\n", r.Change, orDash(r.ChangeState))
		case r.Queued > 0:
			fmt.Fprintf(w, "Change:      queued (%d write(s) wait for ServiceNow; see `daytwo outbox list`)\n", r.Queued)
		case plan.Gated:
			fmt.Fprintln(w, "Change:      not raised")
		default:
			fmt.Fprintln(w, "Change:      none needed (environment is not gated)")
		}
		fmt.Fprintf(w, "Plan digest: sha256:%s\n", r.PlanDigest)
		for _, id := range r.Superseded {
			fmt.Fprintf(w, "Superseded:  %s (canceled)\n", id)
		}
	}
	if len(r.Verdicts) > 0 {
		fmt.Fprintln(w, "Policies:")
		for _, v := range r.Verdicts {
			mark := "ok  "
			switch {
			case v.Blocking():
				mark = "BLOCK"
			case !v.Passed:
				mark = "warn"
			}
			line := fmt.Sprintf("  %-5s %s (%s)", mark, v.Policy, v.Action)
			if !v.Passed {
				line += ": " + verdictMessage(v)
			}
			fmt.Fprintln(w, line)
		}
	}
	if r.Blocked {
		fmt.Fprintf(w, "Blocked: %s\n", r.Reason)
	}
}

func verdictMessage(v policy.Verdict) string {
	if v.Error != "" {
		return "cannot be evaluated: " + v.Error
	}
	return orDash(v.Message)
}
