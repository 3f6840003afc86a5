package common

import (
	"fmt"
	"slices"
	"strings"

	"github.com/daytwo/daytwo/ops"
)

// IncidentText says whether an alert opened an incident
// (alertmanager.open_incidents): its number, queued or failed with its
// outbox item, or "—" for none; the matrix and the alerts screen say it
// the same way.
func IncidentText(a ops.AlertStatus) string {
	inc := a.Incident
	switch {
	case inc == nil:
		return "—"
	case inc.Number != "":
		return inc.Number
	case inc.State == ops.OutboxDelivered:
		return "opened"
	case inc.State == ops.OutboxFailed:
		return fmt.Sprintf("failed (outbox #%d)", inc.OutboxID)
	case inc.State == ops.OutboxPending:
		return fmt.Sprintf("queued (outbox #%d)", inc.OutboxID)
	}
	return fmt.Sprintf("%s (outbox #%d)", inc.State, inc.OutboxID)
}

// AlertLabels renders an alert's labels sorted by name, alertname first.
func AlertLabels(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == "alertname":
			return -1
		case b == "alertname":
			return 1
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return Or(strings.Join(parts, " "), "—")
}
