package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daytwo/daytwo/fixtures/demofleet"
	"github.com/daytwo/daytwo/internal/pgtest"
	"github.com/daytwo/daytwo/itsm/snowsim"
	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store"
	"github.com/daytwo/daytwo/store/pg"
)

// The safety suites of issue 11: a run's record must be what happened on
// the targets, whatever crashes, pauses or races. Each drives the real
// binary over a real loopback fleet, through a deploy script that logs
// every step program it runs (which process, which lease epoch, when) and
// that the test can make slow or broken per target.

// safetyWorld is an engine world with four production targets and a
// controllable deploy script.
type safetyWorld struct {
	*engineWorld
	ctl string // control files and the deploy log
	// pgURL and pgPassword name the PostgreSQL database the world runs on
	// (newSafetyWorldOn); empty: the SQLite file d.db.
	pgURL, pgPassword string
	pgDB              appStore // opened once: a pool per call would exhaust the server's connections
}

const safetyTargets = "prd-1 prd-2 prd-3 prd-4"

func newSafetyWorld(t *testing.T, leaseTTL string, autoRun bool) *safetyWorld {
	t.Helper()
	return newSafetyWorldOn(t, leaseTTL, autoRun, nil)
}

// newSafetyWorldOn is newSafetyWorld on a new database of srv (nil: SQLite).
func newSafetyWorldOn(t *testing.T, leaseTTL string, autoRun bool, srv *pgtest.Server) *safetyWorld {
	t.Helper()
	w := &safetyWorld{engineWorld: &engineWorld{dir: t.TempDir()}}
	w.sim = startSim(t, snowsim.Options{})
	w.stateDir = filepath.Join(w.dir, "fleet")
	w.ctl = filepath.Join(w.dir, "ctl")
	if err := os.MkdirAll(w.ctl, 0o755); err != nil {
		t.Fatal(err)
	}
	var targets []demofleet.Target
	for _, n := range strings.Fields(safetyTargets) {
		targets = append(targets, demofleet.Target{Name: n, Addr: "127.0.0.1:0"})
	}
	var err error
	w.fleet, err = demofleet.Start(context.Background(), demofleet.Options{StateDir: w.stateDir, Targets: targets, WarmUp: 20 * time.Millisecond, InitialVersion: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.fleet.Close() })

	script := filepath.Join(w.ctl, "deploy.sh")
	body := fmt.Sprintf(`#!/bin/sh
# A deploy that logs itself; control files in %[1]s make it slow or broken.
ctl=%[1]q
log() { echo "$1 $DAYTWO_TARGET $2 $DAYTWO_ROLLBACK ${DAYTWO_RUN_EPOCH:-0} $PPID $(date +%%s%%N) $$" >> "$ctl/deploys.log"; }
v="$DAYTWO_VERSION"
log start "$v"
if [ "$DAYTWO_ROLLBACK" = true ]; then
  if [ -f "$ctl/slow-rollback" ]; then touch "$ctl/rollback-started"; sleep "$(cat "$ctl/slow-rollback")"; fi
else
  if [ -f "$ctl/slow-deploy" ]; then touch "$ctl/deploy-started"; sleep "$(cat "$ctl/slow-deploy")"; fi
  if grep -qx "$DAYTWO_TARGET" "$ctl/fail" 2>/dev/null; then v="$v-broken"; fi
fi
DAYTWO_VERSION="$v" %[2]q fleet deploy --state-dir %[3]q || exit 1
log end "$v"
`, w.ctl, daytwoBin, w.stateDir)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	urls := w.fleet.URLs()
	var tb strings.Builder
	for _, n := range strings.Fields(safetyTargets) {
		fmt.Fprintf(&tb, "\n      - {name: %s, vars: {url: %q}}", n, urls[n])
	}
	cfg := fmt.Sprintf(`
store: {path: d.db}
servicenow:
  instance: %s
  auth: {username: daytwo}
  assignment_group: Platform Ops
sync: {interval: 1s, lease_ttl: %s}
environments:
  - name: production
    requires_change: true
    auto_run: %t
    change: {type: normal, cmdb_ci: checkout-service, risk: moderate}
    targets:%s
    deploy: {command: [%q], timeout: 60s}
    version_probe: {http: {url: "{{ .Target.Vars.url }}/version"}}
    health:
      - http: {url: "{{ .Target.Vars.url }}/info", expect_json: {version: "{{ .Version }}"}}
        retries: 3
        interval: 50ms
    strategy: {batch_size: 2, max_parallel: 2, bake: 200ms}
    config: {log_level: warn}
`, w.sim.URL(), leaseTTL, autoRun, tb.String(), script)
	w.cfgPath = filepath.Join(w.dir, "daytwo.yaml")
	if err := os.WriteFile(w.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	w.env = []string{"DAYTWO_CONFIG=" + w.cfgPath, "DAYTWO_SN_PASSWORD=daytwo"}
	if srv != nil {
		w.pgURL, w.pgPassword = srv.URL(srv.CreateDB(t)), srv.Password
		w.env = append(w.env, "DAYTWO_DB_URL="+w.pgURL, "DAYTWO_DB_PASSWORD="+w.pgPassword)
	}
	// Production's first recorded release, so that a failed rollout has
	// one to return to.
	first := w.proposeApproved(t, "1.0.0")
	if r := daytwo(t, w.env, "run", first.ID); r.code != 0 {
		t.Fatalf("first release: %+v", r)
	}
	return w
}

func (w *safetyWorld) control(t *testing.T, name, content string) {
	t.Helper()
	p := filepath.Join(w.ctl, name)
	if content == "" {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (w *safetyWorld) exists(name string) bool {
	_, err := os.Stat(filepath.Join(w.ctl, name))
	return err == nil
}

// deployLine is one line of the deploy script's log.
type deployLine struct {
	phase, target, version string
	rollback               bool
	epoch                  int64
	ppid                   int
	pid                    int // the deploy script's own
	at                     time.Time
}

func (w *safetyWorld) deploys(t *testing.T) []deployLine {
	t.Helper()
	f, err := os.Open(filepath.Join(w.ctl, "deploys.log"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []deployLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 8 {
			continue // a line cut by a kill
		}
		ep, _ := strconv.ParseInt(fs[4], 10, 64)
		ppid, _ := strconv.Atoi(fs[5])
		ns, _ := strconv.ParseInt(fs[6], 10, 64)
		pid, _ := strconv.Atoi(fs[7])
		out = append(out, deployLine{phase: fs[0], target: fs[1], version: fs[2], rollback: fs[3] == "true", epoch: ep, ppid: ppid, pid: pid, at: time.Unix(0, ns)})
	}
	return out
}

func (w *safetyWorld) open(t *testing.T) appStore {
	t.Helper()
	var db appStore
	var err error
	if w.pgURL != "" {
		if w.pgDB != nil {
			return w.pgDB
		}
		db, err = pg.Open(context.Background(), w.pgURL, pg.Options{Password: w.pgPassword})
	} else {
		db, err = store.Open(context.Background(), filepath.Join(w.dir, "d.db"), store.Options{})
	}
	if err != nil {
		t.Fatal(err)
	}
	if w.pgURL != "" {
		w.pgDB = db
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// proposeApproved proposes version to production and approves its change
// in ServiceNow and in the mirror.
func (w *safetyWorld) proposeApproved(t *testing.T, version string) proposeResult {
	t.Helper()
	p := w.propose(t, "production", version)
	w.approve(t, p.Change)
	if r := daytwo(t, w.env, "sync", "--once"); r.code != 0 {
		t.Fatalf("sync: %+v", r)
	}
	return p
}

// startRun starts `daytwo run ID` in the background.
func (w *safetyWorld) startRun(t *testing.T, id string) (*exec.Cmd, chan int) {
	t.Helper()
	cmd := exec.Command(daytwoBin, "run", id)
	cmd.Env = append(os.Environ(), w.env...)
	cmd.Dir = w.dir
	out, err := os.Create(filepath.Join(w.ctl, fmt.Sprintf("run-%s-%d.out", id, time.Now().UnixNano())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		out.Close()
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			t.Logf("daytwo run %s:\n%s", id, b)
		}
	})
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan int, 1)
	go func() {
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = -int(ws.Signal())
			}
		}
		exited <- code
	}()
	return cmd, exited
}

// startDaemon starts `daytwo sync --watch` and stops it at the end.
func (w *safetyWorld) startDaemon(t *testing.T) (*exec.Cmd, chan int) {
	t.Helper()
	cmd := exec.Command(daytwoBin, "--log-level", "info", "sync", "--watch", "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), w.env...)
	cmd.Dir = w.dir
	out, err := os.Create(filepath.Join(w.ctl, fmt.Sprintf("daemon-%d.out", time.Now().UnixNano())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		out.Close()
		if t.Failed() || os.Getenv("DAYTWO_TEST_VERBOSE") != "" {
			b, _ := os.ReadFile(out.Name())
			t.Logf("daytwo sync --watch:\n%s", b)
		}
	})
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan int, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		exited <- code
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	return cmd, exited
}

// pauseOutsideTransactions stops pid with SIGSTOP at a moment it holds
// no SQLite write lock and no target lock (it is not launching a step: a
// runner paused mid-launch keeps recovery off that target until it
// resumes, by design). (A writer paused inside a transaction blocks every
// other writer of an SQLite file until it resumes — a limitation of an
// embedded database, which PostgreSQL does not share — so the trial pauses
// the runner between its writes, as a pause past the lease usually lands.)
func (w *safetyWorld) pauseOutsideTransactions(t *testing.T, pid int) {
	t.Helper()
	var inodes []uint64
	for _, f := range []string{"d.db", "d.db-shm", "d.db-wal"} {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(w.dir, f), &st); err == nil {
			inodes = append(inodes, st.Ino)
		}
	}
	for range 1000 {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
		if !holdsWriteLock(t, pid, inodes) {
			return
		}
		_ = syscall.Kill(pid, syscall.SIGCONT)
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("pid %d always held an SQLite write lock", pid)
}

// holdsWriteLock reports whether pid holds a POSIX write lock on one of
// the files (by inode) or any flock, from /proc/locks.
func holdsWriteLock(t *testing.T, pid int, inodes []uint64) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		t.Skipf("no /proc/locks: cannot pause the runner outside a transaction (%v)", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		// "1: POSIX  ADVISORY  WRITE 1234 08:01:5678 120 120"
		if len(f) < 8 || f[3] != "WRITE" || f[4] != strconv.Itoa(pid) {
			continue
		}
		if f[1] == "FLOCK" {
			return true // a target lock: it is launching a step
		}
		dev := strings.Split(f[5], ":")
		ino, _ := strconv.ParseUint(dev[len(dev)-1], 10, 64)
		for _, want := range inodes {
			if ino == want {
				return true
			}
		}
	}
	return false
}

// verifyRecord checks that every target reports the release the record
// says the environment runs, that the update and the run agree with it,
// and (once the outbox is drained) the change's close code too. It
// returns a description of each mismatch.
func (w *safetyWorld) verifyRecord(t *testing.T, updateID string) []string {
	t.Helper()
	ctx := context.Background()
	db := w.open(t)
	var bad []string
	running, err := db.Runs(ctx, "", ops.RunRunning)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range running {
		bad = append(bad, fmt.Sprintf("run %s still running", r.ID))
	}
	cur, err := db.CurrentReleases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := cur["production"].Version
	for _, n := range strings.Fields(safetyTargets) {
		got, err := demofleet.Version(w.stateDir, n)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			bad = append(bad, fmt.Sprintf("%s runs %s, the record says production runs %s", n, got, want))
		}
	}
	u, err := db.GetUpdate(ctx, updateID)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := db.Runs(ctx, updateID)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) > 1 {
		bad = append(bad, fmt.Sprintf("update %s has %d runs", updateID, len(runs)))
	}
	switch u.State {
	case ops.UpdateSucceeded:
		if want != u.Version {
			bad = append(bad, fmt.Sprintf("update %s succeeded but production's release is %s", u.ID, want))
		}
	case ops.UpdateRolledBack:
		if want == u.Version {
			bad = append(bad, fmt.Sprintf("update %s rolled back but production's release is its version", u.ID))
		}
	case ops.UpdateApproved, ops.UpdateScheduled:
		if len(runs) > 0 {
			bad = append(bad, fmt.Sprintf("update %s is %s with a run", u.ID, u.State))
		}
	default:
		bad = append(bad, fmt.Sprintf("update %s ended %s (%s)", u.ID, u.State, u.Reason))
	}
	if u.State == ops.UpdateSucceeded || u.State == ops.UpdateRolledBack {
		w.drain(t)
		code := map[ops.UpdateState]string{ops.UpdateSucceeded: "successful", ops.UpdateRolledBack: "unsuccessful"}[u.State]
		chg := w.simRecords(t, "change_request", "number="+u.ChangeNumber)
		if len(chg) != 1 || chg[0]["close_code"] != code {
			bad = append(bad, fmt.Sprintf("change %s close code %v, the run %s", u.ChangeNumber, closeCode(chg), u.State))
		}
	}
	return bad
}

