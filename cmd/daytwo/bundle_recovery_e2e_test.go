package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daytwo/daytwo/internal/pgtest"
	"github.com/daytwo/daytwo/ops"
)

// Bundles finished by the next process (run --resume, a daemon), stopped
// early, and on PostgreSQL — through the real binary, the simulator and
// the loopback fleet.

// TestBundleKilledMidMemberIsContinuedByRunResume: `daytwo run` of a
// bundle is killed (SIGKILL) while its second service deploys, in a stage
// without auto_run; `daytwo run --resume` recovers that service's run
// from its journal and goes on with the bundle — the third service, then
// the one successful close — as `daytwo run CHG` would.
func TestBundleKilledMidMemberIsContinuedByRunResume(t *testing.T) {
	testBundleKilledMidMember(t, "run", "resume")
}

// TestBundleKilledDuringItsRollbackIsFinishedOnce: payments fails, so the
// bundle rolls checkout back by its compensating update; `daytwo run` is
// killed (SIGKILL) in the middle of that rollback's deploy. The next
// process — `daytwo run --resume`, or a daemon — finishes the rollback,
// cancels search, and closes the change unsuccessful once with one
// incident; running the bundle again changes nothing. Also with the store
// on PostgreSQL.
func TestBundleKilledDuringItsRollbackIsFinishedOnce(t *testing.T) {
	for _, next := range []string{"resume", "daemon", "resume-postgres"} {
		t.Run(next, func(t *testing.T) { testBundleKilledDuringRollback(t, next) })
	}
}

