package ops_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store"
)

// Bundles on the real SQLite store with the in-memory change system: one
// change for several services, run in order, rolled back as a whole.

// bundleChanges is the in-memory change system with affected CIs and the
// closing notes kept (the test's stand-in until the ServiceNow bridge
// attaches affected CIs; the end-to-end tests use the simulator).
type bundleChanges struct {
	*fakeChanges
	mu       sync.Mutex
	affected map[string][]string // by change sys_id
	closes   []string            // "code: notes"
}

func (b *bundleChanges) AddAffectedCIs(_ context.Context, sysID string, cis []string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ci := range cis {
		if !slices.Contains(b.affected[sysID], ci) {
			b.affected[sysID] = append(b.affected[sysID], ci)
		}
	}
	return nil
}

func (b *bundleChanges) CloseChange(ctx context.Context, sysID, code, notes string) (ops.Change, error) {
	ch, err := b.fakeChanges.CloseChange(ctx, sysID, code, notes)
	if err == nil {
		b.mu.Lock()
		b.closes = append(b.closes, code+": "+notes)
		b.mu.Unlock()
	}
	return ch, err
}

var _ ops.AffectedCIAdder = (*bundleChanges)(nil)

var bundleServices = []string{"checkout", "payments", "search"}

type bundleWorld struct {
	*gatedWorld
	bc *bundleChanges
	// process starts another daytwo process on the same store, change
	// system and fleet.
	process func(t *testing.T, holder string) *ops.Service
}

// newBundleWorld configures three services in a gated production stage,
// each with two targets of its own, all at 1.0.0.
func newBundleWorld(t *testing.T, autoRun bool) *bundleWorld {
	t.Helper()
	clk := &clock{now: time.Now().UTC().Truncate(time.Second)}
	var envs []ops.Environment
	var targets []ops.Target
	for _, svc := range bundleServices {
		env := ops.Environment{
			Name: ops.UnitKey(svc, "production"), Service: svc, Stage: "production", RequiresChange: true, AutoRun: autoRun,
			Targets:      targetsNamed(svc+"-1", svc+"-2"),
			Change:       ops.ChangeDefaults{Type: "normal", CmdbCI: svc + "-app", AssignmentGroup: "Platform Ops", Window: 2 * time.Hour},
			Deploy:       ops.DeploySpec{Command: []string{"deploy"}},
			Health:       []ops.HealthCheck{{Command: []string{"check"}}},
			VersionProbe: ops.VersionProbe{Command: []string{"probe"}},
			Strategy:     ops.Strategy{BatchSize: ops.BatchSize{Count: 1}, MaxParallel: 1},
		}
		envs = append(envs, env)
		targets = append(targets, env.Targets...)
	}
	cfg := ops.Config{CorrelationPrefix: "daytwo", Actor: "test", Username: "daytwo", Environments: envs}
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "d.db"), store.Options{Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.SyncEnvironments(context.Background(), envs, "test"); err != nil {
		t.Fatal(err)
	}
	bc := &bundleChanges{fakeChanges: newFakeChanges(clk.Now), affected: map[string][]string{}}
	w := &gatedWorld{db: db, cs: bc.fakeChanges, fleet: newFleet(targets, "1.0.0"), clk: clk, env: envs[0]}
	process := func(t *testing.T, holder string) *ops.Service {
		t.Helper()
		svc, err := ops.New(cfg, db, bc, ops.WithClock(clk.Now), ops.WithHolder(holder),
			ops.WithExecutors(func(ops.Environment) (ops.Executor, ops.HealthChecker, error) { return w.fleet, w.fleet, nil }),
			ops.WithProbers(func(ops.Environment) (ops.VersionProber, error) { return w.fleet, nil }))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.Wait)
		return svc
	}
	w.svc = process(t, "host:1")
	// Every service runs 1.0.0: a release to return to.
	atomicRelease(t, db, envs, "1.0.0")
	return &bundleWorld{gatedWorld: w, bc: bc, process: process}
}

