package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/fixtures/demofleet"
	"github.com/daytwo/daytwo/internal/pgtest"
	"github.com/daytwo/daytwo/itsm/snowsim"
	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store"
	"github.com/daytwo/daytwo/store/pg"
	"github.com/daytwo/daytwo/tui/common"
)

// The high-availability suites of issue 16: several daemons on one
// PostgreSQL server that the test starts, judged by what the targets and
// ServiceNow (the simulator) say, not by daytwo's own record.

// TestPostgresFailoverTrials is the issue's reliability bar: three `daytwo
// sync --watch` daemons on one PostgreSQL, a gated update rolling out over
// a loopback fleet (half the trials break targets 3–4, so the run rolls
// back), and the daemon running it — found from the deploy programs'
// parent pid, as the targets see it — killed with -9 at a random moment of
// the rollout. Another daemon must take the run over and finish it: every
// target ends on one release the environment had (the old or the new),
// the change is closed once with the code the targets bear out, each batch
// note is written at most once, the dead daemon's step program never
// finishes after the takeover, only one daemon ever runs the steps of a
// holder's epoch, and the audit chain verifies.
func TestPostgresFailoverTrials(t *testing.T) {
	n := trials(1, 20)
	const leaseTTL = 3 * time.Second
	srv := pgtest.Start(t)
	w := newSafetyWorldOn(t, leaseTTL.String(), true, srv)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 16))
	t.Logf("%d trials, seed %d", n, seed)

	daemons := map[int]*exec.Cmd{}
	exits := map[int]chan int{}
	hosts := 0
	start := func() {
		hosts++
		d, exited := startHostDaemon(t, w, fmt.Sprintf("pgha-host-%d", hosts))
		daemons[d.Process.Pid], exits[d.Process.Pid] = d, exited
	}
	for range 3 {
		start()
	}
	db := w.open(t)
	ctx := context.Background()
	waitFor(t, "three daemons in `daytwo status`", 60*time.Second, func() bool {
		var st statusReport
		r := daytwo(t, w.env, "status", "-o", "json")
		return json.Unmarshal([]byte(r.stdout), &st) == nil && len(st.Store.Daemons) == 3
	})
	prev := "1.0.0"
	var takeovers []time.Duration
	outcomes := map[string]int{}
	claimWaits, fencedAlive := 0, 0
	for i := range n {
		broken := rng.IntN(2) == 0
		if broken {
			w.control(t, "fail", "prd-3\nprd-4\n")
		} else {
			w.control(t, "fail", "")
		}
		w.control(t, "slow-deploy", "0.5")
		before := len(w.deploys(t))
		v := fmt.Sprintf("7.%d.0", i)
		p := w.propose(t, "production", v)
		w.approve(t, p.Change) // a daemon mirrors the approval and auto-runs the update

		var first deployLine
		waitFor(t, "a daemon to start the rollout", 90*time.Second, func() bool {
			for _, d := range w.deploys(t)[before:] {
				if d.phase == "start" {
					first = d
					return true
				}
			}
			return false
		})
		victim, ok := daemons[first.ppid]
		if !ok {
			t.Fatalf("trial %d: the deploy program's parent %d is none of the daemons %v", i, first.ppid, keys(daemons))
		}
		// A rollout takes about 2 s from its first deploy (more with a
		// rollback): kill inside it.
		delay := time.Duration(rng.Int64N(int64(1600 * time.Millisecond)))
		time.Sleep(delay)
		_ = victim.Process.Signal(syscall.SIGKILL)
		<-exits[first.ppid]
		killedAt := time.Now()
		delete(daemons, first.ppid)
		start() // three daemons again

		var u ops.Update
		waitFor(t, "another daemon to finish the run", 3*leaseTTL+120*time.Second, func() bool {
			var err error
			u, err = db.GetUpdate(ctx, p.ID)
			return err == nil && u.State.Terminal()
		})
		finishedAt := time.Now()
		outcomes[string(u.State)]++

		// From the targets: one release across the fleet, one the
		// environment had, and the one the close code says.
		vs := map[string]bool{}
		for _, name := range strings.Fields(safetyTargets) {
			got, err := demofleet.Version(w.stateDir, name)
			if err != nil {
				t.Fatal(err)
			}
			vs[got] = true
		}
		want := prev
		if u.State == ops.UpdateSucceeded {
			want = v
		}
		if len(vs) != 1 || !vs[want] {
			t.Errorf("trial %d (broken %v, kill after %v): targets run %v, want all on %s (update %s)", i, broken, delay, keys(vs), want, u.State)
		}
		if broken && u.State == ops.UpdateSucceeded {
			t.Errorf("trial %d: a broken release succeeded", i)
		}
		// The daemons deliver the run's writes; one the dead daemon had
		// claimed waits for its claim to expire (other hosts cannot see
		// that its process is gone).
		drainStart := time.Now()
		waitFor(t, "the daemons to deliver the update's writes", 5*time.Minute, func() bool {
			items, err := db.ListOutbox(ctx, ops.OutboxFilter{Key: p.ID})
			return err == nil && len(items) == 0
		})
		if d := time.Since(drainStart); d > 30*time.Second {
			t.Logf("trial %d: writes claimed by the dead daemon waited %v for its claim to expire", i, d.Round(time.Second))
			claimWaits++
		}
		if bad := w.verifyRecord(t, p.ID); len(bad) > 0 { // also drains the outbox and checks the close code
			t.Errorf("trial %d (broken %v, kill after %v): %s", i, broken, delay, strings.Join(bad, "; "))
		}
		if chg := w.simRecords(t, "change_request", "correlation_id=daytwo:"+p.ID); len(chg) != 1 {
			t.Errorf("trial %d: %d changes in ServiceNow for one update", i, len(chg))
		}
		notes := w.workNotes(t, p.Change)
		for _, b := range []string{"batch 1/2", "batch 2/2"} {
			if c := count(notes, b); c > 1 {
				t.Errorf("trial %d: %d work notes for %s", i, c, b)
			}
		}

		// From the deploy programs: besides the killed daemon only one
		// other daemon ran steps; once it had started one, the killed
		// daemon (if it had lost its lease before the kill, under load)
		// started nothing more, and no step program of the killed daemon
		// finished.
		var takeoverAt time.Time
		runners := map[int]bool{}
		for _, d := range w.deploys(t)[before:] {
			if d.ppid != first.ppid {
				runners[d.ppid] = true
				if takeoverAt.IsZero() {
					takeoverAt = d.at
				}
			}
		}
		if len(runners) > 1 {
			t.Errorf("trial %d: besides the killed daemon %d daemons ran steps: %v", i, len(runners), keys(runners))
		}
		for _, d := range w.deploys(t)[before:] {
			if d.ppid == first.ppid && !takeoverAt.IsZero() && d.at.After(takeoverAt) {
				t.Errorf("trial %d: the killed daemon's step (%s %s) at %s came after another daemon's first at %s", i, d.phase, d.target, d.at.Format("15:04:05.000"), takeoverAt.Format("15:04:05.000"))
			}
		}
		if !takeoverAt.IsZero() && takeoverAt.Before(killedAt) {
			fencedAlive++
			t.Logf("trial %d: another daemon took the run over %v before the kill (the holder's renewals lagged under load; it was fenced off)", i, killedAt.Sub(takeoverAt).Round(time.Millisecond))
		}
		if os.Getenv("DAYTWO_TEST_VERBOSE") != "" {
			t.Logf("killed %d at %s", first.ppid, killedAt.Format("15:04:05.000"))
			for _, d := range w.deploys(t)[before:] {
				t.Logf("  %s %s %s %s rollback=%v epoch=%d ppid=%d", d.at.Format("15:04:05.000"), d.phase, d.target, d.version, d.rollback, d.epoch, d.ppid)
			}
		}
		took := finishedAt.Sub(killedAt)
		if !takeoverAt.IsZero() && takeoverAt.After(killedAt) {
			took = takeoverAt.Sub(killedAt)
			takeovers = append(takeovers, took)
			if limit := leaseTTL + 2*time.Second + 20*time.Second; took > limit { // TTL + one cycle, with room for a loaded machine
				t.Errorf("trial %d: another daemon's first step came %v after the kill (lease TTL %v)", i, took, leaseTTL)
			}
		}
		next := fmt.Sprintf("next step by another daemon %v after the kill", took.Round(time.Millisecond))
		if takeoverAt.IsZero() || takeoverAt.Before(killedAt) {
			next = fmt.Sprintf("no step after the kill (the run was over or taken over before it); seen ended %v after the kill", took.Round(time.Millisecond))
		}
		t.Logf("trial %d: broken %v, killed %v into the rollout, %s; %s", i, broken, delay.Round(time.Millisecond), u.State, next)
		if u.State == ops.UpdateSucceeded {
			prev = v
		}
	}
	if r := daytwo(t, w.env, "audit", "verify"); r.code != 0 {
		t.Errorf("audit chain: %+v", r)
	}
	slices.Sort(takeovers)
	if len(takeovers) > 0 {
		t.Logf("outcomes %v; %d trial(s) waited for a dead daemon's outbox claim, %d taken over before the kill; takeover (kill → another daemon's first step) min %v, median %v, max %v; lease TTL %v, interval 1s",
			outcomes, claimWaits, fencedAlive, takeovers[0].Round(time.Millisecond), takeovers[len(takeovers)/2].Round(time.Millisecond), takeovers[len(takeovers)-1].Round(time.Millisecond), leaseTTL)
	}
}

