package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/daytwo/daytwo/fixtures/demofleet"
	"github.com/daytwo/daytwo/itsm"
	"github.com/daytwo/daytwo/itsm/snowsim"
	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store"
)

// The reliability suites of issue 8. Each runs a short version in `make
// test`; `make reliability` sets DAYTWO_RELIABILITY=long for the full one.

// longReliability reports whether the long suites were asked for.
func longReliability() bool { return os.Getenv("DAYTWO_RELIABILITY") == "long" }

// trials picks the short or the long size of a suite.
func trials(short, long int) int {
	if longReliability() {
		return long
	}
	return short
}

// TestCrashDuringRolloutsLeavesKnownReleases kills `daytwo run` with
// SIGKILL at a random moment of a gated production rollout over a real
// loopback fleet, restarts with `daytwo run --resume`, and checks that
// every target is on one known release, the audit chain verifies, every
// run.started has its ending event, no run is left running and no change
// is left in Implement.
func TestCrashDuringRolloutsLeavesKnownReleases(t *testing.T) {
	n := trials(3, 50)
	seed := uint64(time.Now().UnixNano())
	t.Logf("%d trials, seed %d", n, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	w := newEngineWorld(t, "200ms")
	prd := []string{"prd-1", "prd-2", "prd-3"}
	current := "1.0.0"
	outcomes := map[string]int{}
	for i := range n {
		version := fmt.Sprintf("2.%d.0", i)
		p := w.propose(t, "production", version)
		w.approve(t, p.Change)
		if r := daytwo(t, w.env, "sync", "--once"); r.code != 0 {
			t.Fatalf("trial %d: sync: %+v", i, r)
		}
		run := exec.Command(daytwoBin, "run", p.ID)
		run.Env = append(os.Environ(), w.env...)
		if err := run.Start(); err != nil {
			t.Fatal(err)
		}
		// A production run lasts about 2 s (3 batches, health checks, bake).
		delay := time.Duration(rng.Int64N(int64(2500 * time.Millisecond)))
		exited := make(chan error, 1)
		go func() { exited <- run.Wait() }()
		select {
		case <-exited:
			outcomes["finished before the kill"]++
		case <-time.After(delay):
			_ = run.Process.Signal(syscall.SIGKILL)
			<-exited
			outcomes["killed"]++
		}
		mid := w.versions(t, prd...)
		r := daytwo(t, w.env, "run", "--resume")
		if r.code != 0 && r.code != exitError {
			t.Fatalf("trial %d (kill after %v, fleet %s): resume: %+v", i, delay, mid, r)
		}
		if r := daytwo(t, w.env, "sync", "--once"); r.code != 0 { // delivers the evidence
			t.Fatalf("trial %d: sync after resume: %+v", i, r)
		}
		// A kill before the run started leaves the update approved (one
		// open update per environment): run it, or the next trial's
		// proposal is refused.
		if r := daytwo(t, w.env, "update", "show", p.ID, "-o", "json"); strings.Contains(r.stdout, `"state": "approved"`) {
			daytwo(t, w.env, "run", p.ID)
			daytwo(t, w.env, "sync", "--once")
		}
		got := w.versions(t, prd...)
		switch got {
		case strings.Repeat(version+",", 2) + version:
			current = version
			outcomes["rolled forward"]++
		case strings.Repeat(current+",", 2) + current:
			outcomes["back on the previous release"]++
		default:
			t.Fatalf("trial %d (kill after %v, fleet %s): targets on %s, want all on %s or all on %s", i, delay, mid, got, version, current)
		}
		checkAfterCrash(t, w, i)
	}
	t.Logf("outcomes: %v", outcomes)
}

func checkAfterCrash(t *testing.T, w *engineWorld, trial int) {
	t.Helper()
	if r := daytwo(t, w.env, "audit", "verify"); r.code != 0 {
		t.Fatalf("trial %d: audit verify: %+v", trial, r)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(w.dir, "d.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if running, err := db.Runs(ctx, "", ops.RunRunning); err != nil || len(running) != 0 {
		t.Fatalf("trial %d: runs still running after resume: %+v (%v)", trial, running, err)
	}
	events, err := db.ListEvents(ctx, ops.EventFilter{Environment: "production"})
	if err != nil {
		t.Fatal(err)
	}
	ended := map[string]bool{}
	for _, e := range events {
		if e.Action == "run.succeeded" || e.Action == "run.rolled_back" || e.Action == "run.failed" {
			ended[e.Subject] = true
		}
	}
	for _, e := range events {
		if e.Action == "run.started" && !ended[e.Subject] {
			t.Fatalf("trial %d: run %s started and never ended in the audit log", trial, e.Subject)
		}
	}
	for _, c := range w.simRecords(t, "change_request", "correlation_idSTARTSWITHdaytwo:^state=-1") {
		t.Fatalf("trial %d: change %v left in Implement with no run in progress", trial, c["number"])
	}
}

// faultWorld is the daemon's parts in process (simulator with faults,
// client, store, ops) with an in-process executor, so that a suite of a
// thousand updates exercises the ServiceNow paths, not process spawning.
type faultWorld struct {
	*harness
	sim    *snowsim.Server
	deploy *countingExecutor
}

// countingExecutor deploys nothing and counts what it was asked to deploy.
type countingExecutor struct {
	mu       sync.Mutex
	deployed map[string]int // by version
}

func (e *countingExecutor) Deploy(_ context.Context, req ops.StepRequest, log ops.LogSink) error {
	e.mu.Lock()
	e.deployed[req.Version]++
	e.mu.Unlock()
	log(req.Target.Name, "stdout", "deployed "+req.Version)
	return nil
}

var faultEnv = ops.Environment{
	Name: "production", RequiresChange: true, Targets: []ops.Target{{Name: "prd-1"}, {Name: "prd-2"}},
	Change:   ops.ChangeDefaults{Type: "normal", CmdbCI: "checkout-service", AssignmentGroup: "Platform Ops", Risk: "moderate", Window: 7 * 24 * time.Hour},
	Deploy:   ops.DeploySpec{Command: []string{"true"}},
	Strategy: ops.Strategy{BatchSize: ops.BatchSize{Percent: 100}, MaxParallel: 2},
}

func newFaultWorld(t *testing.T, faults string) *faultWorld {
	t.Helper()
	f, err := snowsim.ParseFaults(faults)
	if err != nil {
		t.Fatal(err)
	}
	sim := startSim(t, snowsim.Options{Faults: f})
	clock := &fakeClock{now: time.Now().UTC()}
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "d.db"), store.Options{Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.SyncEnvironments(context.Background(), []ops.Environment{faultEnv}, "test"); err != nil {
		t.Fatal(err)
	}
	client, err := itsm.New(itsm.Config{
		Instance: sim.URL(), Auth: itsm.AuthConfig{Username: "daytwo", Password: "daytwo"},
		Timeout: 10 * time.Second, PageSize: 1000,
	},
		itsm.WithSleep(func(ctx context.Context, d time.Duration) error { return ctx.Err() }))
	if err != nil {
		t.Fatal(err)
	}
	ex := &countingExecutor{deployed: map[string]int{}}
	svc, err := ops.New(ops.Config{Environments: []ops.Environment{faultEnv}, CorrelationPrefix: "daytwo", Actor: "test", Username: "daytwo"},
		db, itsm.NewBridge(client), ops.WithClock(clock.Now),
		ops.WithExecutors(func(ops.Environment) (ops.Executor, ops.HealthChecker, error) { return ex, nil, nil }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Wait)
	return &faultWorld{harness: &harness{svc: svc, db: db, client: client, clock: clock}, sim: sim, deploy: ex}
}

// drain delivers the outbox until it is empty, letting every backoff fall
// due between rounds; a refused write fails the test.
func (w *faultWorld) drain(t *testing.T) ops.DeliveryStats {
	t.Helper()
	w.svc.Wait() // background deliveries started by runs
	ctx := context.Background()
	var st ops.DeliveryStats
	for round := 0; ; round++ {
		s, err := w.svc.DeliverOutbox(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st.Delivered += s.Delivered
		st.Retrying += s.Retrying
		st.Failed += s.Failed
		if st.Failed > 0 {
			failed, _ := w.db.ListOutbox(ctx, ops.OutboxFilter{})
			t.Fatalf("a write was refused: %+v", failed)
		}
		left, err := w.db.ListOutbox(ctx, ops.OutboxFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			return st
		}
		if round > 200 {
			t.Fatalf("outbox not drained after %d rounds: %d left, first %+v", round, len(left), left[0])
		}
		w.clock.Advance(5 * time.Minute)
	}
}

// syncUntil runs sync cycles (which fail now and then under faults) until
// cond holds.
func (w *faultWorld) syncUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; !cond(); i++ {
		if i > 200 {
			us, _ := w.db.ListUpdates(context.Background(), ops.UpdateFilter{})
			for _, u := range us[:3] {
				ch, err := w.db.GetChange(context.Background(), u.ChangeSysID)
				t.Logf("update %s %s change %s: %+v %v", u.ID, u.State, u.ChangeNumber, ch, err)
			}
			t.Fatalf("%s: not reached after %d sync cycles", what, i)
		}
		if _, err := w.svc.SyncOnce(context.Background()); err != nil && !errors.Is(err, ops.ErrUnavailable) {
			t.Fatal(err)
		}
		w.clock.Advance(time.Minute)
	}
}

// TestFaultsProposeApproveRunEvidence drives updates through the whole
// gated flow — propose, deliver, approve, sync, run, evidence (work notes,
// run log attachment, close) — with 10% of ServiceNow calls failing (429,
// 500, dropped connections, HTML pages, creates whose answer is lost), and
// checks: exactly one change per update, every queued write delivered, and
// no run without an approved change (a tenth of the changes are never
// approved and must never run).
func TestFaultsProposeApproveRunEvidence(t *testing.T) {
	n := trials(100, 1000)
	w := newFaultWorld(t, "429=3%,500=2%,drop=2%,create-drop=2%,html=1%")
	ctx := context.Background()
	ids := make([]string, n)
	approved := map[string]bool{}
	var delivered ops.DeliveryStats
	// One update after the other, as operators do: a plan is approved for
	// the release it starts from, so the next is proposed after the last ran.
	for i := range n {
		p, err := w.svc.Propose(ctx, ops.ProposeRequest{Environment: "production", Version: fmt.Sprintf("1.%d.0", i)})
		if err != nil {
			t.Fatal(err)
		}
		id := p.Update.ID
		ids[i] = id
		st := w.drain(t)
		delivered.Delivered += st.Delivered
		delivered.Retrying += st.Retrying
		u, err := w.db.GetUpdate(ctx, id)
		if err != nil || u.ChangeNumber == "" {
			t.Fatalf("update %s has no change after delivery: %+v (%v)", id, u, err)
		}
		// Nine in ten are approved by the simulator's approvers; the rest stay pending.
		if i%10 != 9 {
			for _, user := range []string{"ops.lead", "cab.manager"} {
				if err := w.sim.Sim().Approve(ctx, u.ChangeNumber, user, "ok"); err != nil {
					t.Fatalf("approve %s as %s: %v", u.ChangeNumber, user, err)
				}
			}
			approved[id] = true
			w.syncUntil(t, "approval of "+u.ChangeNumber+" mirrored", func() bool {
				u, _ := w.db.GetUpdate(ctx, id)
				return u.State == ops.UpdateApproved
			})
		} else {
			w.syncUntil(t, "a clean sync cycle", func() bool { _, err := w.svc.SyncOnce(ctx); return err == nil })
		}
		_, err = w.svc.Run(ctx, ops.RunRequest{Update: id})
		switch {
		case approved[id] && err != nil:
			t.Fatalf("run of approved %s: %v", id, err)
		case !approved[id] && !errors.Is(err, ops.ErrApprovalPending):
			t.Fatalf("run of unapproved %s = %v, want ErrApprovalPending", id, err)
		}
		if !approved[id] {
			// The operator withdraws it: one open update per environment.
			if _, err := w.svc.Cancel(ctx, id, "never approved"); err != nil {
				t.Fatal(err)
			}
			w.drain(t)
		}
	}
	evidence := w.drain(t)

	// 0 duplicate changes: the simulator holds exactly one per update.
	seen := map[string]int{}
	for _, c := range simCorrelationIDs(t, w.sim.URL(), "daytwo:") {
		seen[c]++
	}
	if len(seen) != n {
		t.Errorf("simulator holds changes for %d updates, want %d", len(seen), n)
	}
	for c, k := range seen {
		if k != 1 {
			t.Errorf("%d changes for %s", k, c)
		}
	}
	// 0 runs without an approved change; 0 lost writes: every approved
	// change is closed successful with its notes and run log attached.
	closed := map[string]bool{}
	for _, c := range w.simChanges(t) {
		if c["state"] == "3" && c["close_code"] == "successful" {
			closed[c["correlation_id"]] = true
		}
	}
	for i, id := range ids {
		runs, err := w.db.Runs(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case !approved[id] && len(runs) != 0:
			t.Errorf("update %s ran %d time(s) without an approved change", id, len(runs))
		case !approved[id] && w.deploy.deployed[fmt.Sprintf("1.%d.0", i)] != 0:
			t.Errorf("version 1.%d.0 of unapproved %s was deployed", i, id)
		case approved[id] && (len(runs) != 1 || runs[0].State != ops.RunSucceeded):
			t.Errorf("update %s runs = %+v", id, runs)
		case approved[id] && !closed["daytwo:"+id]:
			t.Errorf("change of %s not closed successful in ServiceNow: a write was lost", id)
		}
	}
	// Evidence is delivered exactly once: a dropped answer to an attach (or
	// a work note) is retried, but only after checking whether the first
	// attempt landed (ops.EvidenceChecker). Nothing may be missing or twice.
	perChange := map[string]int{}
	for _, a := range w.simTable(t, "sys_attachment", "table_name=change_request") {
		perChange[a["table_sys_id"]]++
	}
	dupes := 0
	for id := range approved {
		u, _ := w.db.GetUpdate(ctx, id)
		switch k := perChange[u.ChangeSysID]; {
		case k == 0:
			t.Errorf("change %s of %s has no run log attached: a write was lost", u.ChangeNumber, id)
		case k > 1:
			dupes += k - 1
			t.Errorf("change %s of %s has its run log attached %d times", u.ChangeNumber, id, k)
		}
	}
	t.Logf("duplicate run-log attachments after retried drops: %d of %d", dupes, len(approved))
	if delivered.Retrying+evidence.Retrying == 0 {
		t.Fatal("the faults never fired: the test proves nothing")
	}
	t.Logf("%d updates (%d approved): outbox during the flow %+v, final drain %+v, client %+v", n, len(approved), delivered, evidence, w.client.Stats())
}

func (w *faultWorld) simChanges(t *testing.T) []map[string]string {
	t.Helper()
	return w.simTable(t, "change_request", "correlation_idSTARTSWITHdaytwo:")
}

// simTable reads a table as the admin, bypassing the faults' victim (the
// daytwo client), with string values.
func (w *faultWorld) simTable(t *testing.T, table, query string) []map[string]string {
	t.Helper()
	faults := w.sim.Sim().Faults()
	w.sim.Sim().SetFaults(snowsim.Faults{})
	defer w.sim.Sim().SetFaults(faults)
	ew := &engineWorld{sim: w.sim}
	var out []map[string]string
	for _, r := range ew.simRecords(t, table, query+"&sysparm_limit=100000") {
		m := map[string]string{}
		for k, v := range r {
			m[k] = fmt.Sprint(v)
		}
		out = append(out, m)
	}
	return out
}

// TestSecretsNeverStored runs a full flow — daemon, propose, sync, a
// successful run, a broken release rolled back with an incident — against
// a simulator whose daytwo user has a distinctive password, then searches
// the SQLite files, the fleet's state, every command's output and the
// daemon's debug log for it.
func TestSecretsNeverStored(t *testing.T) {
	const secret = "zq-secret-8842"
	seed := t.TempDir()
	src := fixture(t, "servicenow")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "sys_user.json" {
			b = []byte(strings.Replace(string(b), `"user_name": "daytwo", "user_password": "daytwo"`, `"user_name": "daytwo", "user_password": "`+secret+`"`, 1))
			if !strings.Contains(string(b), secret) {
				t.Fatal("the seed's daytwo user changed shape")
			}
		}
		if err := os.WriteFile(filepath.Join(seed, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w := &engineWorld{dir: t.TempDir()}
	w.sim = startSim(t, snowsim.Options{Seed: os.DirFS(seed)})
	w.stateDir = filepath.Join(w.dir, "fleet")
	var targets []demofleet.Target
	for _, n := range []string{"stg-1", "stg-2", "prd-1", "prd-2", "prd-3"} {
		targets = append(targets, demofleet.Target{Name: n, Addr: "127.0.0.1:0"})
	}
	w.fleet, err = demofleet.Start(context.Background(), demofleet.Options{StateDir: w.stateDir, Targets: targets, WarmUp: 50 * time.Millisecond, InitialVersion: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.fleet.Close() })
	w.cfgPath = filepath.Join(w.dir, "daytwo.yaml")
	w.writeConfig(t, "100ms")
	w.env = []string{"DAYTWO_CONFIG=" + w.cfgPath, "DAYTWO_SN_PASSWORD=" + secret}

	var outputs strings.Builder
	record := func(r result) result {
		outputs.WriteString(r.stdout + r.stderr)
		return r
	}
	// A wrong password first: the error output must not echo it either.
	bad := record(daytwo(t, []string{"DAYTWO_CONFIG=" + w.cfgPath, "DAYTWO_SN_PASSWORD=" + secret + "-wrong"}, "sync", "--once", "--log-level", "debug"))
	if bad.code == 0 {
		t.Fatalf("sync with a wrong password succeeded: %+v", bad)
	}

	var daemonErr strings.Builder
	daemon := exec.Command(daytwoBin, "sync", "--watch", "--interval", "1s", "--listen", "", "--log-level", "debug")
	daemon.Env = append(os.Environ(), w.env...)
	daemon.Stdout, daemon.Stderr = &daemonErr, &daemonErr
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	p := w.propose(t, "production", "1.1.0")
	w.approve(t, p.Change)
	record(daytwo(t, w.env, "sync", "--once", "--log-level", "debug"))
	if r := record(daytwo(t, w.env, "run", p.ID, "--log-level", "debug")); r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	p = w.propose(t, "production", "1.2.0-broken")
	w.approve(t, p.Change)
	record(daytwo(t, w.env, "sync", "--once", "--log-level", "debug"))
	if r := record(daytwo(t, w.env, "run", p.ID, "--log-level", "debug")); r.code != exitError {
		t.Fatalf("broken run: %+v", r)
	}
	record(daytwo(t, w.env, "sync", "--once", "--log-level", "debug"))
	if inc := w.simRecords(t, "incident", "active=true"); len(inc) == 0 {
		t.Fatal("no incident raised: the flow did not reach the failure path")
	}
	for _, args := range [][]string{{"audit", "list", "-o", "json"}, {"update", "list", "--all", "-o", "json"}, {"change", "show", p.Change}, {"outbox", "list"}} {
		record(daytwo(t, w.env, args...))
	}
	_ = daemon.Process.Signal(syscall.SIGTERM)
	_ = daemon.Wait()
	outputs.WriteString(daemonErr.String())

	if strings.Contains(outputs.String(), secret) {
		i := strings.Index(outputs.String(), secret)
		t.Errorf("the password appears in command output: …%s…", outputs.String()[max(0, i-200):i])
	}
	if !strings.Contains(daemonErr.String(), "level=DEBUG") && !strings.Contains(daemonErr.String(), `"level":"DEBUG"`) {
		t.Logf("daemon log (no debug lines?): %s", tail(daemonErr.String(), 500))
	}
	err = filepath.WalkDir(w.dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), secret) {
			t.Errorf("the password is stored in %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestShellMetacharactersNeverReachAShell proposes through the real CLI:
// a version with shell metacharacters is refused (exit 2), and a config
// value with a command substitution is deployed as data by a real run —
// the file it would create never appears.
func TestShellMetacharactersNeverReachAShell(t *testing.T) {
	w := newEngineWorld(t, "100ms")
	for _, v := range []string{"1.0;rm -rf /", "$(touch /tmp/pwned-version)", "1.0`id`", "1.0 && true", "1.0|cat", "../../etc/passwd", "1.0\nrm"} {
		r := daytwo(t, w.env, "propose", "staging", v)
		if r.code != exitUsage {
			t.Errorf("propose staging %q: exit %d, want 2\n%s%s", v, r.code, r.stdout, r.stderr)
		}
	}
	pwned := filepath.Join(t.TempDir(), "pwned-xyz")
	for i, set := range []string{"motd=$(touch " + pwned + ")", "banner=`touch " + pwned + "`; touch " + pwned + " #"} {
		version := fmt.Sprintf("1.1.%d", i)
		p := w.propose(t, "staging", version, "--set", set)
		if r := daytwo(t, w.env, "run", p.ID); r.code != 0 {
			t.Fatalf("run with --set %q: %+v", set, r)
		}
		if got := w.versions(t, "stg-1", "stg-2"); got != version+","+version {
			t.Fatalf("staging = %s, want %s", got, version)
		}
		st, err := demofleet.ReadState(w.stateDir, "stg-1")
		if err != nil {
			t.Fatal(err)
		}
		key, value, _ := strings.Cut(set, "=")
		if st.Config[key] != value {
			t.Errorf("stg-1 config[%s] = %q, want the value passed as data: %q", key, st.Config[key], value)
		}
	}
	if _, err := os.Stat(pwned); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s exists: a config value reached a shell", pwned)
	}
}
