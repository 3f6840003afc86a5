package ops_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store"
)

// landsThenGivesUp is a change system whose work notes land and whose
// caller then gives up before the answer arrives (a console closed, a
// daemon stopping): the write is in ServiceNow but the pass saw ctx end.
// It can tell whether a note landed, as the real client can.
type landsThenGivesUp struct {
	*fakeChanges
	cancel func()
}

func (l *landsThenGivesUp) AddWorkNote(ctx context.Context, sysID, note string) error {
	if err := l.fakeChanges.AddWorkNote(ctx, sysID, note); err != nil {
		return err
	}
	if l.cancel != nil {
		l.cancel()
		return ctx.Err()
	}
	return nil
}

func (l *landsThenGivesUp) HasWorkNote(_ context.Context, sysID, note string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.notes[sysID] {
		if n == note {
			return true, nil
		}
	}
	return false, nil
}

func (l *landsThenGivesUp) HasAttachment(_ context.Context, sysID, name string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.files[sysID] {
		if n == name {
			return true, nil
		}
	}
	return false, nil
}

// A pass that gave up (ctx ended) after its write may have landed must
// leave the item marked as possibly sent: the next pass looks it up first
// instead of sending a second work note.
func TestGivenUpPassLeavesItsWriteLookedUpNotResent(t *testing.T) {
	w := newGatedWorld(t)
	ctx := context.Background()
	p, err := w.svc.Propose(ctx, ops.ProposeRequest{Environment: w.env.Name, Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	w.deliverAll(t)
	u, err := w.svc.GetUpdate(ctx, p.Update.ID)
	if err != nil || u.ChangeNumber == "" {
		t.Fatalf("after delivery: %+v, %v", u, err)
	}
	const note = "daytwo: batch 1 of 2 done"
	it, err := ops.NewOutboxItem(u.ID, ops.OutboxWorkNote, map[string]string{"update_id": u.ID, "note": note})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.db.Atomic(ctx, func(tx ops.Tx) error { _, err := tx.Enqueue(ctx, it); return err }); err != nil {
		t.Fatal(err)
	}

	cs := &landsThenGivesUp{fakeChanges: w.cs}
	cfg := ops.Config{CorrelationPrefix: "daytwo", Actor: "test", Username: "daytwo", Environments: []ops.Environment{w.env}}
	mk := func(holder string) *ops.Service {
		svc, err := ops.New(cfg, w.db, cs, ops.WithClock(w.clk.Now), ops.WithHolder(holder))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.Wait)
		return svc
	}
	console, daemon := mk("host:2"), mk("host:3")

	gaveUp, cancel := context.WithCancel(ctx)
	defer cancel()
	cs.cancel = cancel
	if _, err := console.DeliverOutbox(gaveUp); err == nil {
		t.Fatal("the pass that gave up reported no error")
	}
	if got := w.cs.workNotes(u.ChangeNumber); len(got) != 1 {
		t.Fatalf("work notes after the given-up pass = %q; want the one that landed", got)
	}
	cs.cancel = nil
	if _, err := daemon.DeliverOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, got := range w.cs.workNotes(u.ChangeNumber) {
		if got == note {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the note is in ServiceNow %d times; want once (the next pass must look it up before sending)", n)
	}
	left, err := w.db.ListOutbox(ctx, ops.OutboxFilter{States: []ops.OutboxState{ops.OutboxPending}})
	if err != nil || len(left) != 0 {
		t.Fatalf("outbox after the second pass: %+v, %v; want the note delivered", left, err)
	}
}

// A claim of a daemon on another host holds its item while the daemon
// heartbeats, and is taken over by the next pass once its heartbeat is
// older than a lease TTL (it died), long before the claim would expire.
func TestSilentDaemonsClaimIsTakenOverAfterALeaseTTL(t *testing.T) {
	w := newGatedWorld(t)
	ctx := context.Background()
	p, err := w.svc.Propose(ctx, ops.ProposeRequest{Environment: w.env.Name, Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	w.deliverAll(t)
	u, err := w.svc.GetUpdate(ctx, p.Update.ID)
	if err != nil || u.ChangeNumber == "" {
		t.Fatalf("after delivery: %+v, %v", u, err)
	}
	const note = "daytwo: batch 1 of 2 done"
	it, err := ops.NewOutboxItem(u.ID, ops.OutboxWorkNote, map[string]string{"update_id": u.ID, "note": note})
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := w.db.Atomic(ctx, func(tx ops.Tx) error { var err error; id, err = tx.Enqueue(ctx, it); return err }); err != nil {
		t.Fatal(err)
	}
	const other = "elsewhere.example:4242"
	if err := w.db.Heartbeat(ctx, ops.Daemon{ID: other, Host: "elsewhere.example", PID: 4242}); err != nil {
		t.Fatal(err)
	}
	if ok, err := w.db.ClaimOutbox(ctx, id, other+":pass", 3*time.Minute); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if _, err := w.svc.DeliverOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.db.GetOutbox(ctx, id); got.State != ops.OutboxPending || got.ClaimedBy != other+":pass" {
		t.Fatalf("a live daemon's claim was taken: %+v", got)
	}
	w.clk.Advance(61 * time.Second) // the default lease TTL is 60s; the claim has two minutes left
	if _, err := w.svc.DeliverOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.db.GetOutbox(ctx, id); got.State != ops.OutboxDelivered {
		t.Fatalf("a silent daemon's claim still holds its write back: %+v", got)
	}
	if got := w.cs.workNotes(u.ChangeNumber); len(got) == 0 || got[len(got)-1] != note {
		t.Fatalf("work notes %q; want the note delivered", got)
	}
}

// storeLostOnce loses the store once, at the moment a failed send is to be
// recorded: the pass returns an error still holding its claim.
type storeLostOnce struct {
	*store.DB
	lost atomic.Bool
}

func (s *storeLostOnce) MarkAttemptFailed(ctx context.Context, id int64, cause string, next time.Time, permanent bool) error {
	if s.lost.CompareAndSwap(true, false) {
		return errors.New("store: connection refused")
	}
	return s.DB.MarkAttemptFailed(ctx, id, cause, next, permanent)
}

// A delivery pass that lost the store mid-delivery could not release its
// claim; the next pass of the same process takes the item at once instead
// of waiting for the claim to expire (minutes of a daemon's writes held
// back after every database outage).
func TestClaimOfAPassThatLostTheStoreIsTakenBackAtOnce(t *testing.T) {
	w := newGatedWorld(t)
	ctx := context.Background()
	st := &storeLostOnce{DB: w.db}
	svc, err := ops.New(ops.Config{CorrelationPrefix: "daytwo", Actor: "test", Username: "daytwo", Environments: []ops.Environment{w.env}},
		st, w.cs, ops.WithClock(w.clk.Now), ops.WithHolder("host:2"))
	if err != nil {
		t.Fatal(err)
	}
	w.cs.mu.Lock()
	w.cs.failNext, w.cs.failErr = 1, fmt.Errorf("%w: instance down", ops.ErrUnavailable)
	w.cs.mu.Unlock()
	st.lost.Store(true)
	if _, err := svc.Propose(ctx, ops.ProposeRequest{Environment: w.env.Name, Version: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	svc.Wait()
	if _, err := svc.DeliverOutbox(ctx); err == nil && st.lost.Load() {
		t.Fatal("the first delivery pass did not meet the lost store")
	}
	items, err := w.db.ListOutbox(ctx, ops.OutboxFilter{})
	if err != nil || len(items) == 0 || items[0].Kind != ops.OutboxCreateChange || items[0].ClaimedBy == "" {
		t.Fatalf("after the lost store: %d items, %v; want the create still claimed", len(items), err)
	}
	if stats, err := svc.DeliverOutbox(ctx); err != nil || stats.Delivered == 0 {
		t.Fatalf("next pass: %+v, %v; want the create delivered now, not when the claim expires", stats, err)
	}
	if it, err := w.db.GetOutbox(ctx, items[0].ID); err != nil || it.State != ops.OutboxDelivered {
		t.Fatalf("the create is %s (%v) after the next pass", it.State, err)
	}
	if n := len(w.cs.changes); n != 1 {
		t.Fatalf("%d changes raised", n)
	}
}