// startHostDaemon starts `daytwo sync --watch` for w as if on a host of
// its own: in a UTS namespace named host, so that the others cannot tell
// that it died by its pid and must wait for its lease to expire, as
// daemons on other machines must. Without unshare (not root) it runs on
// this host, where a dead holder's lease is taken over at once.
func startHostDaemon(t *testing.T, w *safetyWorld, host string) (*exec.Cmd, chan int) {
	t.Helper()
	argv := []string{daytwoBin, "--log-level", "info", "sync", "--watch", "--listen", "127.0.0.1:0"}
	if _, err := exec.LookPath("unshare"); err == nil && os.Geteuid() == 0 {
		argv = append([]string{"unshare", "--uts", "sh", "-c", `hostname "$0" && exec "$@"`, host}, argv...)
	} else {
		t.Logf("no unshare as root: daemon %s runs on this host", host)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), w.env...)
	cmd.Dir = w.dir
	out, err := os.Create(filepath.Join(w.ctl, "daemon-"+host+".out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan int, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := cmd.Wait()
		out.Close()
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
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			t.Logf("daemon on %s:\n%s", host, b)
		}
	})
	return cmd, exited
}

func keys[K comparable, V any](m map[K]V) []K {
	var out []K
	for k := range m {
		out = append(out, k)
	}
	return out
}

