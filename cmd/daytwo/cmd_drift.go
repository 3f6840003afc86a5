package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/ops"
)

func (a *app) driftCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "drift [ENV...]",
		Short: "Compare each environment's recorded release with what its targets report, and its promotion lag",
		Long: `Probes every target's version and compares it with the recorded release.
A target whose probe fails is "unknown": neither in line nor drifted.
Exit codes: 0 every target answered and reports the recorded release (or no
probe is configured), 6 at least one target drifted, 7 no drift seen but at
least one target's release is unknown.`,
		RunE: a.runE(&out, nil, func(ctx context.Context, svc *ops.Service, args []string) error {
			keys, err := a.envKeys(svc, args...)
			if err != nil {
				return err
			}
			reps, err := svc.Drift(ctx, keys...)
			if err != nil {
				return err
			}
			if out == outJSON {
				if err := a.printJSON(reps); err != nil {
					return err
				}
				return driftExit(reps)
			}
			for _, r := range reps {
				fmt.Fprintf(a.stdout, "%s: %s\n", r.Environment, r.Summary)
				for _, t := range r.Targets {
					switch {
					case t.Unknown:
						fmt.Fprintf(a.stdout, "  %-12s unknown (probe failed: %s)\n", t.Target, t.Error)
					case t.Drifted:
						fmt.Fprintf(a.stdout, "  %-12s reports %s, recorded %s (drift since %s)\n", t.Target, t.Reported, orDash(r.Recorded), formatTime(t.FirstSeen))
					default:
						fmt.Fprintf(a.stdout, "  %-12s %s\n", t.Target, t.Reported)
					}
				}
				if len(r.Behind) > 0 {
					fmt.Fprintf(a.stdout, "  behind %s by: %s\n", r.PromoteFrom, strings.Join(r.Behind, ", "))
				}
			}
			return driftExit(reps)
		}),
	}
	addOutputFlag(cmd, &out)
	return cmd
}

// driftExit maps drift reports onto the exit code: a drifted target wins
// over an unknown one (a known divergence is the more urgent news), and
// "in line" (0) needs every probe to have answered.
func driftExit(reps []ops.DriftReport) error {
	drifted, unknown := 0, 0
	for _, r := range reps {
		drifted += r.Drifted
		unknown += r.Unknown
	}
	switch {
	case drifted > 0:
		return silentError{exitDrifted}
	case unknown > 0:
		return silentError{exitUnknown}
	}
	return nil
}
