package itsm

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daytwo/daytwo/itsm/snowsim"
	"github.com/daytwo/daytwo/ops"
)

// The seed's CIs (fixtures/servicenow/cmdb_ci.json).
const (
	ciCheckout  = "d2300000000000000000000000000001"
	ciPayments  = "d2300000000000000000000000000002"
	ciInventory = "d2300000000000000000000000000003"
	noSuchCI    = "0123456789abcdef0123456789abcdef"
)

// affectedCIAdder is the interface ops declares for the bundle flow
// (ops.AffectedCIAdder); the Bridge must keep matching it.
type affectedCIAdder interface {
	AddAffectedCIs(ctx context.Context, changeSysID string, cis []string) error
}

var _ affectedCIAdder = (*Bridge)(nil)

// simClock is one clock for the simulator and the client: the client's
// sleeps move it, so waiting for a worker takes no real time.
type simClock struct {
	mu    sync.Mutex
	t     time.Time
	slept int
}

func (c *simClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *simClock) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.slept++
	c.mu.Unlock()
	return ctx.Err()
}

// affectedEnv is a client of a fresh in-process simulator sharing its
// clock, and a normal change to attach CIs to.
func affectedEnv(t *testing.T, opts snowsim.Options) (*Client, *snowsim.Sim, *simClock, string) {
	t.Helper()
	clk := &simClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	opts.Clock = clk.now
	sim, err := snowsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); _ = sim.Close() })
	c, err := New(Config{Instance: srv.URL, Auth: AuthConfig{Username: "daytwo", Password: "daytwo"}, Timeout: 5 * time.Second},
		WithClock(clk.now), WithSleep(clk.sleep))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := c.CreateChange(context.Background(), ChangeInput{ShortDescription: "bundle", CorrelationID: "daytwo:bundle-" + t.Name(), CmdbCI: "checkout-service"})
	if err != nil {
		t.Fatal(err)
	}
	return c, sim, clk, ch.SysID
}

func ciIDs(cis []AffectedCI) []string {
	out := make([]string, len(cis))
	for i, a := range cis {
		out[i] = a.SysID + "=" + a.Name
	}
	slices.Sort(out)
	return out
}

// taskCIRows counts the change's task_ci rows as stored, duplicates
// included.
func taskCIRows(t *testing.T, c *Client, change string) int {
	t.Helper()
	recs, _, err := c.listTable(context.Background(), TableTaskCI, c.listParams("task="+change, []string{"sys_id", "ci_item"}, 100))
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

func requestsTo(sim *snowsim.Sim, method, suffix string) int {
	n := 0
	for _, r := range sim.Requests() {
		if r.Method == method && strings.HasSuffix(r.Path, suffix) {
			n++
		}
	}
	return n
}

// Through the Change Management API: the association worker is waited
// for, the CIs are listed with their names afterwards, and a retry (with
// one more CI) associates nothing twice.
func TestAddAffectedCIsThroughTheChangeAPI(t *testing.T) {
	c, sim, clk, chg := affectedEnv(t, snowsim.Options{AssociateDelay: 3 * time.Second})
	ctx := context.Background()
	if err := c.AddAffectedCIs(ctx, chg, []string{ciPayments, ciInventory, ciPayments}); err != nil {
		t.Fatal(err)
	}
	if clk.slept == 0 || requestsTo(sim, "GET", "/ci") == 0 {
		t.Fatalf("the worker was not waited for (%d sleeps) or the result not listed", clk.slept)
	}
	got, err := c.AffectedCIs(ctx, chg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{ciPayments + "=payments-api", ciInventory + "=inventory-db"}
	slices.Sort(want)
	if !slices.Equal(ciIDs(got), want) {
		t.Fatalf("affected = %v, want %v", ciIDs(got), want)
	}
	if err := c.AddAffectedCIs(ctx, chg, []string{ciPayments, ciCheckout}); err != nil {
		t.Fatal(err)
	}
	if n := taskCIRows(t, c, chg); n != 3 {
		t.Fatalf("task_ci rows after the retry: %d, want 3", n)
	}
	if n := requestsTo(sim, "POST", "/change/"+chg+"/ci"); n != 2 {
		t.Fatalf("POST /ci sent %d times, want 2", n)
	}
}

// An unknown CI is an error naming it that matches ErrNotFound (the
// others are associated); an unknown change is ErrNotFound; a worker that
// does not finish within a minute is an error, not a success.
func TestAddAffectedCIsRefusals(t *testing.T) {
	c, _, _, chg := affectedEnv(t, snowsim.Options{AssociateDelay: -1})
	ctx := context.Background()
	err := c.AddAffectedCIs(ctx, chg, []string{ciPayments, noSuchCI})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), noSuchCI) || strings.Contains(strings.SplitN(err.Error(), "(", 2)[0], ciPayments) {
		t.Fatalf("unknown CI: %v", err)
	}
	if got, _ := c.AffectedCIs(ctx, chg); !slices.Equal(ciIDs(got), []string{ciPayments + "=payments-api"}) {
		t.Fatalf("affected = %v", ciIDs(got))
	}
	const ghost = "fedcba9876543210fedcba9876543210"
	if err := c.AddAffectedCIs(ctx, ghost, []string{ciPayments}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown change: %v", err)
	}
	if _, err := c.AffectedCIs(ctx, ghost); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown change listed: %v", err)
	}
	if err := c.AddAffectedCIs(ctx, chg, []string{"payments-api"}); err == nil || !strings.Contains(err.Error(), "not a sys_id") {
		t.Fatalf("a name given to the client: %v", err)
	}

	slow, _, _, chg2 := affectedEnv(t, snowsim.Options{AssociateDelay: 2 * time.Minute})
	err = slow.AddAffectedCIs(ctx, chg2, []string{ciCheckout})
	if err == nil || !strings.Contains(err.Error(), "still running") || errors.Is(err, ErrNotFound) {
		t.Fatalf("worker still running: %v", err)
	}
}

