package ops

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// AlertStatus is one alert as the console shows it: its latest
// notification recorded by RecordAlerts (the alert.firing and
// alert.resolved audit events) and the incident it opened, if any.
type AlertStatus struct {
	Alert
	// FirstSeen and LastSeen are when daytwo recorded its first and
	// latest notification.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Seq is the audit event of the latest notification.
	Seq int64 `json:"seq"`
	// Incident is the incident the alert opened (alertmanager.open_incidents),
	// nil when it opened none.
	Incident *AlertIncident `json:"incident,omitempty"`
}

// Firing reports whether the latest notification said the alert fires.
func (a AlertStatus) Firing() bool { return a.Status == "firing" }

// Summary is the alert's summary annotation, else its description.
func (a AlertStatus) Summary() string {
	if v := a.Annotations["summary"]; v != "" {
		return v
	}
	return a.Annotations["description"]
}

// AlertIncident is the incident a firing alert opened: queued in the
// outbox (State pending or failed) until ServiceNow created it (delivered,
// Number set once the incident is on record).
type AlertIncident struct {
	Number   string      `json:"number,omitempty"`
	State    OutboxState `json:"state"`
	OutboxID int64       `json:"outbox_id"`
	Error    string      `json:"error,omitempty"`
}

// AlertBoard is the alerts recorded so far, folded from the audit log.
// Read it with Service.Alerts, passing the previous board to read only
// what was recorded since.
type AlertBoard struct {
	// Alerts: the firing ones first, then the newest notification first.
	Alerts []AlertStatus `json:"alerts"`
	// Seq is the last audit event read.
	Seq int64 `json:"seq"`
}

// Firing returns the firing alerts of one (service, environment) pair
// (env is its key, Environment.Name).
func (b AlertBoard) Firing(env string) []AlertStatus {
	var out []AlertStatus
	for _, a := range b.Alerts {
		if a.Firing() && a.Environment == env {
			out = append(out, a)
		}
	}
	return out
}

const (
	// alertScan bounds the first read of the audit log to its newest
	// events: Alertmanager repeats a firing alert every repeat_interval
	// (4h by default), so one that still fires is seen again.
	alertScan = 10000
	// resolvedKept is how many resolved alerts the board keeps.
	resolvedKept = 100
)

// Alerts returns prev with the alert notifications recorded since
// prev.Seq folded in (the zero board reads the newest alertScan audit
// events), so a screen re-reading it on every refresh reads only what is
// new. An alert is its fingerprint (else its name) on its environment;
// its latest notification decides whether it fires. prev is not changed.
func (s *Service) Alerts(ctx context.Context, prev AlertBoard) (AlertBoard, error) {
	f := EventFilter{AfterSeq: prev.Seq}
	if prev.Seq == 0 {
		f.Limit = alertScan
	}
	evs, err := s.store.ListEvents(ctx, f)
	if err != nil {
		return prev, fmt.Errorf("read alerts: %w", err)
	}
	out := AlertBoard{Alerts: slices.Clone(prev.Alerts), Seq: prev.Seq}
	at := make(map[string]int, len(out.Alerts))
	for i, a := range out.Alerts {
		at[alertKey(a.Alert)] = i
	}
	touched := map[string]bool{}
	for _, e := range evs {
		out.Seq = max(out.Seq, e.Seq)
		if e.Action != "alert.firing" && e.Action != "alert.resolved" {
			continue
		}
		a := alertOf(e)
		k := alertKey(a)
		st := AlertStatus{Alert: a, FirstSeen: e.Time, LastSeen: e.Time, Seq: e.Seq}
		if i, ok := at[k]; ok {
			st.FirstSeen, st.Incident = out.Alerts[i].FirstSeen, out.Alerts[i].Incident
			out.Alerts[i] = st
		} else {
			at[k] = len(out.Alerts)
			out.Alerts = append(out.Alerts, st)
		}
		touched[k] = true
	}
	// The incident of an alert just notified, or one still on its way to
	// ServiceNow.
	look := incidentLookup{s: s, items: map[string][]OutboxItem{}, incidents: map[string][]Incident{}, releases: map[string][]Release{}}
	for i, a := range out.Alerts {
		if !touched[alertKey(a.Alert)] && (a.Incident == nil || a.Incident.State == OutboxDelivered) {
			continue
		}
		inc, err := look.find(ctx, a.Alert)
		if err != nil {
			return prev, err
		}
		if inc != nil || a.Incident == nil {
			out.Alerts[i].Incident = inc
		}
	}
	slices.SortStableFunc(out.Alerts, func(a, b AlertStatus) int {
		if a.Firing() != b.Firing() {
			if a.Firing() {
				return -1
			}
			return 1
		}
		return cmp.Compare(b.Seq, a.Seq)
	})
	resolved := 0
	out.Alerts = slices.DeleteFunc(out.Alerts, func(a AlertStatus) bool {
		if a.Firing() {
			return false
		}
		resolved++
		return resolved > resolvedKept
	})
	return out, nil
}

