package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/ops"
)

func (a *app) updateLogsCommand() *cobra.Command {
	var (
		out    string
		follow bool
		runID  string
		poll   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "logs ID|CHG",
		Short: "Print an update's run log: the output of its deploy, rollback and health commands",
		Long: `Print the log of the update's latest run (or --run RUN): every line the deploy,
rollback and health-check commands wrote, with its time, target and stream.
--follow keeps printing new lines until the run ends (or Ctrl-C); with -o json
each line is one JSON object (JSON lines).`,
		Args: exactArgs("ID|CHG"),
		RunE: a.runE(&out, nil, func(ctx context.Context, svc *ops.Service, args []string) error {
			u, err := svc.GetUpdate(ctx, args[0])
			if err != nil {
				return usagef("no update or change %q", args[0])
			}
			runs, err := svc.Runs(ctx, u.ID)
			if err != nil {
				return err
			}
			var run ops.Run
			for _, r := range runs {
				if runID == "" || r.ID == runID {
					run = r
					break
				}
			}
			switch {
			case run.ID == "" && runID != "":
				return usagef("update %s has no run %s", u.ID, runID)
			case run.ID == "" && !follow:
				return usagef("update %s (%s) has not run yet", u.ID, u.State)
			}
			return a.printRunLog(ctx, svc, u.ID, run, follow, poll, out)
		}),
	}
	addOutputFlag(cmd, &out)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until the run ends")
	cmd.Flags().StringVar(&runID, "run", "", "this run of the update (default: the latest)")
	cmd.Flags().DurationVar(&poll, "poll", 500*time.Millisecond, "with --follow: how often to look for new lines")
	return cmd
}

// printRunLog prints a run's log; following, it waits for the run to
// start (run.ID empty) and prints new lines until it has ended.
func (a *app) printRunLog(ctx context.Context, svc *ops.Service, updateID string, run ops.Run, follow bool, poll time.Duration, out string) error {
	var after int64
	for {
		if run.ID == "" {
			runs, err := svc.Runs(ctx, updateID)
			if err != nil {
				return err
			}
			if len(runs) > 0 {
				run = runs[0]
			}
		}
		ended := true
		if run.ID != "" {
			cur, err := svc.GetRun(ctx, run.ID)
			if err != nil {
				return err
			}
			ended = cur.State != ops.RunRunning
			// Read after the state: lines written before the run ended
			// are all there once it shows as ended.
			for {
				lines, err := svc.RunLog(ctx, run.ID, after, 1000)
				if err != nil {
					return err
				}
				for _, l := range lines {
					if err := a.printLogLine(l, out); err != nil {
						return err
					}
					after = l.ID
				}
				if len(lines) < 1000 {
					break
				}
			}
		}
		if !follow || (run.ID != "" && ended) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
	}
}

func (a *app) printLogLine(l ops.LogLine, out string) error {
	if out == outJSON {
		return a.printJSONLine(l)
	}
	_, err := fmt.Fprintf(a.stdout, "%s %-12s %-6s %s\n", l.Time.Local().Format("15:04:05.000"), orDash(l.Target), l.Stream, l.Line)
	return err
}