func testBundleKilledDuringRollback(t *testing.T, next string) {
	w := newBundleWorld(t, false) // the daemon finishes a rollback whatever auto_run says
	if strings.HasSuffix(next, "-postgres") {
		srv := pgtest.Start(t)
		w.env = append(w.env, "DAYTWO_DB_URL="+srv.URL(srv.CreateDB(t)), "DAYTWO_DB_PASSWORD="+srv.Password)
		next = strings.TrimSuffix(next, "-postgres")
	}
	ctl := w.controlledDeploys(t)
	w.releaseAll(t, "1.1.0")
	touch(t, ctl, "slow-chk-1-1.1.0") // checkout's compensating deploy back to 1.1.0

	b := w.proposeBundle(t, "checkout=1.2.0", "payments=1.2.0-broken", "search=1.2.0")
	w.approve(t, b.Change)
	daytwo(t, w.env, "sync", "--once")
	run := exec.Command(daytwoBin, "run", b.ID)
	run.Env = append(os.Environ(), w.env...)
	run.Dir = w.dir
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "checkout's rollback deploy to start", 90*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(ctl, "started-chk-1-1.1.0"))
		return err == nil
	})
	if err := run.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = run.Wait()
	if err := os.Remove(filepath.Join(ctl, "slow-chk-1-1.1.0")); err != nil {
		t.Fatal(err)
	}
	ups := w.bundleUpdates(t, b.ID)
	if ups["checkout"].State != ops.UpdateSucceeded || ups["checkout:rollback"].State != ops.UpdateRunning || ups["search"].State != ops.UpdateCanceled {
		t.Fatalf("at the kill: checkout %s, its rollback %s, search %s", ups["checkout"].State, ups["checkout:rollback"].State, ups["search"].State)
	}
	if chg := w.simRecords(t, "change_request", "number="+b.Change); chg[0]["state"] == "3" {
		t.Fatal("the change was closed before the rollback finished")
	}

	if next == "resume" {
		r := daytwo(t, w.env, "run", "--resume")
		if r.code != 0 || !strings.Contains(r.stdout, "State:   rolled_back") || !strings.Contains(r.stdout, "Failed:  payments") {
			t.Fatalf("run --resume: %+v", r)
		}
	} else {
		daemon := exec.Command(daytwoBin, "sync", "--watch", "--interval", "1s", "--listen", "")
		daemon.Env = append(os.Environ(), w.env...)
		daemon.Dir = w.dir
		var out strings.Builder
		daemon.Stdout, daemon.Stderr = &out, &out
		if err := daemon.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = daemon.Process.Signal(syscall.SIGTERM)
			_ = daemon.Wait()
			if t.Failed() {
				t.Logf("daemon:\n%s", out.String())
			}
		})
	}
	waitFor(t, "the bundle's change to be closed", 90*time.Second, func() bool {
		chg := w.simRecords(t, "change_request", "number="+b.Change)
		return len(chg) == 1 && chg[0]["state"] == "3"
	})
	waitFor(t, "the bundle's writes to be delivered", 30*time.Second, func() bool {
		r := daytwo(t, w.env, "outbox", "list", "-o", "json")
		return r.code == 0 && strings.TrimSpace(r.stdout) == "[]"
	})
	// The targets are the truth: everything back on 1.1.0, search never
	// touched.
	if v := w.versions(t, "chk-1", "chk-2", "pay-1", "pay-2", "srch-1"); v != "1.1.0,1.1.0,1.1.0,1.1.0,1.1.0" {
		t.Fatalf("fleet after the rollback = %s", v)
	}
	if deploys, _ := os.ReadFile(filepath.Join(ctl, "deploys")); strings.Contains(string(deploys), "srch-1 1.2.0") {
		t.Errorf("search was deployed:\n%s", deploys)
	}
	ups = w.bundleUpdates(t, b.ID)
	if ups["checkout"].State != ops.UpdateRolledBack || ups["checkout:rollback"].State != ops.UpdateSucceeded || ups["payments"].State != ops.UpdateRolledBack {
		t.Errorf("checkout %s, its rollback %s, payments %s", ups["checkout"].State, ups["checkout:rollback"].State, ups["payments"].State)
	}
	chg := w.simRecords(t, "change_request", "number="+b.Change)
	if chg[0]["close_code"] != "unsuccessful" {
		t.Fatalf("close_code %v", chg[0]["close_code"])
	}
	once := func(when string) {
		t.Helper()
		if k := w.outboxKinds(t, b.ID); k[ops.OutboxCloseChange] != 1 || k[ops.OutboxCreateIncident] != 1 {
			t.Fatalf("%s: the bundle's writes %v; want one close and one incident", when, k)
		}
		if inc := w.simRecords(t, "incident", "caused_by="+chg[0]["sys_id"].(string)); len(inc) != 1 {
			t.Fatalf("%s: %d incidents caused by %s, want one", when, len(inc), b.Change)
		}
	}
	once("after the next process")
	if r := daytwo(t, w.env, "run", b.ID); r.code != exitError || !strings.Contains(r.stdout, "Failed:  payments") {
		t.Fatalf("running the rolled back bundle again: %+v", r)
	}
	if r := daytwo(t, w.env, "run", "--resume"); r.code != 0 || !strings.Contains(r.stdout, "no interrupted runs") {
		t.Fatalf("run --resume with nothing left: %+v", r)
	}
	once("after running it again")
	if r := daytwo(t, w.env, "audit", "verify"); r.code != 0 {
		t.Fatalf("audit verify: %+v", r)
	}
}