func atomicRelease(t *testing.T, db *store.DB, envs []ops.Environment, version string) {
	t.Helper()
	err := db.Atomic(context.Background(), func(tx ops.Tx) error {
		for _, e := range envs {
			if _, err := tx.RecordRelease(context.Background(), ops.Release{Environment: e.Name, Version: version}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// proposeApprovedBundle proposes a bundle, delivers its change and
// approves it.
func (w *bundleWorld) proposeApprovedBundle(t *testing.T, parallel bool, members ...ops.BundleMember) ops.BundleProposal {
	t.Helper()
	bp, err := w.svc.ProposeBundle(context.Background(), ops.BundleRequest{Stage: "production", Members: members, Parallel: parallel})
	if err != nil {
		t.Fatal(err)
	}
	w.deliverAll(t)
	lead, err := w.svc.GetUpdate(context.Background(), bp.ID)
	if err != nil || lead.ChangeNumber == "" {
		t.Fatalf("lead after delivery: %+v, %v", lead, err)
	}
	w.cs.approve(lead.ChangeNumber)
	w.sync(t)
	return bp
}

func (w *bundleWorld) members(t *testing.T, id string) map[string]ops.Update {
	t.Helper()
	ups, err := w.db.ListUpdates(context.Background(), ops.UpdateFilter{Bundle: id})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]ops.Update{}
	for _, u := range ups {
		key := strings.TrimSuffix(u.Environment, "/production")
		if u.Rollback {
			key += ":rollback"
		}
		out[key] = u
	}
	return out
}

func (w *bundleWorld) closes() []string {
	w.bc.mu.Lock()
	defer w.bc.mu.Unlock()
	return append([]string(nil), w.bc.closes...)
}

func members3(v1, v2, v3 string) []ops.BundleMember {
	return []ops.BundleMember{{Service: "checkout", Version: v1}, {Service: "payments", Version: v2}, {Service: "search", Version: v3}}
}

func TestBundleRunsInOrderUnderOneChangeClosedOnce(t *testing.T) {
	w := newBundleWorld(t, false)
	bp := w.proposeApprovedBundle(t, false, members3("1.4.2", "3.0.1", "2.0.0")...)
	if len(w.cs.changes) != 1 {
		t.Fatalf("%d changes raised, want one for the bundle", len(w.cs.changes))
	}
	ms := w.members(t, bp.ID)
	lead := ms["checkout"]
	var ch ops.Change
	for _, c := range w.cs.changes {
		ch = *c
	}
	if ch.CmdbCI != "checkout-app" || !strings.Contains(ch.ShortDescription, "bundle "+bp.ID) {
		t.Errorf("change CI %q, short description %q", ch.CmdbCI, ch.ShortDescription)
	}
	if got := w.bc.affected[ch.SysID]; !slices.Equal(got, []string{"checkout-app", "payments-app", "search-app"}) {
		t.Errorf("affected CIs %v", got)
	}
	for i, svc := range bundleServices {
		u := ms[svc]
		if u.ChangeNumber != ch.Number || u.BundleID != bp.ID || u.BundleSeq != i+1 || u.State != ops.UpdateApproved {
			t.Errorf("%s: change %q bundle %q #%d state %s", svc, u.ChangeNumber, u.BundleID, u.BundleSeq, u.State)
		}
	}

	res, err := w.svc.RunBundle(context.Background(), ch.Number, nil)
	if err != nil || res.State != ops.BundleSucceeded {
		t.Fatalf("RunBundle = %s, %v", res.State, err)
	}
	w.deliverAll(t)
	// In order: every target of a service before any of the next.
	var order []string
	for _, d := range w.fleet.deployed() {
		svc := strings.SplitN(d, "-", 2)[0]
		if len(order) == 0 || order[len(order)-1] != svc {
			order = append(order, svc)
		}
	}
	if !slices.Equal(order, bundleServices) {
		t.Errorf("deploy order %v (%v), want %v", order, w.fleet.deployed(), bundleServices)
	}
	for _, svc := range bundleServices {
		if u := w.members(t, bp.ID)[svc]; u.State != ops.UpdateSucceeded {
			t.Errorf("%s is %s", svc, u.State)
		}
	}
	if c := w.cs.change(lead.ChangeNumber); c.State != ops.ChangeClosed || c.CloseCode != "successful" {
		t.Errorf("change %s %s", c.State, c.CloseCode)
	}
	closes := w.closes()
	if len(closes) != 1 {
		t.Fatalf("closed %d times: %q", len(closes), closes)
	}
	for _, svc := range bundleServices {
		if !strings.Contains(closes[0], svc) {
			t.Errorf("closing notes do not cover %s: %s", svc, closes[0])
		}
	}
	// Running it again does nothing more.
	if _, err := w.svc.RunBundle(context.Background(), bp.ID, nil); err != nil {
		t.Fatal(err)
	}
	w.deliverAll(t)
	if n := len(w.closes()); n != 1 {
		t.Errorf("closed %d times after a second RunBundle", n)
	}
}

func TestBundleFailureRollsBackTouchedCancelsTheRestOneIncident(t *testing.T) {
	w := newBundleWorld(t, false)
	bp := w.proposeApprovedBundle(t, false, members3("1.4.2", "3.0.1", "2.0.0")...)
	w.fleet.broken["payments-2"] = true
	res, err := w.svc.RunBundle(context.Background(), bp.ID, nil)
	if !errors.Is(err, ops.ErrRunFailed) || res.State != ops.BundleRolledBack || res.FailedService != "payments" {
		t.Fatalf("RunBundle = %s (failed %q), %v", res.State, res.FailedService, err)
	}
	w.deliverAll(t)
	for _, tg := range []string{"checkout-1", "checkout-2", "payments-1", "payments-2", "search-1", "search-2"} {
		if v := w.fleet.version(tg); v != "1.0.0" {
			t.Errorf("%s runs %s after the bundle's rollback, want 1.0.0", tg, v)
		}
	}
	for _, d := range w.fleet.deployed() {
		if strings.HasPrefix(d, "search") {
			t.Errorf("search was deployed (%s), but it comes after the failed service", d)
		}
	}
	ms := w.members(t, bp.ID)
	if ms["checkout"].State != ops.UpdateRolledBack || ms["payments"].State != ops.UpdateRolledBack {
		t.Errorf("checkout %s, payments %s; want both rolled_back", ms["checkout"].State, ms["payments"].State)
	}
	if s := ms["search"]; s.State != ops.UpdateCanceled || !strings.Contains(s.Reason, "payments failed") {
		t.Errorf("search %s (%q), want canceled naming payments", s.State, s.Reason)
	}
	if rb := ms["checkout:rollback"]; rb.State != ops.UpdateSucceeded || rb.Version != "1.0.0" {
		t.Errorf("checkout's rollback update %+v", rb)
	}
	closes := w.closes()
	if len(closes) != 1 || !strings.HasPrefix(closes[0], "unsuccessful") {
		t.Fatalf("closes %q, want one unsuccessful", closes)
	}
	for _, svc := range bundleServices {
		if !strings.Contains(closes[0], svc) {
			t.Errorf("closing notes do not cover %s: %s", svc, closes[0])
		}
	}
	if len(w.cs.incidents) != 1 {
		t.Fatalf("%d incidents, want one", len(w.cs.incidents))
	}
	inc := w.cs.incidents[0]
	if !strings.Contains(inc.ShortDescription, "payments") || inc.CmdbCI != "payments-app" {
		t.Errorf("incident %q on %q, want it to name payments", inc.ShortDescription, inc.CmdbCI)
	}
	// Again: nothing more is closed or opened.
	if _, err := w.svc.RunBundle(context.Background(), bp.ID, nil); !errors.Is(err, ops.ErrRunFailed) {
		t.Fatalf("second RunBundle: %v", err)
	}
	w.deliverAll(t)
	if len(w.closes()) != 1 || len(w.cs.incidents) != 1 {
		t.Errorf("after a second RunBundle: %d closes, %d incidents", len(w.closes()), len(w.cs.incidents))
	}
}

func TestBundleRefusedAsAWholeCreatesNothing(t *testing.T) {
	w := newBundleWorld(t, false)
	ctx := context.Background()
	if _, err := w.svc.Propose(ctx, ops.ProposeRequest{Environment: "payments/production", Version: "9.9.9"}); err != nil {
		t.Fatal(err)
	}
	before, _ := w.db.ListOutbox(ctx, ops.OutboxFilter{})
	_, err := w.svc.ProposeBundle(ctx, ops.BundleRequest{Stage: "production", Members: members3("1.4.2", "3.0.1", "1.0.0")})
	if !errors.Is(err, ops.ErrBlocked) {
		t.Fatalf("err = %v, want blocked", err)
	}
	for _, want := range []string{"payments", "already has an open update", "search", "already runs 1.0.0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	ups, _ := w.db.ListUpdates(ctx, ops.UpdateFilter{})
	for _, u := range ups {
		if u.BundleID != "" {
			t.Errorf("update %s of a refused bundle was stored", u.ID)
		}
	}
	if after, _ := w.db.ListOutbox(ctx, ops.OutboxFilter{}); len(after) != len(before) {
		t.Errorf("outbox %d → %d items", len(before), len(after))
	}
	for name, tc := range map[string]struct {
		members []ops.BundleMember
		want    string
	}{
		"unknown":   {[]ops.BundleMember{{Service: "checkout", Version: "2"}, {Service: "billing", Version: "1"}}, `no service named "billing"`},
		"duplicate": {[]ops.BundleMember{{Service: "checkout", Version: "2"}, {Service: "checkout", Version: "3"}}, "checkout is named twice"},
		"version":   {[]ops.BundleMember{{Service: "checkout", Version: "2"}, {Service: "search", Version: "no good"}}, "search"},
		"one":       {[]ops.BundleMember{{Service: "checkout", Version: "2"}}, "at least two services"},
	} {
		_, err := w.svc.ProposeBundle(ctx, ops.BundleRequest{Stage: "production", Members: tc.members})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
	if _, err := w.svc.ProposeBundle(ctx, ops.BundleRequest{Stage: "qa", Members: members3("2", "2", "2")}); err == nil || !strings.Contains(err.Error(), `does not run in "qa"`) {
		t.Errorf("unknown stage: %v", err)
	}
}

func TestBundleParallelRunsEveryMemberAtOnce(t *testing.T) {
	w := newBundleWorld(t, false)
	// Each service's first deploy waits until every service has started
	// one: they can only all start if they run at once.
	started := map[string]bool{}
	var mu sync.Mutex
	all := make(chan struct{})
	w.fleet.onDeploy = func(req ops.StepRequest) {
		mu.Lock()
		started[strings.SplitN(req.Target.Name, "-", 2)[0]] = true
		if len(started) == len(bundleServices) {
			select {
			case <-all:
			default:
				close(all)
			}
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(30 * time.Second):
		}
	}
	bp := w.proposeApprovedBundle(t, true, members3("1.4.2", "3.0.1", "2.0.0")...)
	for _, u := range w.members(t, bp.ID) {
		if u.BundleSeq != 1 {
			t.Errorf("%s has seq %d, want 1 (parallel)", u.Environment, u.BundleSeq)
		}
	}
	res, err := w.svc.RunBundle(context.Background(), bp.ID, nil)
	if err != nil || res.State != ops.BundleSucceeded {
		t.Fatalf("RunBundle = %s, %v", res.State, err)
	}
	select {
	case <-all:
	default:
		t.Fatal("the members did not run at once")
	}
	w.deliverAll(t)
	if n := len(w.closes()); n != 1 {
		t.Errorf("closed %d times", n)
	}
}

func TestBundleInterruptedMidMemberIsContinuedByTheDaemon(t *testing.T) {
	w := newBundleWorld(t, true)
	bp := w.proposeApprovedBundle(t, false, members3("1.4.2", "3.0.1", "2.0.0")...)
	// Stop the run during payments' first batch (a signal): payments
	// stays running, resumable, with one target done.
	ctx, cancel := context.WithCancel(context.Background())
	w.fleet.onDeploy = func(req ops.StepRequest) {
		if req.Target.Name == "payments-1" {
			cancel()
		}
	}
	if _, err := w.svc.RunBundle(ctx, bp.ID, nil); !errors.Is(err, ops.ErrRunInterrupted) {
		t.Fatalf("interrupted RunBundle: %v", err)
	}
	w.fleet.onDeploy = nil
	if ms := w.members(t, bp.ID); ms["checkout"].State != ops.UpdateSucceeded || ms["payments"].State != ops.UpdateRunning || ms["search"].State != ops.UpdateApproved {
		t.Fatalf("after the stop: checkout %s, payments %s, search %s", ms["checkout"].State, ms["payments"].State, ms["search"].State)
	}
	// The daemon's step recovers payments and goes on with search.
	if _, err := w.svc.AutoRun(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	w.deliverAll(t)
	for svc, u := range w.members(t, bp.ID) {
		if u.State != ops.UpdateSucceeded {
			t.Errorf("%s is %s", svc, u.State)
		}
	}
	for _, tg := range []string{"checkout-1", "payments-2", "search-2"} {
		if v := w.fleet.version(tg); !strings.HasPrefix(v, map[byte]string{'c': "1.4.2", 'p': "3.0.1", 's': "2.0.0"}[tg[0]]) {
			t.Errorf("%s runs %s", tg, v)
		}
	}
	if closes := w.closes(); len(closes) != 1 || !strings.HasPrefix(closes[0], "successful") {
		t.Errorf("closes %q, want one successful", closes)
	}
}

func TestBundleCanceledWholeBeforeItStartsNeverAfter(t *testing.T) {
	w := newBundleWorld(t, false)
	ctx := context.Background()
	bp := w.proposeApprovedBundle(t, false, members3("1.4.2", "3.0.1", "2.0.0")...)
	ms := w.members(t, bp.ID)
	if _, err := w.svc.Cancel(ctx, ms["payments"].ID, "not this week"); err != nil {
		t.Fatal(err)
	}
	w.deliverAll(t)
	for svc, u := range w.members(t, bp.ID) {
		if u.State != ops.UpdateCanceled {
			t.Errorf("%s is %s after canceling the bundle", svc, u.State)
		}
	}
	if ch := w.cs.change(ms["checkout"].ChangeNumber); ch.State != ops.ChangeCanceled {
		t.Errorf("change %s", ch.State)
	}

	// Started: canceling a member is refused.
	bp = w.proposeApprovedBundle(t, false, members3("1.4.2", "3.0.1", "2.0.0")...)
	ctx2, cancel := context.WithCancel(ctx)
	w.fleet.onDeploy = func(req ops.StepRequest) {
		if req.Target.Name == "payments-1" {
			cancel()
		}
	}
	_, _ = w.svc.RunBundle(ctx2, bp.ID, nil)
	w.fleet.onDeploy = nil
	ms = w.members(t, bp.ID)
	if _, err := w.svc.Cancel(ctx, ms["search"].ID, "stop"); !errors.Is(err, ops.ErrIllegalTransition) || !strings.Contains(err.Error(), "started bundle") {
		t.Fatalf("cancel of a started bundle's member: %v", err)
	}
	if u, _ := w.svc.GetUpdate(ctx, ms["search"].ID); u.State != ops.UpdateApproved {
		t.Errorf("search is %s", u.State)
	}
}

func TestBundleWhoseWindowClosesMidwayRollsBack(t *testing.T) {
	w := newBundleWorld(t, false)
	bp := w.proposeApprovedBundle(t, false, members3("1.4.2", "3.0.1", "2.0.0")...)
	// Checkout runs; then the window closes before payments starts.
	ctx, cancel := context.WithCancel(context.Background())
	w.fleet.onDeploy = func(req ops.StepRequest) {
		if req.Target.Name == "checkout-2" {
			cancel() // stop after checkout, at the step boundary
		}
	}
	_, _ = w.svc.RunBundle(ctx, bp.ID, nil)
	w.fleet.onDeploy = nil
	if _, err := w.svc.RecoverRuns(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if u := w.members(t, bp.ID)["checkout"]; u.State != ops.UpdateSucceeded {
		t.Fatalf("checkout is %s", u.State)
	}
	w.clk.Advance(3 * time.Hour)
	res, err := w.svc.RunBundle(context.Background(), bp.ID, nil)
	if !errors.Is(err, ops.ErrRunFailed) || res.State != ops.BundleRolledBack || res.FailedService != "payments" {
		t.Fatalf("RunBundle after the window = %s (%q), %v", res.State, res.FailedService, err)
	}
	w.deliverAll(t)
	for _, tg := range []string{"checkout-1", "checkout-2", "payments-1", "search-1"} {
		if v := w.fleet.version(tg); v != "1.0.0" {
			t.Errorf("%s runs %s", tg, v)
		}
	}
	ms := w.members(t, bp.ID)
	if ms["checkout"].State != ops.UpdateRolledBack || ms["payments"].State != ops.UpdateCanceled || !strings.Contains(ms["payments"].Reason, "window closed") {
		t.Errorf("checkout %s, payments %s (%q)", ms["checkout"].State, ms["payments"].State, ms["payments"].Reason)
	}
	if closes := w.closes(); len(closes) != 1 || !strings.HasPrefix(closes[0], "unsuccessful") {
		t.Errorf("closes %q", closes)
	}
	if len(w.cs.incidents) != 1 {
		t.Errorf("%d incidents", len(w.cs.incidents))
	}
}

func TestBundleParallelFailureRollsBackEveryService(t *testing.T) {
	w := newBundleWorld(t, false)
	bp := w.proposeApprovedBundle(t, true, members3("1.4.2", "3.0.1", "2.0.0")...)
	w.fleet.broken["payments-2"] = true
	res, err := w.svc.RunBundle(context.Background(), bp.ID, nil)
	if !errors.Is(err, ops.ErrRunFailed) || res.State != ops.BundleRolledBack || res.FailedService != "payments" {
		t.Fatalf("RunBundle = %s (%q), %v", res.State, res.FailedService, err)
	}
	w.deliverAll(t)
	for _, svc := range bundleServices {
		for _, n := range []string{"-1", "-2"} {
			if v := w.fleet.version(svc + n); v != "1.0.0" {
				t.Errorf("%s%s runs %s", svc, n, v)
			}
		}
		// payments failed and rolled back. The others run beside it: one
		// that had finished is rolled back by the bundle's compensation,
		// one still running when payments failed stops at its next step
		// and rolls back what it touched (stopped; its determinate case is
		// TestBundleParallelFailureStopsTheOthersEarly). Which one depends
		// on the scheduler; the targets above say the outcome.
		want := []ops.UpdateState{ops.UpdateRolledBack}
		if svc != "payments" {
			want = append(want, ops.UpdateStopped)
		}
		if u := w.members(t, bp.ID)[svc]; !slices.Contains(want, u.State) {
			t.Errorf("%s is %s, want one of %v", svc, u.State, want)
		}
	}
	if len(w.closes()) != 1 || len(w.cs.incidents) != 1 {
		t.Errorf("%d closes, %d incidents; want one each", len(w.closes()), len(w.cs.incidents))
	}
}
