package ops

import (
	"context"
	"fmt"
)

// Compliance evaluates the policies against what every environment runs
// now and records transitions: a newly failing policy opens an alert (a
// warning in the log and an audit event), a passing one closes it. It
// returns the alerts open afterwards.
func (s *Service) Compliance(ctx context.Context) ([]PolicyAlert, error) {
	reports, err := s.PolicyCheck(ctx)
	if err != nil {
		return nil, err
	}
	// Only an open alert can be resolved: one read instead of a write per
	// passing verdict per cycle (hundreds with many services).
	before, err := s.store.OpenPolicyAlerts(ctx)
	if err != nil {
		return nil, err
	}
	open := make(map[[2]string]bool, len(before))
	for _, a := range before {
		open[[2]string{a.Environment, a.Policy}] = true
	}
	for _, r := range reports {
		for _, v := range r.Verdicts {
			if !v.Passed {
				opened, err := s.store.OpenPolicyAlert(ctx, r.Environment, v.Policy, v.Action, verdictText(v))
				if err != nil {
					return nil, err
				}
				if opened {
					s.log.Warn("policy violated", "environment", r.Environment, "policy", v.Policy, "action", v.Action, "version", r.Version, "message", verdictText(v))
					if err := s.auditAlone(ctx, Event{
						Actor: "daytwo", Action: "policy.violated", Subject: v.Policy, Environment: r.Environment,
						Result: v.Action, Detail: map[string]any{"version": r.Version, "message": verdictText(v)},
					}); err != nil {
						return nil, err
					}
				}
				continue
			}
			if !open[[2]string{r.Environment, v.Policy}] {
				continue
			}
			resolved, err := s.store.ResolvePolicyAlert(ctx, r.Environment, v.Policy)
			if err != nil {
				return nil, err
			}
			if resolved {
				s.log.Info("policy passes again", "environment", r.Environment, "policy", v.Policy)
				if err := s.auditAlone(ctx, Event{
					Actor: "daytwo", Action: "policy.resolved", Subject: v.Policy, Environment: r.Environment,
					Result: "ok", Detail: map[string]any{"version": r.Version},
				}); err != nil {
					return nil, err
				}
			}
		}
	}
	return s.store.OpenPolicyAlerts(ctx)
}

func (s *Service) auditAlone(ctx context.Context, ev Event) error {
	return s.store.Atomic(ctx, func(tx Tx) error { return s.audit(ctx, tx, ev) })
}

// proposalBlockers returns the open compliance alerts that refuse new
// proposals for env (policies with block_proposals).
func (s *Service) proposalBlockers(ctx context.Context, env string) ([]string, error) {
	alerts, err := s.store.OpenPolicyAlerts(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range alerts {
		if a.Environment != env {
			continue
		}
		for _, p := range s.cfg.Policies {
			if p.Name == a.Policy && p.BlockProposals {
				out = append(out, fmt.Sprintf("policy %s fails on what %s runs now (since %s): %s", a.Policy, env,
					fmtTime(a.FirstSeen), a.Message))
			}
		}
	}
	return out, nil
}

// ComplianceStore keeps continuous-compliance findings.
type ComplianceStore interface {
	OpenPolicyAlert(ctx context.Context, env, policy, action, message string) (opened bool, err error)
	ResolvePolicyAlert(ctx context.Context, env, policy string) (resolved bool, err error)
	OpenPolicyAlerts(ctx context.Context) ([]PolicyAlert, error)
}
