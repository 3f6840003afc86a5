package ops

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Freezes are evaluated in their own time zone: recurring ones follow the
// zone's wall clock across daylight-saving changes, and last their
// Duration in real time.
func TestFreezeUntilAcrossTimeZonesAndDST(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	newYork, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	utc := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, time.UTC) }
	weekendBerlin := Freeze{Name: "weekend", Cron: "0 18 * * FRI", Duration: 60 * time.Hour, Timezone: "Europe/Berlin"}
	weekendNY := Freeze{Name: "weekend-ny", Cron: "0 18 * * FRI", Duration: 60 * time.Hour, Timezone: "America/New_York"}
	businessNY := Freeze{Name: "business-hours", Cron: "0 9 * * MON-FRI", Duration: 8 * time.Hour, Timezone: "America/New_York"}
	nightlyBerlin := Freeze{Name: "nightly", Cron: "30 2 * * *", Duration: time.Hour, Timezone: "Europe/Berlin"}
	tests := map[string]struct {
		f      Freeze
		now    time.Time
		frozen bool
		until  time.Time
	}{
		// 2026-03-29 Berlin springs forward (02:00 CET → 03:00 CEST):
		// the weekend freeze starts at 18:00 CET (17:00 UTC) and lasts
		// 60 real hours, ending 07:00 CEST on Monday.
		"berlin weekend over spring forward, at start": {weekendBerlin, utc(2026, 3, 27, 17, 0), true, utc(2026, 3, 30, 5, 0)},
		"berlin weekend over spring forward, sunday":   {weekendBerlin, utc(2026, 3, 29, 12, 0), true, utc(2026, 3, 30, 5, 0)},
		"berlin weekend, a minute before 18:00 CET":    {weekendBerlin, utc(2026, 3, 27, 16, 59), false, time.Time{}},
		"berlin weekend over spring forward, after":    {weekendBerlin, utc(2026, 3, 30, 5, 0), false, time.Time{}},
		// The next Friday is summer time: 18:00 CEST is 16:00 UTC.
		"berlin weekend in summer time starts 16:00 UTC": {weekendBerlin, utc(2026, 4, 3, 16, 0), true, utc(2026, 4, 6, 4, 0)},
		"berlin weekend in summer time, 15:59 UTC":       {weekendBerlin, utc(2026, 4, 3, 15, 59), false, time.Time{}},
		// 2026-10-25 Berlin falls back (03:00 CEST → 02:00 CET): 18:00
		// CEST Friday (16:00 UTC) + 60h ends 05:00 CET Monday.
		"berlin weekend over fall back, sunday": {weekendBerlin, utc(2026, 10, 25, 12, 0), true, utc(2026, 10, 26, 4, 0)},
		"berlin weekend over fall back, after":  {weekendBerlin, utc(2026, 10, 26, 4, 0), false, time.Time{}},
		// The same instant in two zones: 17:30 UTC on a winter Friday is
		// 18:30 in Berlin (frozen) and 12:30 in New York (not yet).
		"same instant, berlin frozen":                 {weekendBerlin, utc(2026, 11, 27, 17, 30), true, utc(2026, 11, 30, 5, 0)},
		"same instant, new york not yet":              {weekendNY, utc(2026, 11, 27, 17, 30), false, time.Time{}},
		"new york weekend starts 23:00 UTC in winter": {weekendNY, utc(2026, 11, 27, 23, 0), true, utc(2026, 11, 30, 11, 0)},
		// 2026-03-08 New York springs forward (EST → EDT): 09:00 is 14:00
		// UTC on Friday the 6th and 13:00 UTC on Monday the 9th.
		"new york business hours before spring forward, 13:30 UTC": {businessNY, utc(2026, 3, 6, 13, 30), false, time.Time{}},
		"new york business hours before spring forward, 14:00 UTC": {businessNY, utc(2026, 3, 6, 14, 0), true, utc(2026, 3, 6, 22, 0)},
		"new york business hours after spring forward, 13:30 UTC":  {businessNY, utc(2026, 3, 9, 13, 30), true, utc(2026, 3, 9, 21, 0)},
		// 2026-11-01 New York falls back (EDT → EST).
		"new york business hours before fall back, 13:30 UTC": {businessNY, utc(2026, 10, 30, 13, 30), true, utc(2026, 10, 30, 21, 0)},
		"new york business hours after fall back, 13:30 UTC":  {businessNY, utc(2026, 11, 2, 13, 30), false, time.Time{}},
		"new york business hours after fall back, 14:00 UTC":  {businessNY, utc(2026, 11, 2, 14, 0), true, utc(2026, 11, 2, 22, 0)},
		"new york business hours, saturday":                   {businessNY, utc(2026, 11, 7, 15, 0), false, time.Time{}},
		// A time the spring-forward skips (02:30 on 2026-03-29 in Berlin)
		// never starts a freeze that day (robfig/cron skips it); the
		// day before it runs at 02:30 CET (01:30 UTC).
		"berlin nightly in the skipped hour does not start": {nightlyBerlin, utc(2026, 3, 29, 1, 10), false, time.Time{}},
		"berlin nightly the day before":                     {nightlyBerlin, utc(2026, 3, 28, 1, 45), true, utc(2026, 3, 28, 2, 30)},
		// 02:30 happens twice on 2026-10-25 (CEST at 00:30 UTC, CET at
		// 01:30 UTC): each freezes for its hour, the safe side.
		"berlin nightly on fall back, first 02:30":  {nightlyBerlin, utc(2026, 10, 25, 0, 45), true, utc(2026, 10, 25, 1, 30)},
		"berlin nightly on fall back, second 02:30": {nightlyBerlin, utc(2026, 10, 25, 1, 45), true, utc(2026, 10, 25, 2, 30)},
		"berlin nightly on fall back, after both":   {nightlyBerlin, utc(2026, 10, 25, 2, 30), false, time.Time{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			until, frozen, err := freezeUntil(tc.f, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if frozen != tc.frozen || !until.Equal(tc.until) {
				t.Fatalf("freezeUntil(%s at %s = %s local) = %s, %v; want %s, %v", tc.f.Name, tc.now,
					tc.now.In(map[bool]*time.Location{true: berlin, false: newYork}[strings.HasPrefix(tc.f.Timezone, "Europe")]), until, frozen, tc.until, tc.frozen)
			}
		})
	}
}

