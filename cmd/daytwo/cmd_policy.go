package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/ops/policy"
)

// policyRow is one verdict in `policy check -o json`.
type policyRow struct {
	Environment string `json:"environment"`
	Version     string `json:"version"`
	policy.Verdict
}

func (a *app) policyCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "CEL policies"}
	var out string
	check := &cobra.Command{
		Use:   "check [ENV...]",
		Short: "Evaluate policies against what each environment runs now (exit 3 if a blocking policy fails)",
		RunE: a.runE(&out, nil, func(ctx context.Context, svc *ops.Service, args []string) error {
			keys, err := a.envKeys(svc, args...)
			if err != nil {
				return err
			}
			rows, err := svc.PolicyCheck(ctx, keys...)
			if err != nil {
				return err
			}
			return a.runPolicyCheck(rows, out)
		}),
	}
	addOutputFlag(check, &out)
	cmd.AddCommand(check)
	return cmd
}

func (a *app) runPolicyCheck(reports []ops.PolicyReport, out string) error {
	blocked := 0
	rows := make([]policyRow, 0)
	for _, r := range reports {
		for _, v := range r.Verdicts {
			rows = append(rows, policyRow{Environment: r.Environment, Version: r.Version, Verdict: v})
			if v.Blocking() {
				blocked++
			}
		}
	}
	if err := printList(a, out, rows, []string{"ENV", "VERSION", "POLICY", "ACTION", "RESULT", "MESSAGE"}, func(r policyRow) []string {
		res, msg := "pass", "-"
		if !r.Passed {
			res, msg = "FAIL", verdictMessage(r.Verdict)
		}
		return []string{r.Environment, orDash(r.Version), r.Policy, r.Action, res, msg}
	}); err != nil {
		return err
	}
	if blocked > 0 {
		if out == outJSON {
			return silentError{exitBlocked}
		}
		return fmt.Errorf("%d blocking policy verdict(s) fail: %w", blocked, ops.ErrBlocked)
	}
	return nil
}
