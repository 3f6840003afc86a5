package itsm

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daytwo/daytwo/itsm/snowsim"
)

// simClient is a client of an in-process simulator as its daytwo user.
func simClient(t *testing.T, opts snowsim.Options, timeout time.Duration, rt http.RoundTripper) (*Client, *snowsim.Sim) {
	t.Helper()
	sim, err := snowsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); _ = sim.Close() })
	var o []Option
	if rt != nil {
		o = append(o, WithTransport(rt))
	}
	o = append(o, WithSleep(func(ctx context.Context, _ time.Duration) error { return ctx.Err() }))
	c, err := New(Config{Instance: srv.URL, Auth: AuthConfig{Username: "daytwo", Password: "daytwo"}, Timeout: timeout}, o...)
	if err != nil {
		t.Fatal(err)
	}
	return c, sim
}

// changesOf lists, as the admin would see them, the changes whose
// correlation id or short description names id.
func changesOf(t *testing.T, c *Client, id string) []Change {
	t.Helper()
	found, err := c.findChanges(context.Background(), id, true, "")
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func openChanges(chs []Change) int {
	n := 0
	for _, ch := range chs {
		if !ch.State.Terminal() {
			n++
		}
	}
	return n
}

// failing fails, while on, every request matching method and path prefix
// with a connection error before it reaches the instance.
type failing struct {
	method, prefix string
	on             atomic.Bool
}

func (f *failing) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == f.method && strings.HasPrefix(r.URL.Path, f.prefix) && f.on.Load() {
		return nil, errors.New("injected: connection refused")
	}
	return http.DefaultTransport.RoundTrip(r)
}

// A create slower than the timeout commits after the client gave up. With
// mayCreate false (the caller's settle time has not passed) no second
// create is sent, and a look-up once the commit happened finds the change:
// one change, not two.
func TestSlowCreateIsNotSentAgainBeforeItSettles(t *testing.T) {
	c, _ := simClient(t, snowsim.Options{Faults: snowsim.Faults{CreateDelayMin: 600 * time.Millisecond, CreateDelayMax: 600 * time.Millisecond}},
		200*time.Millisecond, nil)
	ctx := context.Background()
	in := ChangeInput{ShortDescription: "slow", CorrelationID: "daytwo:slow-1", CmdbCI: "checkout-service"}
	_, out, err := c.CreateChangeResumable(ctx, in, "", true)
	if !errors.Is(err, ErrOutcomeUnknown) || !out.Sent {
		t.Fatalf("first attempt: %+v %v, want an unknown outcome with a create sent", out, err)
	}
	if c.CreateSettle() != 2*time.Minute { // the floor: 10 × 200 ms is less
		t.Fatalf("settle = %s", c.CreateSettle())
	}
	var ch *Change
	for deadline := time.Now().Add(10 * time.Second); ch == nil; {
		var err error
		ch, out, err = c.CreateChangeResumable(ctx, in, "", false)
		switch {
		case err == nil:
		case errors.Is(err, ErrCreatePending) && !out.Sent:
			if time.Now().After(deadline) {
				t.Fatal("the slow create never became visible")
			}
			time.Sleep(50 * time.Millisecond)
		default:
			t.Fatalf("look-up attempt: %+v %v", out, err)
		}
	}
	if got := changesOf(t, c, in.CorrelationID); len(got) != 1 || got[0].Number != ch.Number {
		t.Fatalf("changes for %s: %d, want the one found (%s)", in.CorrelationID, len(got), ch.Number)
	}
}

// Changes of one create that exist twice (an earlier attempt's late commit)
// are reduced to one: the oldest is kept, the others canceled with a work
// note naming it.
func TestDuplicateChangesAreCanceled(t *testing.T) {
	c, _ := simClient(t, snowsim.Options{}, 5*time.Second, nil)
	ctx := context.Background()
	in := ChangeInput{ShortDescription: "dup", CorrelationID: "daytwo:dup-1"}
	var made []*Change
	for range 3 {
		ch, err := c.CreateChange(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, ch)
	}
	ch, out, err := c.CreateChangeResumable(ctx, in, "", true)
	if err != nil || out.Created || out.Sent {
		t.Fatalf("resume: %+v %v", out, err)
	}
	if ch.SysID != made[0].SysID || len(out.Duplicates) != 2 {
		t.Fatalf("kept %s, duplicates %v; want %s kept and 2 canceled", ch.Number, out.Duplicates, made[0].Number)
	}
	all := changesOf(t, c, in.CorrelationID)
	if openChanges(all) != 1 {
		t.Fatalf("%d open changes for one create", openChanges(all))
	}
	notes, err := c.ListJournal(ctx, made[2].SysID)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range notes {
		found = found || strings.Contains(n.Value, "duplicate of "+made[0].Number)
	}
	if !found {
		t.Fatalf("no work note naming %s on the canceled duplicate: %+v", made[0].Number, notes)
	}
	// A further attempt changes nothing.
	if _, out, err := c.CreateChangeResumable(ctx, in, "", true); err != nil || len(out.Duplicates) != 0 || out.Created {
		t.Fatalf("again: %+v %v", out, err)
	}
}