func TestFreezeThatCannotBeEvaluatedBlocks(t *testing.T) {
	now := time.Date(2026, 3, 29, 12, 0, 0, 0, time.UTC)
	for name, f := range map[string]Freeze{
		"unknown time zone": {Name: "tz", Cron: "0 18 * * FRI", Duration: time.Hour, Timezone: "Mars/Olympus_Mons"},
		"bad schedule":      {Name: "cron", Cron: "every friday", Duration: time.Hour},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := freezeUntil(f, now); err == nil {
				t.Fatal("no error")
			}
			rs := gateFreezes([]Freeze{f}, Environment{Name: "production"}, now)
			if len(rs) != 1 || rs[0].Code != GateFreeze || !strings.Contains(rs[0].Message, "cannot be evaluated") || !rs[0].Until.IsZero() {
				t.Fatalf("reasons %+v, want one freeze reason that does not clear by itself", rs)
			}
		})
	}
	// A freeze scoped to other environments does not apply.
	scoped := Freeze{Name: "staging-only", Environments: []string{"staging"}, Start: now.Add(-time.Hour), End: now.Add(time.Hour)}
	if rs := gateFreezes([]Freeze{scoped}, Environment{Name: "production"}, now); len(rs) != 0 {
		t.Fatalf("scoped freeze applied to production: %+v", rs)
	}
	if rs := gateFreezes([]Freeze{scoped}, Environment{Name: "staging"}, now); len(rs) != 1 || !rs[0].Until.Equal(now.Add(time.Hour)) ||
		rs[0].Message != "freeze staging-only until 2026-03-29 13:00 UTC" {
		t.Fatalf("scoped freeze on staging: %+v", rs)
	}
}

func TestGateSettle(t *testing.T) {
	t1 := time.Date(2026, 3, 29, 12, 0, 0, 0, time.UTC)
	t2 := t1.Add(time.Hour)
	tests := map[string]struct {
		reasons  []GateReason
		open     bool
		pending  bool
		nextOpen time.Time
	}{
		"nothing in the way":              {nil, true, false, time.Time{}},
		"approval alone is pending":       {[]GateReason{{Code: GateApproval}}, false, true, time.Time{}},
		"approval and a later window":     {[]GateReason{{Code: GateApproval}, {Code: GateWindow, Until: t1}}, false, true, time.Time{}},
		"approval and a queued check":     {[]GateReason{{Code: GateApproval}, {Code: GateConflict, Queued: true}}, false, true, time.Time{}},
		"approval and a plan change":      {[]GateReason{{Code: GateApproval}, {Code: GatePlan}}, false, false, time.Time{}},
		"timed reasons open at the last":  {[]GateReason{{Code: GateFreeze, Until: t2}, {Code: GateWindow, Until: t1}}, false, false, t2},
		"one untimed reason: no opening":  {[]GateReason{{Code: GateFreeze, Until: t2}, {Code: GatePolicy}}, false, false, time.Time{}},
		"a lease clears when it runs out": {[]GateReason{{Code: GateLease, Until: t1}}, false, false, t1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			g := GateResult{Reasons: tc.reasons}
			g.settle()
			if g.Open != tc.open || g.Pending != tc.pending || !g.NextOpen.Equal(tc.nextOpen) {
				t.Fatalf("settle(%+v) = open %v pending %v next %s; want %v %v %s", tc.reasons, g.Open, g.Pending, g.NextOpen, tc.open, tc.pending, tc.nextOpen)
			}
			for i := 1; i < len(g.Reasons); i++ {
				if g.Reasons[i-1].Code > g.Reasons[i].Code {
					t.Fatalf("reasons not sorted by code: %+v", g.Reasons)
				}
			}
		})
	}
}

