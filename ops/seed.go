package ops

import "context"

// SeedHistory records versions (oldest first) as the release history of
// every configured environment that has no release yet, with its
// configured config, and audits it as actor's "release.seeded". Nothing
// runs: it is for a demo's first screens, so they are not empty.
func (s *Service) SeedHistory(ctx context.Context, actor string, versions ...string) error {
	current, err := s.store.CurrentReleases(ctx)
	if err != nil {
		return err
	}
	return s.store.Atomic(ctx, func(tx Tx) error {
		for _, e := range s.cfg.Environments {
			env := e.Name
			if _, seeded := current[env]; seeded {
				continue
			}
			for _, v := range versions {
				if _, err := tx.RecordRelease(ctx, Release{Environment: env, Version: v, Config: e.Config}); err != nil {
					return err
				}
			}
			if _, err := tx.AppendEvent(ctx, Event{
				Actor: actor, Action: "release.seeded", Subject: env, Environment: env,
				Result: "ok", Detail: map[string]any{"history": versions},
			}); err != nil {
				return err
			}
		}
		return nil
	})
}