// alertKey identifies an alert across its notifications.
func alertKey(a Alert) string {
	return a.Environment + "\x00" + keyOfAlert(a)
}

// keyOfAlert is what alertIncidents names an alert's incident by.
func keyOfAlert(a Alert) string {
	if a.Fingerprint != "" {
		return a.Fingerprint
	}
	return a.Name
}

// alertIncidentSuffix ends the correlation id of the incident a firing
// alert opens (after the update's): the alert and its start, so a
// repeated notification finds the same incident.
func alertIncidentSuffix(a Alert) string {
	return fmt.Sprintf(":alert:%s:%d", keyOfAlert(a), a.StartsAt.Unix())
}

// alertOf reads an alert back from its audit event (RecordAlerts).
func alertOf(e Event) Alert {
	a := Alert{Name: e.Subject, Status: strings.TrimPrefix(e.Action, "alert."), Environment: e.Environment}
	str := func(k string) string {
		v, _ := e.Detail[k].(string)
		return v
	}
	strs := func(k string) map[string]string {
		m, _ := e.Detail[k].(map[string]any)
		if len(m) == 0 {
			return nil
		}
		out := make(map[string]string, len(m))
		for k, v := range m {
			out[k] = fmt.Sprint(v)
		}
		return out
	}
	a.Service, a.Fingerprint, a.Source = str("service"), str("fingerprint"), str("source")
	a.Labels, a.Annotations = strs("labels"), strs("annotations")
	a.StartsAt, _ = time.Parse(time.RFC3339, str("starts_at"))
	a.EndsAt, _ = time.Parse(time.RFC3339, str("ends_at"))
	return a
}

// incidentLookup finds alerts' incidents, reading each update's outbox
// and incidents once.
type incidentLookup struct {
	s         *Service
	releases  map[string][]Release    // by environment
	items     map[string][]OutboxItem // by update
	incidents map[string][]Incident   // by update
}

// find is the incident alertIncidents queued for a (by its correlation
// id, which names the alert and its start) under the update of one of
// the environment's recent releases; nil when there is none.
func (l *incidentLookup) find(ctx context.Context, a Alert) (*AlertIncident, error) {
	rels, ok := l.releases[a.Environment]
	if !ok {
		var err error
		if rels, err = l.s.store.Releases(ctx, a.Environment, 10); err != nil {
			return nil, fmt.Errorf("read alerts: releases of %s: %w", a.Environment, err)
		}
		l.releases[a.Environment] = rels
	}
	suffix := alertIncidentSuffix(a)
	for _, r := range rels {
		if r.UpdateID == "" {
			continue
		}
		items, ok := l.items[r.UpdateID]
		if !ok {
			var err error
			items, err = l.s.store.ListOutbox(ctx, OutboxFilter{Key: r.UpdateID, States: []OutboxState{
				OutboxPending, OutboxFailed, OutboxDelivered, OutboxDiscarded, OutboxSuperseded,
			}})
			if err != nil {
				return nil, fmt.Errorf("read alerts: outbox of %s: %w", r.UpdateID, err)
			}
			l.items[r.UpdateID] = items
		}
		for _, it := range items {
			var p incidentPayload
			if it.Kind != OutboxCreateIncident || json.Unmarshal(it.Payload, &p) != nil ||
				p.Request.CorrelationID != l.s.correlationID(r.UpdateID)+suffix {
				continue
			}
			inc := &AlertIncident{State: it.State, OutboxID: it.ID, Error: it.LastError}
			if it.State == OutboxDelivered {
				got, ok := l.incidents[r.UpdateID]
				if !ok {
					var err error
					if got, err = l.s.store.Incidents(ctx, r.UpdateID); err != nil {
						return nil, fmt.Errorf("read alerts: incidents of %s: %w", r.UpdateID, err)
					}
					l.incidents[r.UpdateID] = got
				}
				for _, in := range got {
					if in.ShortDescription == p.Request.ShortDescription {
						inc.Number = in.Number
					}
				}
			}
			return inc, nil
		}
	}
	return nil, nil
}