func TestGateApprovalAndWindowChecks(t *testing.T) {
	now := time.Date(2026, 3, 29, 12, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		ch      Change
		waiting bool
		code    string
		msg     string
	}{
		"rejected":                {Change{Number: "CHG1", State: ChangeNew, Approval: ApprovalRejected}, false, GateState, "change CHG1 was rejected"},
		"new":                     {Change{Number: "CHG1", State: ChangeNew, Approval: ApprovalNotRequested}, false, GateApproval, "change CHG1 is in New, awaiting approval"},
		"assess":                  {Change{Number: "CHG1", State: ChangeAssess, Approval: ApprovalRequested}, false, GateApproval, "change CHG1 is in Assess, awaiting approval"},
		"authorize":               {Change{Number: "CHG1", State: ChangeAuthorize, Approval: ApprovalRequested}, false, GateApproval, "change CHG1 is in Authorize, awaiting approval"},
		"scheduled, not approved": {Change{Number: "CHG1", State: ChangeScheduled, Approval: ApprovalRequested}, false, GateApproval, `change CHG1 is Scheduled but its approval is "requested"`},
		"scheduled, not recorded": {Change{Number: "CHG1", State: ChangeScheduled, Approval: ApprovalApproved}, true, GateApproval, "change CHG1 is approved; the next sync records it"},
		"scheduled and approved":  {Change{Number: "CHG1", State: ChangeScheduled, Approval: ApprovalApproved}, false, "", ""},
		"implement, standard":     {Change{Number: "CHG1", State: ChangeImplement, Type: ChangeStandard, Approval: ApprovalNotRequested}, false, "", ""},
		"review":                  {Change{Number: "CHG1", State: ChangeReview, Approval: ApprovalApproved}, false, GateState, "change CHG1 is Review"},
		"canceled":                {Change{Number: "CHG1", State: ChangeCanceled}, false, GateState, "change CHG1 is Canceled"},
		"unknown state code":      {Change{Number: "CHG1", State: 42}, false, GateState, "change CHG1 is state 42"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rs := gateApproval(tc.ch, tc.waiting)
			if tc.code == "" {
				if len(rs) != 0 {
					t.Fatalf("reasons %+v, want none", rs)
				}
				return
			}
			if len(rs) != 1 || rs[0].Code != tc.code || rs[0].Message != tc.msg {
				t.Fatalf("reasons %+v, want %s %q", rs, tc.code, tc.msg)
			}
		})
	}
	open, closeAt := now.Add(time.Hour), now.Add(-time.Minute)
	if rs := gateWindow(Change{StartDate: open, EndDate: open.Add(time.Hour)}, now); len(rs) != 1 || rs[0].Code != GateWindow ||
		!rs[0].Until.Equal(open) || rs[0].Message != "outside the change window, opens 2026-03-29 13:00 UTC" {
		t.Fatalf("before the window: %+v", rs)
	}
	if rs := gateWindow(Change{StartDate: now.Add(-time.Hour), EndDate: closeAt}, now); len(rs) != 1 || !rs[0].Until.IsZero() ||
		rs[0].Message != "the change window closed at 2026-03-29 11:59 UTC; it needs a new change" {
		t.Fatalf("after the window: %+v", rs)
	}
	for _, ch := range []Change{{}, {StartDate: now, EndDate: now}, {StartDate: now.Add(-time.Hour)}, {EndDate: now.Add(time.Hour)}} {
		if rs := gateWindow(ch, now); len(rs) != 0 {
			t.Fatalf("inside the window %+v: %+v", ch, rs)
		}
	}
	if rs := gateConflictStatus(Change{Number: "CHG1", ConflictStatus: ConflictStatusConflict}); len(rs) != 1 || rs[0].Code != GateConflict {
		t.Fatalf("conflict status: %+v", rs)
	}
	for _, st := range []ConflictStatus{ConflictStatusNone, ConflictStatusNotRun, ""} {
		if rs := gateConflictStatus(Change{ConflictStatus: st}); len(rs) != 0 {
			t.Fatalf("conflict status %q: %+v", st, rs)
		}
	}
	lease := Lease{Environment: "production", Holder: "host:9", RunID: "r-1", ExpiresAt: now.Add(time.Minute)}
	if rs := gateLeases("production", []Lease{{Environment: "staging"}, lease}); len(rs) != 1 || rs[0].Code != GateLease ||
		!rs[0].Until.Equal(lease.ExpiresAt) || rs[0].Message != "production is being rolled by host:9 (run r-1) until 12:01:00 UTC" {
		t.Fatalf("lease: %+v", rs)
	}
	if rs := gateUpdateState(Update{State: UpdateCanceled}, Environment{}); len(rs) != 1 || rs[0].Code != GateState || rs[0].Message != "update is canceled" {
		t.Fatalf("canceled update: %+v", rs)
	}
	if rs := gateUpdateState(Update{State: UpdateProposed}, Environment{RequiresChange: true}); len(rs) != 1 || rs[0].Code != GateApproval {
		t.Fatalf("unraised change: %+v", rs)
	}
	if rs := gateUpdateState(Update{State: UpdateAwaitingApproval, ChangeNumber: "CHG1"}, Environment{}); len(rs) != 1 || rs[0].Message != "awaiting approval of CHG1" {
		t.Fatalf("ungated awaiting: %+v", rs)
	}
	if rs := gateUpdateState(Update{State: UpdateAwaitingApproval, ChangeNumber: "CHG1"}, Environment{RequiresChange: true}); len(rs) != 0 {
		t.Fatalf("gated awaiting is judged from its change: %+v", rs)
	}
}