// TestBundleParallelFailureStopsTheOthersEarly: checkout and payments
// roll out at once; payments fails on its first target while checkout is
// still deploying its first. Checkout stops at its next step boundary
// (its second target is never deployed), rolls back what it touched in
// its own run and is recorded stopped — not failed, not succeeded; the
// change is closed unsuccessful once, naming payments, and its work notes
// and closing notes say checkout was stopped early.
func TestBundleParallelFailureStopsTheOthersEarly(t *testing.T) {
	w := newBundleWorld(t, false)
	ctl := w.controlledDeploys(t)
	w.releaseAll(t, "1.1.0")
	touch(t, ctl, "hold-chk-1-1.2.0")
	r := daytwo(t, w.env, "propose", "--bundle", "production", "--parallel", "-o", "json", "checkout=1.2.0", "payments=1.2.0-broken")
	var b bundleResult
	if err := json.Unmarshal([]byte(r.stdout), &b); err != nil || r.code != 0 || b.Change == "" {
		t.Fatalf("propose --bundle --parallel: %+v (%v)", r, err)
	}
	w.approve(t, b.Change)
	daytwo(t, w.env, "sync", "--once")

	run := exec.Command(daytwoBin, "run", b.ID)
	run.Env = append(os.Environ(), w.env...)
	run.Dir = w.dir
	stdout, err := run.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	var out strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			lines <- sc.Text()
		}
		close(lines)
	}()
	// payments has decided to roll back (its first target failed) while
	// checkout's first deploy still runs: let that deploy finish.
	deadline := time.After(90 * time.Second)
	for decided := false; !decided; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("run ended before payments failed")
			}
			decided = strings.Contains(l, "rolling back") && strings.Contains(l, "pay-1 FAILED")
		case <-deadline:
			t.Fatal("payments never decided to roll back")
		}
	}
	touch(t, ctl, "go")
	go func() {
		for range lines { // the rest is read from out
		}
	}()
	<-done
	err = run.Wait()
	if !strings.Contains(out.String(), "Failed:  payments") || run.ProcessState.ExitCode() != exitError {
		t.Fatalf("run of the bundle: exit %d, %v:\n%s", run.ProcessState.ExitCode(), err, out.String())
	}

	deploys, _ := os.ReadFile(filepath.Join(ctl, "deploys"))
	if strings.Contains(string(deploys), "chk-2 1.2.0") {
		t.Errorf("checkout's second target was deployed after payments failed:\n%s", deploys)
	}
	if v := w.versions(t, "chk-1", "chk-2", "pay-1", "pay-2"); v != "1.1.0,1.1.0,1.1.0,1.1.0" {
		t.Fatalf("fleet after the bundle = %s", v)
	}
	ups := w.bundleUpdates(t, b.ID)
	if c := ups["checkout"]; c.State != ops.UpdateStopped || !strings.Contains(c.Reason, "stopped early: payments failed") {
		t.Errorf("checkout is %s (%q), want stopped naming payments", c.State, c.Reason)
	}
	if _, ok := ups["checkout:rollback"]; ok {
		t.Error("checkout got a compensating update; its own run rolls back what it touched")
	}
	if p := ups["payments"]; p.State != ops.UpdateRolledBack {
		t.Errorf("payments is %s", p.State)
	}
	if !strings.Contains(out.String(), "stopped early") {
		t.Errorf("the run's output does not say checkout was stopped early:\n%s", out.String())
	}
	waitFor(t, "the bundle's writes to be delivered", 30*time.Second, func() bool {
		r := daytwo(t, w.env, "outbox", "list", "-o", "json")
		return r.code == 0 && strings.TrimSpace(r.stdout) == "[]"
	})
	chg := w.simRecords(t, "change_request", "number="+b.Change)
	if chg[0]["state"] != "3" || chg[0]["close_code"] != "unsuccessful" {
		t.Fatalf("change: state %v close_code %v", chg[0]["state"], chg[0]["close_code"])
	}
	if notes, _ := chg[0]["close_notes"].(string); !strings.Contains(notes, "FAILED") || !strings.Contains(notes, "checkout") || !strings.Contains(notes, "stopped early") {
		t.Errorf("close notes: %s", notes)
	}
	if k := w.outboxKinds(t, b.ID); k[ops.OutboxCloseChange] != 1 || k[ops.OutboxCreateIncident] != 1 {
		t.Fatalf("the bundle's writes: %v; want one close and one incident", k)
	}
	jn := w.simRecords(t, "sys_journal_field", "element_id="+chg[0]["sys_id"].(string))
	found := false
	for _, n := range jn {
		if v, _ := n["value"].(string); strings.Contains(v, "checkout/production was stopped early and rolled back") {
			found = true
		}
	}
	if !found {
		t.Errorf("no work note says checkout was stopped early: %v", jn)
	}
	r = daytwo(t, w.env, "update", "logs", ups["checkout"].ID)
	if r.code != 0 || !strings.Contains(r.stdout, "stopped early: payments failed") {
		t.Errorf("checkout's run log: %+v", r)
	}
	if r := daytwo(t, w.env, "audit", "verify"); r.code != 0 {
		t.Fatalf("audit verify: %+v", r)
	}
}

