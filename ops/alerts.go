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
// firing alert for its environment fails the window. Not yet: incidents
// for alerts outside a window (issue 17).
func (s *Service) RecordAlerts(ctx context.Context, alerts []Alert) error {
	alerts = slices.Clone(alerts)
	for i, a := range alerts {
		// With services an alert names its pair by the environment and
		// service labels; a service label that names no service (an
		// application label of another scheme) still maps an environment
		// only one service runs in.
		env, err := s.ResolveEnvironment(a.Service, a.Environment)
		if err != nil && a.Service != "" {
			if only, err2 := s.ResolveEnvironment("", a.Environment); err2 == nil {
				env, err = only, nil
			}
		}
		if err != nil {
			return fmt.Errorf("alerts[%d] (%s): %w", i, a.Name, err)
		}
		alerts[i].Environment = env.Name
		if a.Status != "firing" && a.Status != "resolved" {
			return fmt.Errorf("alerts[%d] (%s): status %q: want firing or resolved", i, a.Name, a.Status)
		}
	}
	return s.store.Atomic(ctx, func(tx Tx) error {
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
}
