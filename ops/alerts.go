package ops

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Alert is one alert from a monitoring system (Alertmanager's webhook),
// already mapped to an environment by its labels.
type Alert struct {
	Name        string            `json:"name"`
	Status      string            `json:"status"` // firing or resolved
	Environment string            `json:"environment"`
	Service     string            `json:"service,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	StartsAt    time.Time         `json:"starts_at"`
	EndsAt      time.Time         `json:"ends_at,omitzero"`
	Fingerprint string            `json:"fingerprint,omitempty"`
	Source      string            `json:"source,omitempty"` // e.g. the Alertmanager's external URL
}

// RecordAlerts records alerts in the audit log (alert.firing,
// alert.resolved), all or none. An alert for an environment daytwo does
// not manage is refused (ErrNotFound) before anything is written.
// A run in its verification window reads them back (watchAlerts): a
// firing alert for its environment fails the window. Outside a run, with
// AlertIncidents, a firing alert on a gated environment opens an incident
// (alertIncidents).
func (s *Service) RecordAlerts(ctx context.Context, alerts []Alert) error {
	alerts = slices.Clone(alerts)
	for i, a := range alerts {
		// With services an alert names its pair by the environment and
		// service labels; a service label that names no service (an
		// application label of another scheme) still maps an environment
		// only one service runs in.
		env, err := s.ResolveEnvironment(a.Service, a.Environment)
		if err != nil && a.Service != "" && !slices.Contains(s.ServiceNames(), a.Service) {
			env, err = s.ResolveEnvironment("", a.Environment)
		}
		if err != nil {
			return fmt.Errorf("alerts[%d] (%s): %w", i, a.Name, err)
		}
		alerts[i].Environment = env.Name
		if a.Status != "firing" && a.Status != "resolved" {
			return fmt.Errorf("alerts[%d] (%s): status %q: want firing or resolved", i, a.Name, a.Status)
		}
	}
	incidents, err := s.alertIncidents(ctx, alerts)
	if err != nil {
		return err
	}
	err = s.store.Atomic(ctx, func(tx Tx) error {
		for _, inc := range incidents {
			if err := s.enqueue(ctx, tx, inc.UpdateID, OutboxCreateIncident, inc); err != nil {
				return err
			}
		}
		for _, a := range alerts {
			detail := map[string]any{"labels": a.Labels, "starts_at": a.StartsAt.UTC().Format(time.RFC3339)}
			if len(a.Annotations) > 0 {
				detail["annotations"] = a.Annotations
			}
			if !a.EndsAt.IsZero() {
				detail["ends_at"] = a.EndsAt.UTC().Format(time.RFC3339)
			}
			for k, v := range map[string]string{"service": a.Service, "fingerprint": a.Fingerprint, "source": a.Source} {
				if v != "" {
					detail[k] = v
				}
			}
			if err := s.audit(ctx, tx, Event{
				Actor: "alertmanager", Action: "alert." + a.Status, Subject: a.Name,
				Environment: a.Environment, Result: a.Status, Detail: detail,
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		for _, inc := range incidents {
			s.kickOutbox(ctx, inc.UpdateID)
		}
	}
	return err
}

// alertIncidents are the incidents firing alerts open (AlertIncidents): one
// per alert on a gated environment that no run holds (a run's verification
// window judges its own alerts), caused by the change of the release the
// environment runs. An environment whose release came without a change
// (seeded, or before daytwo) has no change to blame and gets none; the
// alert is still recorded. The correlation id names the alert's
// fingerprint and start, so a repeated notification of the same alert
// finds the incident again instead of opening another.
func (s *Service) alertIncidents(ctx context.Context, alerts []Alert) ([]incidentPayload, error) {
	if !s.cfg.AlertIncidents {
		return nil, nil
	}
	var out []incidentPayload
	var releases map[string]Release
	var leases []Lease
	for _, a := range alerts {
		env, err := s.Environment(a.Environment)
		if err != nil || a.Status != "firing" || !env.RequiresChange {
			continue
		}
		if releases == nil {
			if releases, err = s.store.CurrentReleases(ctx); err != nil {
				return nil, err
			}
			if leases, err = s.store.Leases(ctx); err != nil {
				return nil, err
			}
		}
		if slices.ContainsFunc(leases, func(l Lease) bool { return l.Environment == env.Name }) {
			continue // in a run: its verification window decides
		}
		rel := releases[env.Name]
		if rel.UpdateID == "" {
			continue
		}
		u, err := s.store.GetUpdate(ctx, rel.UpdateID)
		if err != nil || u.ChangeSysID == "" {
			continue
		}
		desc := fmt.Sprintf("Alert %s fired for %s, which runs %s (update %s, change %s).", a.Name, env.Name, rel.Version, u.ID, u.ChangeNumber)
		for _, k := range []string{"summary", "description"} {
			if v := a.Annotations[k]; v != "" {
				desc += "\n\n" + v
			}
		}
		if a.Source != "" {
			desc += "\n\nSource: " + a.Source
		}
		out = append(out, incidentPayload{UpdateID: u.ID, Request: environmentIncident(env,
			s.correlationID(u.ID)+alertIncidentSuffix(a),
			fmt.Sprintf("daytwo: alert %s on %s (%s)", a.Name, env.Name, rel.Version), desc)})
	}
	return out, nil
}