// TestBundleParallelKilledAfterAFailureIsStoppedNotResumed: checkout and
// payments roll out at once; payments fails and is rolled back while
// checkout's first deploy still runs, and then `daytwo run` is killed
// (SIGKILL). `daytwo run --resume` does not resume checkout's rollout (a
// member of its bundle failed): it rolls back what checkout touched,
// records it stopped, and closes the change unsuccessful once.
func TestBundleParallelKilledAfterAFailureIsStoppedNotResumed(t *testing.T) {
	w := newBundleWorld(t, false)
	ctl := w.controlledDeploys(t)
	w.releaseAll(t, "1.1.0")
	touch(t, ctl, "hold-chk-1-1.2.0")
	r := daytwo(t, w.env, "propose", "--bundle", "production", "--parallel", "-o", "json", "checkout=1.2.0", "payments=1.2.0-broken")
	var b bundleResult
	if err := json.Unmarshal([]byte(r.stdout), &b); err != nil || r.code != 0 || b.Change == "" {
		t.Fatalf("propose --bundle --parallel: %+v (%v)", r, err)
	}
	w.approve(t, b.Change)
	daytwo(t, w.env, "sync", "--once")
	run := exec.Command(daytwoBin, "run", b.ID)
	run.Env = append(os.Environ(), w.env...)
	run.Dir = w.dir
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "payments to be rolled back", 90*time.Second, func() bool {
		return w.bundleUpdates(t, b.ID)["payments"].State == ops.UpdateRolledBack
	})
	if err := run.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = run.Wait()
	if c := w.bundleUpdates(t, b.ID)["checkout"]; c.State != ops.UpdateRunning {
		t.Fatalf("checkout at the kill: %s", c.State)
	}

	r = daytwo(t, w.env, "run", "--resume")
	if r.code != 0 || !strings.Contains(r.stdout, "State:   rolled_back") || !strings.Contains(r.stdout, "Failed:  payments") {
		t.Fatalf("run --resume: %+v", r)
	}
	deploys, _ := os.ReadFile(filepath.Join(ctl, "deploys"))
	if strings.Contains(string(deploys), "chk-2 1.2.0") {
		t.Errorf("checkout's rollout was resumed after payments failed:\n%s", deploys)
	}
	if v := w.versions(t, "chk-1", "chk-2", "pay-1", "pay-2"); v != "1.1.0,1.1.0,1.1.0,1.1.0" {
		t.Fatalf("fleet = %s", v)
	}
	ups := w.bundleUpdates(t, b.ID)
	if c := ups["checkout"]; c.State != ops.UpdateStopped || !strings.Contains(c.Reason, "stopped early: payments failed") {
		t.Errorf("checkout is %s (%q), want stopped naming payments", c.State, c.Reason)
	}
	if _, ok := ups["checkout:rollback"]; ok {
		t.Error("checkout got a compensating update")
	}
	waitFor(t, "the bundle's writes to be delivered", 30*time.Second, func() bool {
		r := daytwo(t, w.env, "outbox", "list", "-o", "json")
		return r.code == 0 && strings.TrimSpace(r.stdout) == "[]"
	})
	if chg := w.simRecords(t, "change_request", "number="+b.Change); chg[0]["state"] != "3" || chg[0]["close_code"] != "unsuccessful" {
		t.Fatalf("change: state %v close_code %v", chg[0]["state"], chg[0]["close_code"])
	}
	if k := w.outboxKinds(t, b.ID); k[ops.OutboxCloseChange] != 1 || k[ops.OutboxCreateIncident] != 1 {
		t.Fatalf("the bundle's writes: %v; want one close and one incident", k)
	}
}

// releaseAll ships version to every service as one bundle (a release the
// next bundle's rollbacks return to).
func (w *engineWorld) releaseAll(t *testing.T, version string) {
	t.Helper()
	b := w.proposeBundle(t, "checkout="+version, "payments="+version, "search="+version)
	w.approve(t, b.Change)
	daytwo(t, w.env, "sync", "--once")
	if r := daytwo(t, w.env, "run", b.ID); r.code != 0 {
		t.Fatalf("release %s: %+v", version, r)
	}
}

// TestBundleOnPostgres: the bundle story (one change for three services,
// closed successful once; then a bundle whose second service fails, rolled
// back across services, closed unsuccessful once with one incident) with
// the store on PostgreSQL.
func TestBundleOnPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	w := newBundleWorld(t, false)
	w.env = append(w.env, "DAYTWO_DB_URL="+srv.URL(srv.CreateDB(t)), "DAYTWO_DB_PASSWORD="+srv.Password)
	testBundleOneChange(t, w)
}
