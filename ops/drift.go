package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Probers builds the version prober of an environment (nil when it has
// no version_probe).
type Probers func(env Environment) (VersionProber, error)

// WithProbers sets how targets are asked which version they run.
func WithProbers(p Probers) Option { return func(s *Service) { s.probers = p } }

// TargetDrift is one target's reported version against the recorded one.
type TargetDrift struct {
	Target   string `json:"target"`
	Reported string `json:"reported,omitempty"`
	Error    string `json:"error,omitempty"`
	Drifted  bool   `json:"drifted"`
	// Unknown is true when the probe failed: the target's release is not
	// known, so it is neither in line nor drifted.
	Unknown   bool      `json:"unknown"`
	FirstSeen time.Time `json:"first_seen,omitzero"`
}

// DriftReport compares an environment's recorded release with what its
// targets report, and its release with its promotion source's.
type DriftReport struct {
	Environment string        `json:"environment"`
	Recorded    string        `json:"recorded"`
	Probed      bool          `json:"probed"`
	Targets     []TargetDrift `json:"targets"`
	Drifted     int           `json:"drifted"`
	// Unknown counts the targets whose probe failed.
	Unknown     int    `json:"unknown"`
	PromoteFrom string `json:"promote_from,omitempty"`
	// Behind lists the source's successful releases newer than what this
	// environment runs, oldest first.
	Behind  []string `json:"behind"`
	Summary string   `json:"summary"`
}

// Drift probes every target of the named environments (all when none are
// named) and reports divergence and promotion lag. The first sighting of a
// divergence is remembered, so its age is reported.
func (s *Service) Drift(ctx context.Context, envs ...string) ([]DriftReport, error) {
	releases, err := s.store.CurrentReleases(ctx)
	if err != nil {
		return nil, err
	}
	var out []DriftReport
	for _, env := range s.cfg.Environments {
		if len(envs) > 0 && !slices.Contains(envs, env.Name) {
			continue
		}
		rep := DriftReport{Environment: env.Name, Recorded: releases[env.Name].Version, PromoteFrom: env.PromoteFrom, Targets: []TargetDrift{}, Behind: []string{}}
		if err := s.probeEnv(ctx, env, &rep); err != nil {
			return out, err
		}
		if env.PromoteFrom != "" {
			if rep.Behind, err = s.promotionLag(ctx, env, releases[env.Name].Version); err != nil {
				return out, err
			}
		}
		rep.Summary = driftSummary(rep)
		out = append(out, rep)
	}
	return out, nil
}

func (s *Service) probeEnv(ctx context.Context, env Environment, rep *DriftReport) error {
	if s.probers == nil || (env.VersionProbe.HTTP == nil && len(env.VersionProbe.Command) == 0) {
		return nil
	}
	p, err := s.probers(env)
	if err != nil || p == nil {
		return err
	}
	rep.Probed = true
	rep.Targets = make([]TargetDrift, len(env.Targets))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, t := range env.Targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			td := TargetDrift{Target: t.Name}
			v, err := p.Probe(ctx, env.Name, t)
			if err != nil {
				td.Error = err.Error()
			} else {
				td.Reported = v
			}
			rep.Targets[i] = td
		}()
	}
	wg.Wait()
	for i := range rep.Targets {
		td := &rep.Targets[i]
		if td.Error != "" {
			td.Unknown = true
			rep.Unknown++
			continue
		}
		if td.Reported != rep.Recorded {
			td.Drifted = true
			rep.Drifted++
			first, err := s.store.DriftSeen(ctx, env.Name, td.Target, rep.Recorded, td.Reported)
			if err != nil {
				return err
			}
			td.FirstSeen = first
		} else if err := s.store.DriftCleared(ctx, env.Name, td.Target); err != nil {
			return err
		}
	}
	return nil
}

// promotionLag lists the source environment's successful releases that
// came after the version env runs.
func (s *Service) promotionLag(ctx context.Context, env Environment, current string) ([]string, error) {
	// The source is usually a release or two ahead: read its newest
	// releases first, its whole history only when current is not among
	// them.
	const recent = 32
	rels, err := s.store.Releases(ctx, env.PromoteFrom, recent)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if len(rels) == recent && !slices.ContainsFunc(rels, func(r Release) bool { return r.Version == current }) {
		if rels, err = s.store.Releases(ctx, env.PromoteFrom, 0); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	behind := []string{}
	for _, r := range rels { // newest first
		if r.Version == current {
			break
		}
		if r.Status != ReleaseRolledBack && !slices.Contains(behind, r.Version) {
			behind = append(behind, r.Version)
		}
	}
	slices.Reverse(behind)
	return behind, nil
}

func driftSummary(r DriftReport) string {
	var parts []string
	if r.Probed {
		switch {
		case r.Unknown == len(r.Targets) && r.Unknown > 0:
			parts = append(parts, fmt.Sprintf("release unknown: no target answered its version probe (%d unknown)", r.Unknown))
		case r.Drifted == 0 && r.Unknown == 0:
			parts = append(parts, "every target reports the recorded release")
		case r.Drifted == 0:
			parts = append(parts, fmt.Sprintf("%d of %d target(s) report the recorded release; %d unknown (probe failed)", len(r.Targets)-r.Unknown, len(r.Targets), r.Unknown))
		default:
			oldest := time.Time{}
			for _, t := range r.Targets {
				if t.Drifted && (oldest.IsZero() || t.FirstSeen.Before(oldest)) {
					oldest = t.FirstSeen
				}
			}
			p := fmt.Sprintf("%d of %d target(s) drifted from %s (since %s)", r.Drifted, len(r.Targets), orNone(r.Recorded), fmtTime(oldest))
			if r.Unknown > 0 {
				p += fmt.Sprintf("; %d unknown (probe failed)", r.Unknown)
			}
			parts = append(parts, p)
		}
	} else {
		parts = append(parts, "no version probe configured")
	}
	if r.PromoteFrom != "" {
		if len(r.Behind) == 0 {
			parts = append(parts, "up to date with "+r.PromoteFrom)
		} else {
			parts = append(parts, fmt.Sprintf("%d release(s) behind %s", len(r.Behind), r.PromoteFrom))
		}
	}
	s := parts[0]
	for _, p := range parts[1:] {
		s += "; " + p
	}
	return s
}

// DriftStore remembers drift observations.
type DriftStore interface {
	DriftSeen(ctx context.Context, env, target, expected, observed string) (time.Time, error)
	DriftCleared(ctx context.Context, env, target string) error
	DriftedTargets(ctx context.Context) (map[string]int, error)
}
