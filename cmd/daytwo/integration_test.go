package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/daytwo/daytwo/itsm"
	"github.com/daytwo/daytwo/itsm/snowsim"
	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store"
)

// These tests run the real parts together — the ServiceNow simulator over
// loopback HTTP, the itsm client, ops and the SQLite store — as the daemon
// does.

func startSim(t *testing.T, opts snowsim.Options) *snowsim.Server {
	t.Helper()
	if opts.ConflictDelay == 0 {
		// Conflict checks run in the background, briefly (2s by default).
		opts.ConflictDelay = 100 * time.Millisecond
	}
	srv, err := snowsim.Listen(context.Background(), "127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// fakeClock is a settable clock shared by ops and the store, so tests can
// make outbox backoffs fall due without waiting.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

var gatedEnv = ops.Environment{
	Name: "production", RequiresChange: true, Targets: []ops.Target{{Name: "prd-1"}, {Name: "prd-2"}},
	Change:   ops.ChangeDefaults{Type: "normal", CmdbCI: "checkout-service", AssignmentGroup: "Platform Ops", Risk: "moderate", Window: 2 * time.Hour},
	Deploy:   ops.DeploySpec{Command: []string{"true"}},
	Strategy: ops.Strategy{MaxParallel: 1},
}

type harness struct {
	svc    *ops.Service
	db     *store.DB
	client *itsm.Client
	clock  *fakeClock
}

func newHarness(t *testing.T, simURL string, mirrorCIs bool) *harness {
	t.Helper()
	clock := &fakeClock{now: time.Now().UTC()}
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "d.db"), store.Options{Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.SyncEnvironments(context.Background(), []ops.Environment{gatedEnv}, "test"); err != nil {
		t.Fatal(err)
	}
	client, err := itsm.New(itsm.Config{
		Instance: simURL, Auth: itsm.AuthConfig{Username: "daytwo", Password: "daytwo"},
		Timeout: 10 * time.Second, PageSize: 1000,
	}, itsm.WithSleep(func(ctx context.Context, d time.Duration) error { return ctx.Err() }))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := ops.New(ops.Config{
		Environments: []ops.Environment{gatedEnv}, CorrelationPrefix: "daytwo", MirrorCIChanges: mirrorCIs,
		Actor: "test", Username: "daytwo",
	}, db, itsm.NewBridge(client), ops.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	return &harness{svc: svc, db: db, client: client, clock: clock}
}

// simCorrelationIDs lists the correlation ids of the simulator's changes
// that start with prefix, read as an admin straight from the Table API.
func simCorrelationIDs(t *testing.T, simURL, prefix string) []string {
	t.Helper()
	// The simulator's injected faults hit this read too: ask again until
	// it answers 200 (a 429 or 500 body would read as "no changes").
	for attempt := 0; ; attempt++ {
		req, _ := http.NewRequest(http.MethodGet, simURL+"/api/now/table/change_request?sysparm_fields=correlation_id&sysparm_limit=10000&sysparm_query=correlation_idSTARTSWITH"+prefix, nil)
		req.SetBasicAuth("admin", "admin")
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			if resp != nil {
				resp.Body.Close()
			}
			if attempt > 50 {
				t.Fatalf("simulator read: %v (status %v)", err, resp)
			}
			continue
		}
		var body struct {
			Result []struct {
				CorrelationID string `json:"correlation_id"`
			} `json:"result"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			if attempt > 50 {
				t.Fatal(err)
			}
			continue // a dropped connection cut the body
		}
		ids := make([]string, len(body.Result))
		for i, r := range body.Result {
			ids[i] = r.CorrelationID
		}
		return ids
	}
}

func TestProposalsUnderFaultsYieldExactlyOneChangeEach(t *testing.T) {
	n := 200
	if testing.Short() {
		n = 40
	}
	faults, err := snowsim.ParseFaults("429=3%,500=2%,drop=2%,create-drop=3%")
	if err != nil {
		t.Fatal(err)
	}
	sim := startSim(t, snowsim.Options{Faults: faults})
	h := newHarness(t, sim.URL(), false)
	ctx := context.Background()
	ids := map[string]bool{}
	last := ""
	for i := range n {
		// One open update per environment: each proposal supersedes the
		// one before (whose change is then canceled through the outbox).
		p, err := h.svc.Propose(ctx, ops.ProposeRequest{Environment: "production", Version: fmt.Sprintf("1.%d.0", i), Supersede: true})
		if err != nil {
			t.Fatal(err)
		}
		ids[p.Update.ID] = true
		last = p.Update.ID
	}
	var st ops.DeliveryStats
	for round := 0; ; round++ {
		s, err := h.svc.DeliverOutbox(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st.Delivered += s.Delivered
		st.Retrying += s.Retrying
		st.Failed += s.Failed
		left, err := h.db.ListOutbox(ctx, ops.OutboxFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		if round > 100 {
			t.Fatalf("outbox not drained after %d rounds: %d left, first: %+v", round, len(left), left[0])
		}
		h.clock.Advance(10 * time.Minute) // let every backoff fall due
	}
	// At least create + request approval per update (a superseded one's
	// work note and cancel come on top), none refused.
	if st.Failed != 0 || st.Delivered < 2*n {
		t.Fatalf("delivery = %+v, want at least %d delivered and none refused", st, 2*n)
	}
	if st.Retrying == 0 {
		t.Fatal("the faults never fired: the test proves nothing")
	}
	got := simCorrelationIDs(t, sim.URL(), "daytwo:")
	seen := map[string]bool{}
	for _, c := range got {
		if seen[c] {
			t.Errorf("duplicate change for %s", c)
		}
		seen[c] = true
	}
	if len(got) != n {
		t.Fatalf("simulator holds %d daytwo changes, want exactly %d", len(got), n)
	}
	for id := range ids {
		if !seen["daytwo:"+id] {
			t.Errorf("update %s has no change", id)
		}
		want := ops.UpdateCanceled
		if id == last {
			want = ops.UpdateAwaitingApproval
		}
		u, err := h.db.GetUpdate(ctx, id)
		if err != nil || u.ChangeNumber == "" || u.State != want {
			t.Errorf("update %s = %+v, %v; want %s", id, u, err, want)
		}
	}
	t.Logf("%d proposals: %+v", n, st)
}

func TestMirrorThenIdleCycleCostsOneRequestPerTable(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	sim := startSim(t, snowsim.Options{})
	if err := sim.Sim().GenerateChanges(n, snowsim.GenerateOptions{}); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, sim.URL(), true)
	ctx := context.Background()
	start := time.Now()
	rep, err := h.svc.SyncOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := h.db.CountChanges(ctx, ops.ChangeFilter{})
	if rep.Fetched == 0 || stored != rep.Upserted || rep.Fetched != rep.Upserted {
		t.Fatalf("first cycle = %+v; %d stored", rep, stored)
	}
	t.Logf("mirrored %d of %d generated changes (those on checkout-service) in %s, %d requests", stored, n, time.Since(start), rep.Requests)

	before := h.client.Stats().Requests
	rep, err = h.svc.SyncOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	made := h.client.Stats().Requests - before
	// change_request, sysapproval_approver (open approvals) and sys_audit_delete.
	if made != 3 || rep.Fetched != 0 || rep.Upserted != 0 {
		t.Fatalf("idle cycle made %d requests (report %+v), want 3: one per mirrored table", made, rep)
	}
}

// pageGate serves the simulator to the daemon but holds every mirror page
// after the first until it is opened: the test kills the daemon mid-sync
// by construction, not by racing it.
type pageGate struct {
	h      http.Handler
	mu     sync.Mutex
	served int
	open   chan struct{}
}

func (g *pageGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/table/change_request") {
		g.mu.Lock()
		g.served++
		n := g.served
		g.mu.Unlock()
		if n > 1 {
			select {
			case <-g.open:
			case <-r.Context().Done():
				return
			}
		}
	}
	g.h.ServeHTTP(w, r)
}

func TestDaemonKilledMidSyncLosesAndDuplicatesNothing(t *testing.T) {
	n := 6000
	sim := startSim(t, snowsim.Options{})
	if err := sim.Sim().GenerateChanges(n, snowsim.GenerateOptions{}); err != nil {
		t.Fatal(err)
	}
	gate := &pageGate{h: sim.Sim(), open: make(chan struct{})}
	gated := httptest.NewServer(gate)
	t.Cleanup(gated.Close)
	var opened sync.Once
	openGate := func() { opened.Do(func() { close(gate.open) }) }
	t.Cleanup(openGate)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "daytwo.yaml")
	if err := os.WriteFile(cfg, []byte(`
store: {path: d.db}
servicenow:
  instance: `+gated.URL+`
  auth: {username: daytwo}
  page_size: 200
environments:
  - name: production
    requires_change: true
    change: {cmdb_ci: checkout-service}
    targets: [{name: prd-1}]
    deploy: {command: ["true"]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"DAYTWO_CONFIG=" + cfg, "DAYTWO_SN_PASSWORD=daytwo"}
	daemon := exec.Command(daytwoBin, "sync", "--watch", "--interval", "1h", "--listen", "127.0.0.1:0")
	daemon.Env = append(os.Environ(), env...)
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = daemon.Process.Kill() })
	dbPath := filepath.Join(dir, "d.db")
	// The first page is stored; the next ones wait at the gate.
	waitFor(t, "the daemon to store the first page", 60*time.Second, func() bool { return countRows(t, dbPath) > 0 })
	if err := daemon.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = daemon.Wait()
	openGate()
	partial := countRows(t, dbPath)

	r := daytwo(t, env, "sync", "--once", "-o", "json")
	if r.code != 0 {
		t.Fatalf("sync after kill: %+v", r)
	}
	total := countRows(t, dbPath)
	// Only changes on checkout-service are mirrored: count them in the sim.
	want := simCount(t, sim.URL(), "cmdb_ci.name=checkout-service")
	if partial >= want {
		t.Fatalf("the kill came too late (%d of %d stored): the test proves nothing", partial, want)
	}
	if total != want {
		t.Fatalf("after kill at %d rows and a restart: %d stored, want %d", partial, total, want)
	}
	r = daytwo(t, env, "audit", "verify")
	if r.code != 0 {
		t.Fatalf("audit after kill: %+v", r)
	}
	t.Logf("killed at %d/%d rows; restart completed to %d", partial, want, total)
}

func countRows(t *testing.T, path string) int {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		return 0
	}
	db, err := store.Open(context.Background(), path, store.Options{})
	if err != nil {
		return 0 // being created
	}
	defer db.Close()
	n, _ := db.CountChanges(context.Background(), ops.ChangeFilter{})
	return n
}

func simCount(t *testing.T, simURL, query string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, simURL+"/api/now/table/change_request?sysparm_fields=sys_id&sysparm_limit=1&sysparm_query="+query, nil)
	req.SetBasicAuth("admin", "admin")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	n, err := strconv.Atoi(resp.Header.Get("X-Total-Count"))
	if err != nil {
		t.Fatalf("X-Total-Count: %v", err)
	}
	return n
}
