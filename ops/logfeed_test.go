package ops

import (
	"testing"
	"time"
)

// TestFeedFollowerWaitsForLateCommits: ids that commit out of order (as on
// PostgreSQL, where ids are taken before commit) are each returned once;
// the done mark stays below a missing id until it arrives or the grace
// passes, so a restart from the cursor re-reads it rather than skip it.
func TestFeedFollowerWaitsForLateCommits(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	f := newIDFollower(0)
	for _, id := range []int64{1, 2, 4} {
		if !f.fresh(id) {
			t.Fatalf("id %d not fresh", id)
		}
	}
	f.advance(t0)
	if f.done != 2 {
		t.Fatalf("done = %d, want 2 (3 not committed yet)", f.done)
	}
	if f.fresh(4) || f.fresh(2) {
		t.Fatal("an id already returned is fresh again")
	}
	if !f.fresh(3) { // the late commit
		t.Fatal("late id 3 not fresh")
	}
	f.advance(t0.Add(time.Second))
	if f.done != 4 {
		t.Fatalf("done = %d, want 4", f.done)
	}
	// 5 never commits (a rolled-back transaction): given up after the grace.
	f.fresh(6)
	f.advance(t0.Add(2 * time.Second))
	if f.done != 4 {
		t.Fatalf("done = %d, want 4 while 5 may still commit", f.done)
	}
	f.advance(t0.Add(2*time.Second + feedGapGrace))
	if f.done != 6 || len(f.seen) != 0 || len(f.gap) != 0 {
		t.Fatalf("after the grace: done = %d, seen %v, gaps %v; want 6 and nothing held", f.done, f.seen, f.gap)
	}
}

func TestFeedFilter(t *testing.T) {
	r := FeedRecord{Stream: FeedAlert, Service: "payments", Environment: "production", Unit: "payments/production"}
	for _, tc := range []struct {
		f    FeedFilter
		want bool
	}{
		{FeedFilter{}, true},
		{FeedFilter{Service: "payments", Environment: "production"}, true},
		{FeedFilter{Environment: "payments/production"}, true},
		{FeedFilter{Service: "checkout"}, false},
		{FeedFilter{Environment: "staging"}, false},
		{FeedFilter{Streams: []string{FeedAudit, FeedRunLog}}, false},
		{FeedFilter{Streams: []string{FeedAlert}}, true},
	} {
		if got := tc.f.match(r); got != tc.want {
			t.Errorf("%+v matches = %v, want %v", tc.f, got, tc.want)
		}
	}
}