func TestGateErrCarriesTheHint(t *testing.T) {
	g := GateResult{Reasons: []GateReason{{Code: GateApproval, Message: "change CHG1 not mirrored yet", Hint: Hint{Kind: HintSync}}}}
	g.settle()
	err := g.Err()
	h, ok := HintOf(err)
	if !ok || h.Kind != HintSync || !errors.Is(err, ErrApprovalPending) || err.Error() != "change CHG1 not mirrored yet: change awaiting approval" {
		t.Fatalf("err %v (hint %+v %v)", err, h, ok)
	}
	if _, ok := HintOf(GateResult{Reasons: []GateReason{{Code: GatePolicy, Message: "x"}}}.Err()); ok {
		t.Fatal("a hint without any hinted reason")
	}
}

func TestGatePlan(t *testing.T) {
	env := Environment{
		Name: "production", RequiresChange: true, Targets: []Target{{Name: "p1"}, {Name: "p2"}},
		Deploy: DeploySpec{Command: []string{"deploy"}}, Strategy: Strategy{BatchSize: BatchSize{Count: 1}, MaxParallel: 1},
	}
	current := Release{Environment: "production", Version: "1.0.0"}
	plan, err := BuildPlan(env, current, "2.0.0", nil)
	if err != nil {
		t.Fatal(err)
	}
	digest := plan.Digest()
	tests := map[string]struct {
		env    Environment
		u      Update
		reason string
	}{
		"as proposed and approved":      {env, Update{Version: "2.0.0", PlanDigest: digest, ApprovedDigest: digest}, ""},
		"as proposed, not approved yet": {env, Update{Version: "2.0.0", PlanDigest: digest}, ""},
		"changed since proposed": {
			env,
			Update{Version: "2.0.0", PlanDigest: "0123456789abcdef"},
			"plan changed since it was proposed (sha256 0123456789ab… now " + digest[:12] + "…)",
		},
		"not the approved plan": {
			env,
			Update{Version: "2.0.0", PlanDigest: digest, ApprovedDigest: "fedcba9876543210"},
			"plan sha256 " + digest[:12] + "… is not the approved plan fedcba987654…",
		},
		"ungated: re-planned at run time": {
			Environment{Name: "production", Targets: env.Targets, Deploy: env.Deploy, Strategy: env.Strategy},
			Update{Version: "2.0.0", PlanDigest: "stale"},
			"",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, rs, err := gatePlan(tc.env, tc.u, current)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Batches) != 2 {
				t.Fatalf("plan %+v", p)
			}
			switch {
			case tc.reason == "" && len(rs) != 0:
				t.Fatalf("reasons %+v, want none", rs)
			case tc.reason != "" && (len(rs) != 1 || rs[0].Code != GatePlan || !strings.HasPrefix(rs[0].Message, tc.reason)):
				t.Fatalf("reasons %+v, want %q", rs, tc.reason)
			}
		})
	}
}
