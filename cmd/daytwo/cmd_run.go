package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/ops"
)

// runReport is `run -o json`.
type runReport struct {
	Update ops.Update `json:"update"`
	Run    *ops.Run   `json:"run,omitempty"`
	Gate   gateJSON   `json:"gate"`
	Error  string     `json:"error,omitempty"`
}

type gateJSON struct {
	Open     bool             `json:"open"`
	Pending  bool             `json:"pending"`
	Reasons  []ops.GateReason `json:"reasons"`
	NextOpen time.Time        `json:"next_open,omitzero"`
}

func toGateJSON(g ops.GateResult) gateJSON {
	return gateJSON{Open: g.Open, Pending: g.Pending, Reasons: append([]ops.GateReason{}, g.Reasons...), NextOpen: g.NextOpen}
}

func (a *app) runCommand() *cobra.Command {
	opts := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run (ID|CHG|ENV | --resume)",
		Short: "Run an update once its gate opens: batches, health checks, automatic rollback",
		Long: `Run an approved update: take the environment's lease, move the change to
Implement, roll out batch by batch with health checks and a bake period, and on
failure roll every touched target back to the previous release, close the
change unsuccessful and open an incident. Evidence (work notes, the run log)
goes to ServiceNow through the outbox.

When the gate is closed, every reason is printed: exit 4 while the change awaits
approval, exit 3 when something else blocks (window, freeze, conflict, an edited
plan, a policy, another run's lease). --wait keeps checking (syncing ServiceNow)
until the gate opens or --timeout passes.

ENV names the environment's open update (there is at most one).

--resume finishes runs a dead process left behind: it resumes them if their gate
is still open, otherwise rolls back what they touched. A bundle such a process
left unfinished goes on as ` + "`daytwo run CHG`" + ` would: its next services, or its
rollbacks, and its one close.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if opts.resume != (len(args) == 0) {
				return usagef("run: give an update id or change number, or --resume alone")
			}
			return nil
		},
		RunE: a.runE(&opts.out, nil, func(ctx context.Context, svc *ops.Service, args []string) error {
			defer svc.Wait()
			if opts.resume {
				return a.runResume(ctx, svc, opts.out)
			}
			return a.runRun(ctx, svc, args[0], opts)
		}),
	}
	addOutputFlag(cmd, &opts.out)
	f := cmd.Flags()
	f.BoolVar(&opts.wait, "wait", false, "wait for the gate to open (syncing ServiceNow meanwhile)")
	f.DurationVar(&opts.timeout, "timeout", time.Hour, "with --wait: give up after this long")
	f.DurationVar(&opts.poll, "poll", 5*time.Second, "with --wait: how often to check")
	f.BoolVar(&opts.resume, "resume", false, "recover runs interrupted by a crash (resume or roll back)")
	return cmd
}

// runOptions are `run`'s flags.
type runOptions struct {
	out     string
	wait    bool
	timeout time.Duration
	poll    time.Duration
	resume  bool
}

// runRun runs the update arg names, waiting for its gate first with --wait.
func (a *app) runRun(ctx context.Context, svc *ops.Service, arg string, opts *runOptions) error {
	u, err := a.updateToRun(ctx, svc, arg)
	if err != nil {
		return err
	}
	if opts.wait {
		if err := a.waitForGate(ctx, svc, u.ID, opts.timeout, opts.poll, opts.out == outTable); err != nil {
			return a.reportGate(ctx, svc, u.ID, opts.out, err)
		}
	}
	return a.runAndReport(ctx, svc, u.ID, opts.out)
}

// runResume finishes the runs dead processes left behind (`run --resume`)
// and goes on with the bundles they were part of.
func (a *app) runResume(ctx context.Context, svc *ops.Service, out string) error {
	results, bundles, err := svc.ResumeRuns(ctx, a.progress(out))
	if out == outJSON {
		reps := make([]runReport, 0, len(results))
		for _, r := range results {
			run := r.Run
			reps = append(reps, runReport{Update: r.Update, Run: &run, Gate: toGateJSON(r.Gate)})
		}
		if jerr := a.printJSON(reps); jerr != nil {
			return jerr
		}
	} else if len(results) == 0 && len(bundles) == 0 {
		fmt.Fprintln(a.stdout, "no interrupted runs")
	}
	if out != outJSON {
		for _, b := range bundles {
			a.printBundle(a.bundleReport(svc, b)) // cmd_bundle.go
		}
	}
	return err
}

// updateToRun finds the update an argument names: an update id, a change
// number, or an environment (its one open update).
func (a *app) updateToRun(ctx context.Context, svc *ops.Service, arg string) (ops.Update, error) {
	u, err := svc.GetUpdate(ctx, arg)
	if err == nil {
		return u, nil
	}
	env, enverr := svc.ResolveEnvironment(a.serviceFlag, arg)
	if enverr != nil {
		if a.serviceFlag != "" {
			return u, usageError{enverr}
		}
		return u, fmt.Errorf("no update or change %q: %w", arg, err)
	}
	arg = env.Name
	open, ok, lerr := svc.OpenUpdate(ctx, arg)
	switch {
	case lerr != nil:
		return u, lerr
	case !ok:
		return u, usagef("%s has no open update to run (propose one: daytwo propose %s VERSION)", arg, arg)
	}
	return open, nil
}

// progress prints run events as they happen (table output only).
func (a *app) progress(out string) func(ops.RunEvent) {
	return func(ev ops.RunEvent) {
		if out == outTable && ev.Message != "" {
			fmt.Fprintf(a.stdout, "%s  %s\n", ev.Time.Local().Format("15:04:05"), prefixTarget(ev))
		}
	}
}

// runAndReport runs an update, printing progress, and reports the outcome:
// the gate's reasons when it may not run (exit 3 or 4), the run otherwise.
func (a *app) runAndReport(ctx context.Context, svc *ops.Service, id, out string) error {
	if u, err := svc.GetUpdate(ctx, id); err == nil && u.BundleID != "" {
		return a.runBundleAndReport(ctx, svc, u, out) // cmd_bundle.go
	}
	res, err := svc.Run(ctx, ops.RunRequest{Update: id, Progress: a.progress(out)})
	if res.Run.ID == "" {
		return a.reportGate(ctx, svc, id, out, err)
	}
	if out == outJSON {
		run := res.Run
		rep := runReport{Update: res.Update, Run: &run, Gate: toGateJSON(res.Gate)}
		if err != nil {
			rep.Error = err.Error()
		}
		return a.printRunJSON(rep, err) // runprint.go
	}
	a.printResumable(err, "run", res.Run.ID)
	if err != nil {
		a.printFailedSteps(ctx, svc, res.Run.ID)
		return err
	}
	fmt.Fprintf(a.stdout, "run %s succeeded: %s is on %s\n", res.Run.ID, res.Update.Environment, res.Update.Version)
	return nil
}

// failedStepLines is how much of a failed step's output `run` prints.
const failedStepLines = 10

// printFailedSteps prints each failed step of a run with the last lines
// its command wrote, so the operator sees why without opening the console
// (`daytwo update logs` prints the whole log).
func (a *app) printFailedSteps(ctx context.Context, svc *ops.Service, runID string) {
	ctx = context.WithoutCancel(ctx) // an interrupted run's failure is still worth showing
	failed, err := svc.FailedSteps(ctx, runID, failedStepLines)
	if err != nil {
		return
	}
	for _, f := range failed {
		st := f.Step
		fmt.Fprintf(a.stdout, "step %s on %s failed (batch %d): %s\n", st.Step, orDash(st.Target), st.Batch, orDash(st.Detail))
		if len(f.Lines) == 0 {
			fmt.Fprintln(a.stdout, "  (the step wrote no output)")
		}
		for _, l := range f.Lines {
			fmt.Fprintf(a.stdout, "  | %s %s\n", l.Stream, l.Line)
		}
	}
	fmt.Fprintf(a.stdout, "the whole log: daytwo update logs %s --run %s\n", updateOfRun(ctx, svc, runID), runID)
}

func updateOfRun(ctx context.Context, svc *ops.Service, runID string) string {
	if r, err := svc.GetRun(ctx, runID); err == nil {
		return r.UpdateID
	}
	return "ID"
}

func prefixTarget(ev ops.RunEvent) string {
	if ev.Target == "" {
		return ev.Message
	}
	return ev.Target + ": " + ev.Message
}

// waitForGate polls until the update's gate opens, syncing ServiceNow so
// approvals arrive, and prints what it is waiting for when that changes.
func (a *app) waitForGate(ctx context.Context, svc *ops.Service, id string, timeout, poll time.Duration, verbose bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	for {
		if _, err := svc.SyncOnce(ctx); err != nil && verbose {
			a.log().Warn("sync while waiting failed; using the mirror", "err", err)
		}
		u, err := svc.GetUpdate(ctx, id)
		if err != nil {
			return err
		}
		g, err := svc.Gate(ctx, u)
		if err != nil {
			return err
		}
		if g.Open {
			return nil
		}
		if s := g.Summary(); s != last && verbose {
			fmt.Fprintf(a.stdout, "%s  waiting: %s\n", time.Now().Format("15:04:05"), s)
			last = s
		}
		if !g.Pending && g.NextOpen.IsZero() {
			return g.Err() // nothing time will fix
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("gave up after %s: %w", timeout, g.Err())
			}
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

// reportGate prints why an update may not run and returns the error whose
// exit code says so (3 blocked, 4 pending).
func (a *app) reportGate(ctx context.Context, svc *ops.Service, id, out string, cause error) error {
	u, err := svc.GetUpdate(ctx, id)
	if err != nil {
		return cause
	}
	g, gerr := svc.Gate(ctx, u)
	if gerr != nil {
		return cause
	}
	if out == outJSON {
		rep := runReport{Update: u, Gate: toGateJSON(g)}
		if cause != nil {
			rep.Error = cause.Error()
		}
		if err := a.printJSON(rep); err != nil {
			return err
		}
		switch {
		case errors.Is(cause, ops.ErrApprovalPending):
			return silentError{exitPending}
		case errors.Is(cause, ops.ErrBlocked):
			return silentError{exitBlocked}
		}
		return cause
	}
	if !g.Open {
		fmt.Fprintf(a.stdout, "update %s (%s → %s) may not run:\n", u.ID, u.Environment, u.Version)
		for _, r := range g.Reasons {
			if t := hintText(r.Hint); t != "" {
				r.Message += " (" + t + ")"
			}
			fmt.Fprintf(a.stdout, "  - %s: %s\n", r.Code, r.Message)
		}
		if !g.NextOpen.IsZero() {
			fmt.Fprintf(a.stdout, "  next opening: %s\n", g.NextOpen.UTC().Format(ops.TimeLayout))
		}
	}
	return cause
}
