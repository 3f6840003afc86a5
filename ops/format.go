package ops

import "time"

// TimeLayout is how the domain writes a time into a message: to the
// minute, in UTC ("2026-03-29 01:00 UTC").
const TimeLayout = "2006-01-02 15:04 UTC"

// ClockLayout is how the domain writes a time of day into a message
// about something that lasts minutes (a lease, a running check).
const ClockLayout = "15:04:05 UTC"

// fmtTime writes t in TimeLayout.
func fmtTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// fmtClock writes t in ClockLayout.
func fmtClock(t time.Time) string { return t.UTC().Format(ClockLayout) }