// An answer without a sys_id and number is an unknown outcome, resolved by
// look-up, never a delivered change with an empty number.
func TestEmptyCreateAnswerIsResolvedByLookup(t *testing.T) {
	c, sim := simClient(t, snowsim.Options{Faults: snowsim.Faults{CreateEmpty: snowsim.Rule{Every: 1}}}, 5*time.Second, nil)
	ctx := context.Background()
	if _, err := c.CreateChange(ctx, ChangeInput{ShortDescription: "x", CorrelationID: "daytwo:empty-0"}); !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("plain create with an empty answer: %v, want ErrOutcomeUnknown", err)
	}
	for i, id := range []string{"daytwo:empty-1", "daytwo:empty-2"} { // {"result":null}, then {"result":{}}
		ch, out, err := c.CreateChangeResumable(ctx, ChangeInput{ShortDescription: "x", CorrelationID: id}, "", true)
		if err != nil || !out.Created || ch.Number == "" || ch.SysID == "" {
			t.Fatalf("answer %d: %+v %+v %v", i, ch, out, err)
		}
		if n := len(changesOf(t, c, id)); n != 1 {
			t.Fatalf("%d changes for %s", n, id)
		}
	}
	sim.SetFaults(snowsim.Faults{})
}

// A standard change from a template loses correlation id, window and CI on
// create (trap 21); the client sets them with a follow-up PATCH and checks
// the stored record.
func TestStandardChangeGetsItsFieldsAfterCreate(t *testing.T) {
	c, _ := simClient(t, snowsim.Options{}, 5*time.Second, nil)
	ctx := context.Background()
	start := time.Date(2026, 5, 2, 22, 0, 0, 0, time.UTC)
	in := ChangeInput{
		Type: TypeStandard, Template: "Routine app rollout", ShortDescription: "Roll out checkout 2.0",
		Description: "our plan", CmdbCI: "checkout-service", StartDate: start, EndDate: start.Add(time.Hour), CorrelationID: "daytwo:std-1",
	}
	ch, out, err := c.CreateChangeResumable(ctx, in, "", true)
	if err != nil || !out.Created {
		t.Fatalf("create: %+v %v", out, err)
	}
	stored, err := c.GetChange(ctx, ch.SysID)
	if err != nil {
		t.Fatal(err)
	}
	checkStandardFields(t, stored, in)
}

func checkStandardFields(t *testing.T, ch *Change, in ChangeInput) {
	t.Helper()
	if ch.CorrelationID != in.CorrelationID || !ch.StartDate.Equal(in.StartDate) || !ch.EndDate.Equal(in.EndDate) ||
		ch.CmdbCI == "" || ch.Description != in.Description || !strings.Contains(ch.ShortDescription, "["+in.CorrelationID+"]") {
		t.Fatalf("stored standard change: correlation %q window %s–%s ci %q description %q short %q",
			ch.CorrelationID, ch.StartDate, ch.EndDate, ch.CmdbCI, ch.Description, ch.ShortDescription)
	}
}

// A standard change whose follow-up PATCH failed is found again by the
// retry — by the sys_id the first answer gave, or by the marker in its
// short description when that was lost too — and never created twice.
func TestStandardFollowUpFailureIsFoundAgain(t *testing.T) {
	for name, keepSysID := range map[string]bool{"by sys_id": true, "by marker": false} {
		t.Run(name, func(t *testing.T) {
			rt := &failing{method: http.MethodPatch, prefix: "/api/now/table/change_request/"}
			rt.on.Store(true)
			c, _ := simClient(t, snowsim.Options{}, 5*time.Second, rt)
			ctx := context.Background()
			start := time.Date(2026, 5, 3, 22, 0, 0, 0, time.UTC)
			in := ChangeInput{
				Type: TypeStandard, Template: "Routine app rollout", ShortDescription: "Roll out",
				Description: "our plan", CmdbCI: "checkout-service", StartDate: start, EndDate: start.Add(time.Hour), CorrelationID: "daytwo:std-2",
			}
			_, out, err := c.CreateChangeResumable(ctx, in, "", true)
			var fe *FollowUpError
			if !errors.As(err, &fe) || out.SysID == "" || out.Sent {
				t.Fatalf("first attempt: %+v %v, want a follow-up error naming the change", out, err)
			}
			rt.on.Store(false)
			known := ""
			if keepSysID {
				known = out.SysID
			}
			ch, out2, err := c.CreateChangeResumable(ctx, in, known, true)
			if err != nil || out2.Created || ch.SysID != out.SysID {
				t.Fatalf("retry: %+v %+v %v, want %s found again", ch, out2, err, out.Number)
			}
			checkStandardFields(t, ch, in)
			if n := len(changesOf(t, c, in.CorrelationID)); n != 1 {
				t.Fatalf("%d changes, want 1", n)
			}
		})
	}
}

// Without the Change Management API a standard change is a Table API insert
// naming the template version; the template's values win there, so the
// client writes its description (and the rest) in a follow-up PATCH.
func TestStandardThroughTableAPIGetsOurDescription(t *testing.T) {
	c, _ := simClient(t, snowsim.Options{}, 5*time.Second, nil)
	c.changeAPI.Store(changeAPIAbsent)
	ctx := context.Background()
	start := time.Date(2026, 5, 4, 22, 0, 0, 0, time.UTC)
	in := ChangeInput{
		Type: TypeStandard, Template: "Routine app rollout", ShortDescription: "Roll out",
		Description: "our plan", CmdbCI: "checkout-service", StartDate: start, EndDate: start.Add(time.Hour), CorrelationID: "daytwo:std-3",
	}
	ch, _, err := c.CreateChangeResumable(ctx, in, "", true)
	if err != nil {
		t.Fatal(err)
	}
	if rec, _, err := c.getOne(ctx, TableChangeRequest, ch.SysID, []string{"std_change_producer_version"}); err != nil || rec.Get("std_change_producer_version") == "" {
		t.Fatalf("not created from the template: %v (%v)", rec, err)
	}
	stored, err := c.GetChange(ctx, ch.SysID)
	if err != nil {
		t.Fatal(err)
	}
	checkStandardFields(t, stored, in)
}