func closeCode(recs []map[string]any) any {
	if len(recs) == 0 {
		return "(no change)"
	}
	return recs[0]["close_code"]
}

// drain delivers the outbox until nothing is pending.
func (w *safetyWorld) drain(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		r := daytwo(t, w.env, "sync", "--once")
		if r.code != 0 {
			t.Fatalf("sync: %+v", r)
		}
		items, err := w.open(t).ListOutbox(context.Background(), ops.OutboxFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox not drained: %d left, first %+v\nlast sync: %s", len(items), items[0], r.stdout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// outboxIDs lists every outbox item of an update, in any state.
func (w *safetyWorld) outboxIDs(t *testing.T, updateID string) []int64 {
	t.Helper()
	items, err := w.open(t).ListOutbox(context.Background(), ops.OutboxFilter{
		Key:    updateID,
		States: []ops.OutboxState{ops.OutboxPending, ops.OutboxDelivered, ops.OutboxFailed, ops.OutboxDiscarded, ops.OutboxSuperseded},
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	return ids
}

// workNotes returns the work notes of a change.
func (w *safetyWorld) workNotes(t *testing.T, number string) []string {
	t.Helper()
	chg := w.simRecords(t, "change_request", "number="+number)
	if len(chg) != 1 {
		t.Fatalf("change %s: %d records", number, len(chg))
	}
	var out []string
	for _, j := range w.simRecords(t, "sys_journal_field", "element_id="+fmt.Sprint(chg[0]["sys_id"])) {
		if j["element"] == "work_notes" {
			out = append(out, fmt.Sprint(j["value"]))
		}
	}
	return out
}

func count(notes []string, sub string) int {
	n := 0
	for _, s := range notes {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

// TestKillDuringRollbackIsContinuedNotResumed is defect 1 of issue 11: a
// 4-target production update whose health fails on targets 3–4, the runner
// killed with -9 0.1 s into its first rollback step (whose program keeps
// running: defect 2), then `run --resume`. Recovery must continue the
// rollback over every touched target — never re-deploy the failed release —
// stop the dead runner's rollback program first, and verify each target
// by its version probe before the record says "rolled back".
func TestKillDuringRollbackIsContinuedNotResumed(t *testing.T) {
	w := newSafetyWorld(t, "60s", false)
	w.control(t, "fail", "prd-3\nprd-4\n")
	w.control(t, "slow-rollback", "3")
	p := w.proposeApproved(t, "2.0.0")
	run, exited := w.startRun(t, p.ID)
	waitFor(t, "the first rollback step to start", 60*time.Second, func() bool { return w.exists("rollback-started") })
	time.Sleep(100 * time.Millisecond) // the fault: the kill lands 0.1 s into the rollback step
	_ = run.Process.Signal(syscall.SIGKILL)
	<-exited
	w.control(t, "slow-rollback", "")
	killedAt := time.Now()

	r := daytwo(t, w.env, "run", "--resume")
	if r.code != 0 && r.code != exitError {
		t.Fatalf("resume: %+v", r)
	}
	for _, d := range w.deploys(t) {
		if d.at.After(killedAt) && !d.rollback {
			t.Errorf("after the crash, %s was deployed %s again (recovery resumed a decided rollback)", d.target, d.version)
		}
	}
	// The dead runner's rollback program was stopped before recovery acted:
	// it never finished after the kill.
	for _, d := range w.deploys(t) {
		if d.phase == "end" && d.rollback && d.epoch == 1 && d.at.After(killedAt) {
			t.Errorf("the dead runner's rollback of %s finished at %s, after recovery started", d.target, d.at)
		}
	}
	if bad := w.verifyRecord(t, p.ID); len(bad) > 0 {
		t.Fatalf("record and targets disagree:\n%s\nresume output:\n%s", strings.Join(bad, "\n"), r.stdout)
	}
	db := w.open(t)
	u, _ := db.GetUpdate(context.Background(), p.ID)
	if u.State != ops.UpdateRolledBack {
		t.Fatalf("update %s, want rolled_back", u.State)
	}
	notes := w.workNotes(t, p.Change)
	if n := count(notes, "verified by its version probe"); n != 1 {
		t.Errorf("%d final notes claiming verified restoration, want 1:\n%s", n, strings.Join(notes, "\n---\n"))
	}
	if n := count(notes, "batch 2/2"); n != 1 {
		t.Errorf("%d notes for batch 2, want 1", n)
	}
}

// TestCrashTrialsEveryTargetOnTheRecordedRelease is the reliability bar's
// first trial: kill -9 of the runner at a random moment — during rollout or
// rollback (half the trials break targets 3–4) — then recovery by `run
// --resume` or by the daemon; every target must end on the release the
// record names, verified against what each target reports.
func TestCrashTrialsEveryTargetOnTheRecordedRelease(t *testing.T) {
	n := trials(3, 50)
	seed := uint64(time.Now().UnixNano())
	t.Logf("%d trials, seed %d", n, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	w := newSafetyWorld(t, "3s", false)
	mismatches := 0
	outcomes := map[string]int{}
	for i := range n {
		broken := rng.IntN(2) == 0
		if broken {
			w.control(t, "fail", "prd-3\nprd-4\n")
		} else {
			w.control(t, "fail", "")
		}
		p := w.proposeApproved(t, fmt.Sprintf("2.%d.0", i))
		run, exited := w.startRun(t, p.ID)
		// A run takes about 1 s (1.5 s with a rollback): kill inside it.
		delay := time.Duration(rng.Int64N(int64(1500 * time.Millisecond)))
		select {
		case <-exited:
			outcomes["finished before the kill"]++
		case <-time.After(delay):
			_ = run.Process.Signal(syscall.SIGKILL)
			<-exited
			outcomes["killed"]++
		}
		if rng.IntN(2) == 0 {
			if r := daytwo(t, w.env, "run", "--resume"); r.code != 0 && r.code != exitError {
				t.Fatalf("trial %d: resume: %+v", i, r)
			}
		} else {
			d, dexit := w.startDaemon(t)
			db := w.open(t)
			waitFor(t, "the daemon to finish the run", 90*time.Second, func() bool {
				rs, err := db.Runs(context.Background(), "", ops.RunRunning)
				return err == nil && len(rs) == 0
			})
			_ = d.Process.Signal(syscall.SIGTERM)
			<-dexit
		}
		// A kill before the run started leaves the update approved: run it.
		if u, _ := w.open(t).GetUpdate(context.Background(), p.ID); u.State == ops.UpdateApproved {
			daytwo(t, w.env, "run", p.ID)
		}
		if bad := w.verifyRecord(t, p.ID); len(bad) > 0 {
			mismatches += len(bad)
			t.Errorf("trial %d (broken %v, kill after %v): %s", i, broken, delay, strings.Join(bad, "; "))
		}
		u, _ := w.open(t).GetUpdate(context.Background(), p.ID)
		outcomes[string(u.State)]++
	}
	t.Logf("outcomes: %v; mismatches between record and targets: %d", outcomes, mismatches)
}

// TestStaleRunnerAfterTakeoverExecutesNothing is defect 3 and the second
// trial of the bar: `daytwo run` is stopped (SIGSTOP) in the middle of a
// deploy, past its lease, while a daemon runs; the daemon takes the run
// over and finishes it; then the stale runner is continued (SIGCONT). It
// must not start a single step, roll anything back or write evidence.
func TestStaleRunnerAfterTakeoverExecutesNothing(t *testing.T) {
	n := trials(1, 20)
	w := newSafetyWorld(t, "2s", false)
	daemon, _ := w.startDaemon(t)
	_ = daemon
	db := w.open(t)
	stale := 0
	for i := range n {
		w.control(t, "deploy-started", "")
		w.control(t, "slow-deploy", "1")
		p := w.proposeApproved(t, fmt.Sprintf("3.%d.0", i))
		run, exited := w.startRun(t, p.ID)
		waitFor(t, "a deploy to start", 60*time.Second, func() bool { return w.exists("deploy-started") })
		w.pauseOutsideTransactions(t, run.Process.Pid)
		w.control(t, "slow-deploy", "")
		var recoveredAt time.Time
		waitFor(t, "the daemon to take the run over and finish it", 90*time.Second, func() bool {
			u, err := db.GetUpdate(context.Background(), p.ID)
			if err != nil || !u.State.Terminal() {
				return false
			}
			evs, _ := db.ListEvents(context.Background(), ops.EventFilter{UpdateID: p.ID})
			for _, e := range evs {
				if e.Action == "run.recovered" {
					recoveredAt = e.Time
				}
			}
			return !recoveredAt.IsZero()
		})
		queued := w.outboxIDs(t, p.ID)
		_ = run.Process.Signal(syscall.SIGCONT)
		code := <-exited
		if code != exitStopped {
			t.Errorf("trial %d: stale runner exit %d, want %d (lease lost)", i, code, exitStopped)
		}
		for _, d := range w.deploys(t) {
			if d.phase == "start" && d.ppid == run.Process.Pid && d.at.After(recoveredAt) {
				stale++
				t.Errorf("trial %d: the stale runner started a step after the takeover: %+v", i, d)
			}
		}
		if after := w.outboxIDs(t, p.ID); len(after) != len(queued) {
			t.Errorf("trial %d: the stale runner queued %d write(s) for ServiceNow after the takeover", i, len(after)-len(queued))
		}
		// Its claims on writes it was delivering when it was paused are
		// taken over once it is gone.
		w.drain(t)
		if bad := w.verifyRecord(t, p.ID); len(bad) > 0 {
			t.Errorf("trial %d: %s", i, strings.Join(bad, "; "))
		}
	}
	t.Logf("%d trials: %d steps started by a stale runner after takeover", n, stale)
}

// TestTwoRunsOfOneUpdateRunItOnce is defect 4 and the third trial of the
// bar: two `daytwo run ID` started together run the update once.
func TestTwoRunsOfOneUpdateRunItOnce(t *testing.T) {
	n := trials(3, 20)
	w := newSafetyWorld(t, "60s", false)
	db := w.open(t)
	for i := range n {
		before := len(w.deploys(t))
		p := w.proposeApproved(t, fmt.Sprintf("4.%d.0", i))
		_, a := w.startRun(t, p.ID)
		_, b := w.startRun(t, p.ID)
		ca, cb := <-a, <-b
		if (ca == 0) == (cb == 0) {
			t.Errorf("trial %d: exits %d and %d, want exactly one success", i, ca, cb)
		}
		runs, err := db.Runs(context.Background(), p.ID)
		if err != nil || len(runs) != 1 {
			t.Errorf("trial %d: %d runs (%v), want 1", i, len(runs), err)
		}
		starts := 0
		for _, d := range w.deploys(t)[before:] {
			if d.phase == "start" {
				starts++
			}
		}
		if starts != 4 {
			t.Errorf("trial %d: %d deploys for 4 targets", i, starts)
		}
		u, _ := db.GetUpdate(context.Background(), p.ID)
		if u.FromVersion == u.Version {
			t.Errorf("trial %d: from_version overwritten with the new version", i)
		}
	}
}

// TestDaemonRestartResumesInsteadOfAborting is defect 11: SIGTERM of the
// daemon in the middle of a rollout — a routine restart — stops the run at
// a step boundary and leaves it resumable; the next daemon resumes it. The
// change is closed successful, no incident is opened, and each batch's
// work note is written once.
func TestDaemonRestartResumesInsteadOfAborting(t *testing.T) {
	w := newSafetyWorld(t, "60s", true)
	w.control(t, "slow-deploy", "1")
	p := w.propose(t, "production", "5.0.0")
	w.approve(t, p.Change)
	d, dexit := w.startDaemon(t)
	waitFor(t, "the daemon to start deploying", 60*time.Second, func() bool { return w.exists("deploy-started") })
	t.Logf("%s SIGTERM", time.Now().Format("15:04:05.000"))
	_ = d.Process.Signal(syscall.SIGTERM)
	select {
	case code := <-dexit:
		if code != 0 {
			t.Fatalf("daemon exit %d on SIGTERM", code)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("daemon did not stop on SIGTERM")
	}
	db := w.open(t)
	u, _ := db.GetUpdate(context.Background(), p.ID)
	if u.State != ops.UpdateRunning {
		t.Fatalf("after SIGTERM the update is %s, want still running (resumable)", u.State)
	}
	if inc := w.simRecords(t, "incident", "correlation_idSTARTSWITHdaytwo:"); len(inc) != 0 {
		t.Fatalf("a daemon restart opened %d incident(s)", len(inc))
	}
	w.control(t, "slow-deploy", "")
	t.Logf("%s restarting the daemon", time.Now().Format("15:04:05.000"))
	w.startDaemon(t)
	waitFor(t, "the restarted daemon to finish the run", 90*time.Second, func() bool {
		u, err := db.GetUpdate(context.Background(), p.ID)
		return err == nil && u.State.Terminal()
	})
	if bad := w.verifyRecord(t, p.ID); len(bad) > 0 {
		t.Fatal(strings.Join(bad, "\n"))
	}
	u, _ = db.GetUpdate(context.Background(), p.ID)
	if u.State != ops.UpdateSucceeded {
		t.Fatalf("update %s, want succeeded", u.State)
	}
	if inc := w.simRecords(t, "incident", "correlation_idSTARTSWITHdaytwo:"); len(inc) != 0 {
		t.Fatalf("%d incident(s) for a run that succeeded", len(inc))
	}
	notes := w.workNotes(t, p.Change)
	for _, b := range []string{"batch 1/2", "batch 2/2"} {
		if n := count(notes, b); n != 1 {
			t.Errorf("%d work notes for %s, want 1:\n%s", n, b, strings.Join(notes, "\n---\n"))
		}
	}
	if n := count(notes, "paused by"); n != 1 {
		t.Errorf("%d notes saying the run paused, want 1", n)
	}
	raw, _ := json.Marshal(notes)
	_ = raw
}
