package ops

import (
	"context"
	"errors"
	"sort"
)

// AutoRun is the daemon's engine step: it first recovers runs a dead
// process left behind, then, for every environment with auto_run, runs
// its oldest approved update whose gate is open. Environments are rolled
// one after another; a failed rollout (rolled back) is reported in the
// results, not as an error.
func (s *Service) AutoRun(ctx context.Context, progress func(RunEvent)) ([]RunResult, error) {
	results, err := s.RecoverRuns(ctx, progress)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	// One read of every runnable update, not one per environment (hundreds
	// with many services, nearly always empty).
	ready, err := s.store.ListUpdates(ctx, UpdateFilter{States: []UpdateState{UpdateApproved, UpdateScheduled}})
	if err != nil {
		return results, errors.Join(append(errs, err)...)
	}
	byEnv := map[string][]Update{}
	for _, u := range ready {
		byEnv[u.Environment] = append(byEnv[u.Environment], u)
	}
	for _, env := range s.cfg.Environments {
		if !env.AutoRun || ctx.Err() != nil {
			continue
		}
		ups := byEnv[env.Name]
		sort.Slice(ups, func(i, j int) bool { return ups[i].CreatedAt.Before(ups[j].CreatedAt) })
		// Releases and leases are read once for the environment's updates
		// (a run ends the loop).
		var facts gateFacts
		if len(ups) > 0 {
			if facts, err = s.gateFacts(ctx); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		for _, u := range ups {
			if u.BundleID != "" {
				continue // run by its bundle, in its order (AdvanceBundles)
			}
			g, err := s.gate(ctx, u, facts)
			if err != nil {
				errs = append(errs, err)
				break
			}
			if !g.Open {
				continue // e.g. its window opens later; a younger update may be ready
			}
			res, err := s.Run(ctx, RunRequest{Update: u.ID, Progress: progress})
			results = append(results, res)
			if err != nil && !errors.Is(err, ErrRunFailed) && !errors.Is(err, ErrBlocked) {
				errs = append(errs, err)
			}
			break // one run per environment per cycle
		}
	}
	if ctx.Err() == nil {
		ran, err := s.AdvanceBundles(ctx, progress)
		results = append(results, ran...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return results, errors.Join(errs...)
}