// pgDaemon is `daytwo sync --watch` on PostgreSQL with a known /readyz
// address and its log in a file.
type pgDaemon struct {
	cmd    *exec.Cmd
	listen string
	log    string
	exited chan error
}

func startPGDaemon(t *testing.T, env []string) *pgDaemon {
	t.Helper()
	d := &pgDaemon{listen: freeAddr(t), log: filepath.Join(t.TempDir(), "daemon.log"), exited: make(chan error, 1)}
	out, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(daytwoBin, "--log-level", "info", "sync", "--watch", "--interval", "1s", "--listen", d.listen)
	d.cmd.Env = append(os.Environ(), env...)
	d.cmd.Stdout, d.cmd.Stderr = out, out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait(); out.Close() }()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(d.log)
			t.Logf("daemon log:\n%s", b)
		}
	})
	return d
}

// readyz returns /readyz's status code and body (0 if nothing answered).
func (d *pgDaemon) readyz() (int, string) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + d.listen + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (d *pgDaemon) alive(t *testing.T) {
	t.Helper()
	select {
	case err := <-d.exited:
		b, _ := os.ReadFile(d.log)
		t.Fatalf("the daemon exited (%v):\n%s", err, b)
	default:
	}
}

// TestPostgresRestartUnderRunningDaemon: PostgreSQL stops (immediate
// shutdown, as a crash or failover would) and comes back on the same port
// while `sync --watch` runs with writes queued for ServiceNow. The daemon
// keeps running, says not ready (naming the store) while the database is
// away, is ready again once it is back, and delivers the queued writes:
// ServiceNow ends with exactly the one change the proposal asked for, its
// approval requested.
func TestPostgresRestartUnderRunningDaemon(t *testing.T) {
	srv := pgtest.Start(t)
	sim := startSim(t, snowsim.Options{})
	env, _ := writeGatedConfig(t, sim.URL())
	env = append(env, "DAYTWO_DB_URL="+srv.URL(srv.CreateDB(t)), "DAYTWO_DB_PASSWORD="+srv.Password)
	d := startPGDaemon(t, env)
	waitFor(t, "the daemon to be ready", 60*time.Second, func() bool { c, _ := d.readyz(); return c == http.StatusOK })

	// Writes queued while ServiceNow drops every call; then the database
	// goes away before the daemon could deliver them.
	sim.Sim().SetFaults(snowsim.Faults{Drop: snowsim.Rule{Every: 1}})
	r := daytwo(t, env, "propose", "production", "2.0.0", "--wait", "0", "-o", "json")
	var p proposeResult
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || r.code != 0 || p.Queued == 0 {
		t.Fatalf("propose: %+v (%v)", r, err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	sim.Sim().SetFaults(snowsim.Faults{})
	stoppedAt := time.Now()
	var body string
	waitFor(t, "/readyz to say not ready", 60*time.Second, func() bool {
		var c int
		c, body = d.readyz()
		return c == http.StatusServiceUnavailable
	})
	if !strings.HasPrefix(body, "store:") || strings.Contains(body, srv.Password) {
		t.Fatalf("/readyz while PostgreSQL is down = %q", body)
	}
	// The daemon carries on trying meanwhile: a failed cycle is logged.
	waitFor(t, "the daemon to log a failed cycle while the database is down", 60*time.Second, func() bool {
		b, _ := os.ReadFile(d.log)
		for _, line := range strings.Split(string(b), "\n") {
			var l struct {
				Time time.Time `json:"time"`
				Msg  string    `json:"msg"`
			}
			if json.Unmarshal([]byte(line), &l) == nil && l.Time.After(stoppedAt) && strings.Contains(l.Msg, "failed") {
				return true
			}
		}
		return false
	})
	d.alive(t)
	if b, _ := os.ReadFile(d.log); strings.Contains(string(b), srv.Password) {
		t.Fatal("the database password is in the daemon's log")
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	restartedAt := time.Now()
	waitFor(t, "/readyz to say ready again", 90*time.Second, func() bool { c, _ := d.readyz(); return c == http.StatusOK })
	t.Logf("ready again %v after PostgreSQL was back", time.Since(restartedAt).Round(time.Millisecond))
	d.alive(t)

	waitFor(t, "the queued writes to reach ServiceNow", 120*time.Second, func() bool {
		r := daytwo(t, env, "outbox", "list", "--all", "-o", "json")
		var items []struct {
			State string `json:"state"`
		}
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &items) != nil || len(items) < p.Queued {
			return false
		}
		for _, it := range items {
			if it.State != string(ops.OutboxDelivered) {
				return false
			}
		}
		return true
	})
	recs := simTableRecords(t, sim.URL(), "change_request", "correlation_id=daytwo:"+p.ID)
	if len(recs) != 1 {
		t.Fatalf("%d changes in ServiceNow for one proposal, want 1", len(recs))
	}
	if st := daytwo(t, env, "update", "show", p.ID, "-o", "json"); !strings.Contains(st.stdout, fmt.Sprint(recs[0]["number"])) {
		t.Fatalf("the update does not name its change %v: %s", recs[0]["number"], st.stdout)
	}
	d.alive(t)
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		if err != nil {
			t.Fatalf("daemon exit after SIGTERM: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the daemon did not stop on SIGTERM")
	}
}

// simTableRecords reads a table of the simulator as an admin.
func simTableRecords(t *testing.T, base, table, query string) []map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/now/table/"+table+"?sysparm_exclude_reference_link=true&sysparm_query="+query, nil)
	req.SetBasicAuth("admin", "admin")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Result []map[string]any `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Result
}

// TestPostgresChangeFeedAcrossProcesses: a store watcher (what a console on
// another machine uses) sees a write made by another process — `daytwo
// propose` — through LISTEN/NOTIFY within a bounded wait, with no polling.
func TestPostgresChangeFeedAcrossProcesses(t *testing.T) {
	srv := pgtest.Start(t)
	sim := startSim(t, snowsim.Options{})
	env, _ := writeGatedConfig(t, sim.URL())
	url := srv.URL(srv.CreateDB(t))
	env = append(env, "DAYTWO_DB_URL="+url, "DAYTWO_DB_PASSWORD="+srv.Password)
	if r := daytwo(t, env, "status"); r.code != 0 { // creates the schema
		t.Fatalf("status: %+v", r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, err := pg.Open(ctx, url, pg.Options{Password: srv.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var feed ops.ChangeFeed = db
	ch := feed.Changes(ctx)
	// The watcher is listening once it sees a write (from a pool of its own).
	writer, err := pg.Open(ctx, url, pg.Options{Password: srv.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	waitFor(t, "the watcher to listen", 60*time.Second, func() bool {
		if _, err := writer.AppendEvent(ctx, ops.Event{Actor: "test", Action: "warm-up"}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ch:
			return true
		case <-time.After(500 * time.Millisecond):
			return false
		}
	})
	time.Sleep(100 * time.Millisecond)
	for len(ch) > 0 {
		<-ch
	}

	const bound = time.Second
	var seenAt time.Time
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, ok := <-ch; ok {
			seenAt = time.Now()
		}
	}()
	r := daytwo(t, env, "propose", "production", "2.0.0", "--wait", "0", "-o", "json")
	exitedAt := time.Now()
	if r.code != 0 {
		t.Fatalf("propose: %+v", r)
	}
	select {
	case <-done:
	case <-time.After(bound):
		t.Fatalf("the watcher saw no change within %v of the writing process exiting", bound)
	}
	if seenAt.IsZero() {
		t.Fatal("the feed closed")
	}
	lag := seenAt.Sub(exitedAt)
	t.Logf("seen %v relative to the writer's exit (negative: while it ran)", lag.Round(time.Microsecond))
	var p proposeResult
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatal(err)
	}
	if u, err := db.GetUpdate(ctx, p.ID); err != nil || u.Version != "2.0.0" {
		t.Fatalf("the watcher's store does not show the proposal: %+v, %v", u, err)
	}
}

// refreshCounter is a console stand-in that reports each screen refresh.
type refreshCounter struct{ seen chan<- struct{} }

func (m refreshCounter) Init() tea.Cmd { return nil }
func (m refreshCounter) View() string  { return "" }
func (m refreshCounter) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if _, ok := msg.(common.RefreshMsg); ok {
		m.seen <- struct{}{}
	}
	return m, nil
}

// TestConsoleRefreshesOnPostgresCommits: the console's program options from
// liveRefresh (what `daytwo tui` passes on PostgreSQL) deliver a screen
// refresh when another connection commits, well inside the 1s poll.
func TestConsoleRefreshesOnPostgresCommits(t *testing.T) {
	srv := pgtest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := srv.URL(srv.CreateDB(t))
	open := func() *pg.DB {
		db, err := pg.Open(ctx, url, pg.Options{Password: srv.Password})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	console, writer := open(), open()
	seen := make(chan struct{}, 100)
	opts := append(liveRefresh(ctx, console), tea.WithContext(ctx), tea.WithInput(nil), tea.WithoutRenderer())
	prog := tea.NewProgram(refreshCounter{seen: seen}, opts...)
	done := make(chan struct{})
	go func() { defer close(done); _, _ = prog.Run() }()
	defer func() { cancel(); <-done }()
	prog.Send(struct{}{}) // the first message through the event loop starts the feed
	waitFor(t, "the console to refresh on a commit", 60*time.Second, func() bool {
		if _, err := writer.AppendEvent(ctx, ops.Event{Actor: "test", Action: "warm-up"}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-seen:
			return true
		case <-time.After(500 * time.Millisecond):
			return false
		}
	})
	time.Sleep(200 * time.Millisecond)
	for len(seen) > 0 {
		<-seen
	}
	start := time.Now()
	if err := writer.SyncEnvironments(ctx, []ops.Environment{{Name: "prod"}}, "test"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-seen:
		t.Logf("refreshed %v after the commit", time.Since(start).Round(time.Microsecond))
	case <-time.After(500 * time.Millisecond):
		t.Fatal("no refresh within 500ms of a commit")
	}
	sq, err := store.Open(ctx, filepath.Join(t.TempDir(), "daytwo.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	if _, ok := any(sq).(ops.ChangeFeed); ok {
		t.Fatal("the SQLite store claims a change feed it does not have")
	}
	if liveRefresh(ctx, nil) != nil {
		t.Fatal("a store without a change feed got live refresh options")
	}
}

// TestPostgresRestartDuringRollout: PostgreSQL stops while a daemon is in
// the middle of a rollout (a deploy program running) and comes back after
// that program ended. Nothing may run unjournaled meanwhile, and once the
// database is back the run is carried to an end — by its daemon or, after
// the lease expired, by recovery — with every target on one release the
// record, the update and the change's close code agree on.
func TestPostgresRestartDuringRollout(t *testing.T) {
	srv := pgtest.Start(t)
	w := newSafetyWorldOn(t, "4s", true, srv)
	w.startDaemon(t)
	w.control(t, "slow-deploy", "1")
	before := len(w.deploys(t))
	p := w.propose(t, "production", "8.0.0")
	w.approve(t, p.Change)
	waitFor(t, "the rollout to start", 90*time.Second, func() bool { return w.exists("deploy-started") })
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	// The in-flight deploy programs end while the database is away: each
	// finishes, or is stopped by the runner when the journal write that
	// must confirm its start fails (a step whose start cannot be recorded
	// may not run) — then it never logs its end, but its process is gone.
	waitFor(t, "the in-flight deploys to end", 60*time.Second, func() bool {
		started, ended := map[string]int{}, map[string]bool{}
		for _, d := range w.deploys(t)[before:] {
			switch d.phase {
			case "start":
				started[d.target] = d.pid
			case "end":
				ended[d.target] = true
			}
		}
		for target, pid := range started {
			if !ended[target] && syscall.Kill(pid, 0) == nil {
				return false
			}
		}
		return len(started) > 0
	})
	inFlight := len(w.deploys(t))
	time.Sleep(2 * time.Second) // the outage: a couple of daemon cycles against a dead database
	for _, d := range w.deploys(t)[inFlight:] {
		if d.phase == "start" {
			t.Errorf("a step started on %s while PostgreSQL was down (%s)", d.target, d.at.Format("15:04:05.000"))
		}
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL was down %v", time.Since(stoppedAt).Round(time.Millisecond))
	w.control(t, "slow-deploy", "")
	db := w.open(t)
	var u ops.Update
	waitFor(t, "the run to end after the restart", 180*time.Second, func() bool {
		var err error
		u, err = db.GetUpdate(context.Background(), p.ID)
		return err == nil && u.State.Terminal()
	})
	t.Logf("update %s: %s", u.ID, u.State)
	if bad := w.verifyRecord(t, p.ID); len(bad) > 0 {
		t.Fatal(strings.Join(bad, "\n"))
	}
	vs := map[string]bool{}
	for _, name := range strings.Fields(safetyTargets) {
		v, err := demofleet.Version(w.stateDir, name)
		if err != nil {
			t.Fatal(err)
		}
		vs[v] = true
	}
	if len(vs) != 1 || !(vs["8.0.0"] || vs["1.0.0"]) {
		t.Fatalf("targets run %v after the restart", keys(vs))
	}
	if chg := w.simRecords(t, "change_request", "correlation_id=daytwo:"+p.ID); len(chg) != 1 {
		t.Fatalf("%d changes in ServiceNow for one update", len(chg))
	}
}

// TestWriteOfADeadDaemonIsNotSentTwice is the duplicate the failover
// trials found (1 in 20): a daemon claims a work note, sends it, and dies
// before recording the delivery. Once its claim expires another daemon
// takes the item — with no attempt recorded — and must look on the change
// before sending it again: ServiceNow ends with the note once.
func TestWriteOfADeadDaemonIsNotSentTwice(t *testing.T) {
	srv := pgtest.Start(t)
	sim := startSim(t, snowsim.Options{})
	env, _ := writeGatedConfig(t, sim.URL())
	dbName := srv.CreateDB(t)
	url := srv.URL(dbName)
	env = append(env, "DAYTWO_DB_URL="+url, "DAYTWO_DB_PASSWORD="+srv.Password)
	r := daytwo(t, env, "propose", "production", "2.0.0", "-o", "json")
	var p proposeResult
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || r.code != 0 || p.Change == "" {
		t.Fatalf("propose: %+v (%v)", r, err)
	}
	chg := simTableRecords(t, sim.URL(), "change_request", "number="+p.Change)
	if len(chg) != 1 {
		t.Fatalf("change %s: %d records", p.Change, len(chg))
	}
	sysID := fmt.Sprint(chg[0]["sys_id"])
	ctx := context.Background()
	db, err := pg.Open(ctx, url, pg.Options{Password: srv.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const note = "daytwo: batch 1/2 done (sent by a daemon that then died)"
	var id int64
	payload, _ := json.Marshal(map[string]string{"update_id": p.ID, "note": note})
	if err := db.Atomic(ctx, func(tx ops.Tx) error {
		var err error
		id, err = tx.Enqueue(ctx, ops.OutboxItem{Key: p.ID, Kind: ops.OutboxWorkNote, Payload: payload})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// The dead daemon's send landed in ServiceNow ...
	body := strings.NewReader(fmt.Sprintf(`{"work_notes":%q}`, note))
	req, _ := http.NewRequest(http.MethodPatch, sim.URL()+"/api/now/table/change_request/"+sysID, body)
	req.SetBasicAuth("daytwo", "daytwo")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("work note in ServiceNow: %s %s", resp.Status, b)
	}
	resp.Body.Close()
	// ... and its claim (on another host) expired with no attempt recorded.
	srv.Exec(t, dbName, `UPDATE outbox SET claimed_by = 'elsewhere:4242:dead', claimed_until = '2000-01-01T00:00:00.000000000Z' WHERE id = $1`, id)
	if r := daytwo(t, env, "sync", "--once"); r.code != 0 {
		t.Fatalf("sync: %+v", r)
	}
	it, err := db.GetOutbox(ctx, id)
	if err != nil || it.State != ops.OutboxDelivered {
		t.Fatalf("the item after the takeover: %+v (%v)", it, err)
	}
	n := 0
	for _, j := range simTableRecords(t, sim.URL(), "sys_journal_field", "element_id="+sysID) {
		if j["element"] == "work_notes" && strings.TrimSpace(fmt.Sprint(j["value"])) == note {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the note is on the change %d times, want once", n)
	}
}
