package main

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// maxWebhookBody bounds an Alertmanager webhook body.
const maxWebhookBody = 4 << 20

// amWebhook is Alertmanager's webhook payload (version 4).
type amWebhook struct {
	Version     string    `json:"version"`
	Status      string    `json:"status"`
	Receiver    string    `json:"receiver"`
	ExternalURL string    `json:"externalURL"`
	Alerts      []amAlert `json:"alerts"`
}

type amAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// withAlertmanager serves POST /alertmanager in front of the daemon's
// other paths, when a token is configured: requests without the bearer
// token get 401 and change nothing; malformed bodies get 400 naming the
// field; alerts for an unknown environment get 422.
func (a *app) withAlertmanager(next http.Handler, svc *ops.Service) http.Handler {
	cfg := a.cfg.Alertmanager
	token := a.cfg.Secrets.AlertmanagerToken
	if token == "" {
		return next
	}
	envLabel, svcLabel := cfg.EnvironmentLabel, cfg.ServiceLabel
	if envLabel == "" {
		envLabel = "environment"
	}
	if svcLabel == "" {
		svcLabel = "service"
	}
	mux := http.NewServeMux()
	mux.Handle("/", next)
	mux.HandleFunc("POST /alertmanager", func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="daytwo"`)
			http.Error(w, "alertmanager: missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		alerts, err := parseWebhook(http.MaxBytesReader(w, r.Body, maxWebhookBody), envLabel, svcLabel)
		if err != nil {
			http.Error(w, "alertmanager: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := svc.RecordAlerts(r.Context(), alerts); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, ops.ErrNotFound) || strings.Contains(err.Error(), "want firing or resolved") {
				code = http.StatusUnprocessableEntity
			}
			http.Error(w, "alertmanager: "+err.Error(), code)
			return
		}
		a.log().Info("alerts recorded", "count", len(alerts), "receiver", "alertmanager")
		fmt.Fprintf(w, "recorded %d alert(s)\n", len(alerts))
	})
	return mux
}

// parseWebhook decodes and checks a webhook body, mapping each alert to
// an environment by envLabel. Errors name the field at fault.
func parseWebhook(body io.Reader, envLabel, svcLabel string) ([]ops.Alert, error) {
	var wh amWebhook
	dec := json.NewDecoder(body)
	if err := dec.Decode(&wh); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			return nil, fmt.Errorf("body: field %s: %s where %s belongs", te.Field, te.Value, te.Type)
		case errors.As(err, &se):
			return nil, fmt.Errorf("body is not JSON: %v (at byte %d)", err, se.Offset)
		}
		return nil, fmt.Errorf("body: %w", err)
	}
	if wh.Version != "4" {
		return nil, fmt.Errorf("version: %q: want Alertmanager's webhook version \"4\"", wh.Version)
	}
	if len(wh.Alerts) == 0 {
		return nil, errors.New("alerts: empty")
	}
	out := make([]ops.Alert, len(wh.Alerts))
	for i, al := range wh.Alerts {
		key := fmt.Sprintf("alerts[%d]", i)
		if al.Status != "firing" && al.Status != "resolved" {
			return nil, fmt.Errorf("%s.status: %q: want firing or resolved", key, al.Status)
		}
		name := al.Labels["alertname"]
		if name == "" {
			return nil, fmt.Errorf("%s.labels.alertname: missing", key)
		}
		env := al.Labels[envLabel]
		if env == "" {
			return nil, fmt.Errorf("%s.labels.%s: missing: daytwo maps alerts to environments by this label (alertmanager.environment_label)", key, envLabel)
		}
		if al.StartsAt.IsZero() {
			return nil, fmt.Errorf("%s.startsAt: missing", key)
		}
		out[i] = ops.Alert{
			Name: name, Status: al.Status, Environment: env, Service: al.Labels[svcLabel],
			Labels: al.Labels, Annotations: al.Annotations, StartsAt: al.StartsAt, Fingerprint: al.Fingerprint, Source: wh.ExternalURL,
		}
		if al.Status == "resolved" {
			out[i].EndsAt = al.EndsAt
		}
	}
	return out, nil
}