// An older release without /change/{id}/ci: the client falls back to
// task_ci inserts through the Table API (probing the endpoint once), with
// the same guarantees.
func TestAddAffectedCIsFallsBackToTheTableAPI(t *testing.T) {
	c, sim, _, chg := affectedEnv(t, snowsim.Options{NoChangeCIEndpoint: true})
	ctx := context.Background()
	for range 2 {
		if err := c.AddAffectedCIs(ctx, chg, []string{ciPayments, ciInventory}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.AffectedCIs(ctx, chg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{ciPayments + "=payments-api", ciInventory + "=inventory-db"}
	slices.Sort(want)
	if !slices.Equal(ciIDs(got), want) || taskCIRows(t, c, chg) != 2 {
		t.Fatalf("affected = %v (%d rows), want %v once each", ciIDs(got), taskCIRows(t, c, chg), want)
	}
	if n := requestsTo(sim, "POST", "/change/"+chg+"/ci"); n != 1 {
		t.Fatalf("the missing endpoint was tried %d times, want once", n)
	}
	if err := c.AddAffectedCIs(ctx, chg, []string{noSuchCI}); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), noSuchCI) {
		t.Fatalf("unknown CI: %v", err)
	}
	if err := c.AddAffectedCIs(ctx, "fedcba9876543210fedcba9876543210", []string{ciPayments}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown change: %v", err)
	}
	if taskCIRows(t, c, chg) != 2 {
		t.Fatal("a refused call inserted rows")
	}
}

// The bridge takes names (or sys_ids), resolves them through the CI
// look-up and its cache, and refuses an unknown name, naming it.
func TestBridgeAddsAffectedCIsByName(t *testing.T) {
	c, sim, _, chg := affectedEnv(t, snowsim.Options{AssociateDelay: -1})
	b := NewBridge(c)
	ctx := context.Background()
	before := requestsTo(sim, "GET", "/api/now/table/cmdb_ci")
	for range 2 {
		if err := b.AddAffectedCIs(ctx, chg, []string{"payments-api", ciInventory}); err != nil {
			t.Fatal(err)
		}
	}
	if n := requestsTo(sim, "GET", "/api/now/table/cmdb_ci") - before; n != 1 {
		t.Fatalf("payments-api looked up %d times, want once (cached)", n)
	}
	got, _ := c.AffectedCIs(ctx, chg)
	want := []string{ciPayments + "=payments-api", ciInventory + "=inventory-db"}
	slices.Sort(want)
	if !slices.Equal(ciIDs(got), want) {
		t.Fatalf("affected = %v, want %v", ciIDs(got), want)
	}
	err := b.AddAffectedCIs(ctx, chg, []string{"search-service"})
	if !errors.Is(err, ops.ErrRefused) || !strings.Contains(err.Error(), "search-service") {
		t.Fatalf("unknown name: %v", err)
	}
	err = b.AddAffectedCIs(ctx, chg, []string{noSuchCI})
	if !errors.Is(err, ops.ErrRefused) || !strings.Contains(err.Error(), noSuchCI) {
		t.Fatalf("unknown sys_id: %v", err)
	}
	if err := b.AddAffectedCIs(ctx, "fedcba9876543210fedcba9876543210", []string{"payments-api"}); !errors.Is(err, ops.ErrRefused) {
		t.Fatalf("unknown change: %v", err)
	}
}

// Only a refusal of the endpoint itself falls back to the Table API: a 400
// about the body is the answer. A worker that completes without
// associating a CI (and without saying why) is an error naming it that is
// not a refusal, so the caller tries again.
func TestAffectedCIsEndpointAnswersAreNotFallbacks(t *testing.T) {
	env := newEnv(t)
	chg := sid(1)
	env.f.handle("POST /api/sn_chg_rest/change/"+chg+"/ci", respond(400, `{"error":{"message":"Invalid association_type","detail":"association_type is required"},"status":"failure"}`))
	err := env.c.AddAffectedCIs(context.Background(), chg, []string{ciPayments})
	if !errors.Is(err, ErrBadRequest) || env.f.count("POST", "/api/now/table/task_ci") != 0 {
		t.Fatalf("a 400 about the body: %v", err)
	}

	worker := sid(2)
	env.f.handle("POST /api/sn_chg_rest/change/"+chg+"/ci", respond(202, `{"result":{"worker":{"sysId":"`+worker+`","link":"x"},"state":{"value":1,"display_value":"Waiting"},"type":"affected"}}`))
	env.f.handle("GET /api/sn_chg_rest/change/worker/"+worker, respond(200, `{"result":{"state":{"value":3,"display_value":"Complete"},"messages":{"errorMessages":[],"warningMessages":[],"infoMessages":[]}}}`))
	env.f.handle("GET /api/sn_chg_rest/change/"+chg+"/ci", respond(200, `{"result":[{"sys_id":{"value":"`+sid(3)+`"},"ci_item":{"value":"`+ciInventory+`","display_value":"inventory-db"}}]}`))
	err = env.c.AddAffectedCIs(context.Background(), chg, []string{ciPayments, ciInventory})
	if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "not associated afterwards: "+ciPayments) {
		t.Fatalf("a CI missing after the worker: %v", err)
	}
	if got := opsErr(err); !errors.Is(got, ops.ErrUnavailable) {
		t.Fatalf("classified as %v, want retryable", got)
	}
}

// TestMirrorSkipsACIServiceNowDoesNotKnow: one unknown CI in the mirror's
// list (a typo in one service's configuration) leaves out only its own
// changes, named in the stats; the rest is mirrored.
func TestMirrorSkipsACIServiceNowDoesNotKnow(t *testing.T) {
	c, _, _, chg := affectedEnv(t, snowsim.Options{AssociateDelay: -1})
	b := NewBridge(c)
	var got []string
	st, err := b.MirrorChanges(context.Background(), ops.MirrorRequest{CorrelationPrefix: "nobody:", CIs: []string{"checkout-service", "no-such-service"}},
		func(page []ops.Change, _ ops.Watermark) error {
			for _, ch := range page {
				got = append(got, ch.SysID)
			}
			return nil
		})
	if err != nil {
		t.Fatalf("mirror with one unknown CI: %v", err)
	}
	if !slices.Equal(st.UnknownCIs, []string{"no-such-service"}) || st.ResolvedCIs["checkout-service"] == "" {
		t.Fatalf("stats = %+v", st)
	}
	if !slices.Contains(got, chg) {
		t.Fatalf("the change on checkout-service was not mirrored: %v", got)
	}
}
