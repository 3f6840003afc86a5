package itsm

import (
	"testing"

	"github.com/daytwo/daytwo/ops"
)

func TestDecodeConflictStatus(t *testing.T) {
	for raw, want := range map[string]ops.ConflictStatus{
		"Conflict":    ops.ConflictStatusConflict,
		"conflict":    ops.ConflictStatusConflict,
		"No Conflict": ops.ConflictStatusNone,
		"no_conflict": ops.ConflictStatusNone,
		"Not Run":     ops.ConflictStatusNotRun,
		"not_run":     ops.ConflictStatusNotRun,
		"":            "",
		"Pending":     "Pending",
	} {
		if got := decodeConflictStatus(raw); got != want {
			t.Errorf("decodeConflictStatus(%q) = %q, want %q", raw, got, want)
		}
	}
}
