package ops

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestFreezeUntil(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	friday18 := time.Date(2026, 11, 27, 18, 0, 0, 0, berlin) // a Friday
	weekend := Freeze{Name: "weekend", Cron: "0 18 * * FRI", Duration: 60 * time.Hour, Timezone: "Europe/Berlin"}
	yearEnd := Freeze{Name: "year-end", Start: time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC), End: time.Date(2027, 1, 3, 0, 0, 0, 0, time.UTC)}
	tests := map[string]struct {
		f      Freeze
		now    time.Time
		frozen bool
		until  time.Time
	}{
		"one-off before":         {yearEnd, time.Date(2026, 12, 19, 23, 59, 0, 0, time.UTC), false, time.Time{}},
		"one-off at start":       {yearEnd, yearEnd.Start, true, yearEnd.End},
		"one-off end is open":    {yearEnd, yearEnd.End, false, time.Time{}},
		"weekly before it opens": {weekend, friday18.Add(-time.Minute), false, time.Time{}},
		"weekly as it opens":     {weekend, friday18, true, friday18.Add(60 * time.Hour).UTC()},
		"weekly on sunday":       {weekend, friday18.Add(40 * time.Hour), true, friday18.Add(60 * time.Hour).UTC()},
		"weekly after it closes": {weekend, friday18.Add(60 * time.Hour), false, time.Time{}},
		"overlapping occurrences": {
			Freeze{Cron: "0 10,11 * * *", Duration: 90 * time.Minute},
			time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC), true, time.Date(2026, 11, 26, 12, 30, 0, 0, time.UTC),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			until, frozen, err := freezeUntil(tc.f, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if frozen != tc.frozen || !until.Equal(tc.until) {
				t.Fatalf("freezeUntil(%s) = %s, %v; want %s, %v", tc.now, until, frozen, tc.until, tc.frozen)
			}
		})
	}
	// A schedule denser than its duration freezes for good, and returns.
	if _, frozen, err := freezeUntil(Freeze{Cron: "@every 1m", Duration: time.Hour}, time.Now()); err != nil || !frozen {
		t.Fatalf("dense schedule: %v %v", frozen, err)
	}
}

func TestJournalState(t *testing.T) {
	steps := []StepRecord{
		{Target: "a", Step: StepDeploy, State: StepSucceeded},
		{Target: "a", Step: StepHealth, State: StepSucceeded},
		{Target: "a", Step: StepBake, State: StepSucceeded},
		{Target: "b", Step: StepDeploy, State: StepSucceeded},
		{Target: "b", Step: StepHealth, State: StepStarted}, // crashed mid-check
		{Target: "c", Step: StepDeploy, State: StepStarted}, // crashed mid-deploy
		{Target: "d", Step: StepDeploy, State: StepSucceeded},
		{Target: "d", Step: StepHealth, State: StepFailed},
	}
	done, touched, unknown := journalState(steps, true, true)
	if fmt.Sprint(done) != "map[a:true]" || fmt.Sprint(touched) != "[a b c d]" || fmt.Sprint(unknown) != "[b c]" {
		t.Fatalf("done %v touched %v unknown %v", done, touched, unknown)
	}
	done, _, _ = journalState(steps[:1], false, false)
	if !done["a"] {
		t.Fatal("without checks a deployed target is done")
	}
}

func TestChangeOutcome(t *testing.T) {
	waiting := Update{State: UpdateAwaitingApproval}
	tests := []struct {
		ch   Change
		want UpdateState
	}{
		{Change{State: ChangeAssess, Approval: "requested"}, ""},
		{Change{State: ChangeScheduled, Approval: "approved"}, UpdateApproved},
		{Change{State: ChangeImplement, Approval: "approved"}, UpdateApproved},
		{Change{State: ChangeScheduled, Approval: "requested"}, ""},
		{Change{State: ChangeScheduled, Type: "standard"}, UpdateApproved},
		{Change{State: ChangeNew, Approval: "rejected"}, UpdateRejected},
		{Change{State: ChangeCanceled}, UpdateCanceled},
	}
	for _, tc := range tests {
		if got, _ := changeOutcome(waiting, tc.ch); got != tc.want {
			t.Errorf("changeOutcome(%+v) = %q, want %q", tc.ch, got, tc.want)
		}
	}
}

func TestGateResultErr(t *testing.T) {
	pending := GateResult{Pending: true, Reasons: []GateReason{{Code: GateApproval, Message: "awaiting approval"}}}
	if err := pending.Err(); err == nil || !errors.Is(err, ErrApprovalPending) {
		t.Fatalf("pending: %v", err)
	}
	blocked := GateResult{Reasons: []GateReason{{Code: GateFreeze, Message: "freeze x"}}, NextOpen: time.Date(2027, 1, 3, 0, 0, 0, 0, time.UTC)}
	if err := blocked.Err(); err == nil || !errors.Is(err, ErrBlocked) || blocked.Summary() != "freeze x (opens 2027-01-03 00:00 UTC)" {
		t.Fatalf("blocked: %v / %s", err, blocked.Summary())
	}
	if (GateResult{Open: true}).Err() != nil {
		t.Fatal("open gate has an error")
	}
}
