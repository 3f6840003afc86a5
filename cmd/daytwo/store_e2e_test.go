package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daytwo/daytwo/internal/pgtest"
	"github.com/daytwo/daytwo/itsm/snowsim"
)

// TestStoreCopyToPostgres moves a SQLite database with real history (a
// staging rollout, a gated production rollout with its change, approvals,
// outbox and a keyed audit chain) to a real PostgreSQL server through the
// binary; the copy verifies and serves the same history.
func TestStoreCopyToPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	w := newEngineWorld(t, "0s")
	w.env = append(w.env, "DAYTWO_AUDIT_KEY=0123456789abcdef0123456789abcdef")
	p := w.propose(t, "staging", "1.1.0")
	if r := daytwo(t, w.env, "run", p.ID); r.code != 0 {
		t.Fatalf("staging run: %+v", r)
	}
	p = w.propose(t, "production", "1.1.0")
	w.approve(t, p.Change)
	if r := daytwo(t, w.env, "sync", "--once"); r.code != 0 {
		t.Fatalf("sync: %+v", r)
	}
	if r := daytwo(t, w.env, "run", p.Change, "--wait", "--poll", "200ms", "--timeout", "60s"); r.code != 0 {
		t.Fatalf("production run: %+v", r)
	}
	var before struct {
		OK       bool   `json:"ok"`
		Events   int64  `json:"events"`
		HeadHash string `json:"head_hash"`
		Macs     bool   `json:"macs_checked"`
	}
	r := daytwo(t, w.env, "audit", "verify", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &before); err != nil || !before.OK || before.Events < 10 {
		t.Fatalf("SQLite verify: %+v (%v)", r, err)
	}
	sqliteUpdates := daytwo(t, w.env, "update", "list", "--all", "-o", "json").stdout

	url := srv.URL(srv.CreateDB(t))
	pgEnv := append(append([]string{}, w.env...), "DAYTWO_DB_PASSWORD="+srv.Password)
	// The password belongs in the environment, not the URL.
	withPW := strings.Replace(url, srv.User+"@", srv.User+":"+srv.Password+"@", 1)
	if r := daytwo(t, pgEnv, "store", "copy", "--from", "sqlite://"+filepath.Join(w.dir, "d.db"), "--to", withPW); r.code != exitUsage ||
		strings.Contains(r.stdout+r.stderr, srv.Password) {
		t.Fatalf("copy to a URL with a password: %+v", r)
	}
	r = daytwo(t, pgEnv, "store", "copy", "--from", "sqlite://"+filepath.Join(w.dir, "d.db"), "--to", url)
	if r.code != 0 || !strings.Contains(r.stdout, "audit chain verifies on the copy") || strings.Contains(r.stdout+r.stderr, srv.Password) {
		t.Fatalf("store copy: %+v", r)
	}
	t.Log(r.stdout)
	for _, table := range []string{"run_steps", "outbox", "changes", "approvals", "audit_events"} {
		if !strings.Contains(r.stdout, table) {
			t.Fatalf("copy output lacks %s: %s", table, r.stdout)
		}
	}
	// A second copy into the now non-empty database is refused.
	if r := daytwo(t, pgEnv, "store", "copy", "--from", filepath.Join(w.dir, "d.db"), "--to", url); r.code == 0 || !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("copy into a non-empty database: %+v", r)
	}

	// Every command now runs on PostgreSQL.
	pgEnv = append(pgEnv, "DAYTWO_DB_URL="+url)
	var after struct {
		OK       bool   `json:"ok"`
		Events   int64  `json:"events"`
		HeadHash string `json:"head_hash"`
		Macs     bool   `json:"macs_checked"`
	}
	r = daytwo(t, pgEnv, "audit", "verify", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &after); err != nil || r.code != 0 || after != before || !after.Macs {
		t.Fatalf("verify on PostgreSQL = %+v, SQLite had %+v: %+v (%v)", after, before, r, err)
	}
	if got := daytwo(t, pgEnv, "update", "list", "--all", "-o", "json").stdout; got != sqliteUpdates {
		t.Fatalf("updates on PostgreSQL:\n%s\nSQLite:\n%s", got, sqliteUpdates)
	}
	// The copy keeps working: a new staging rollout on PostgreSQL.
	r = daytwo(t, pgEnv, "propose", "staging", "1.2.0", "-o", "json")
	var p2 proposeResult
	if err := json.Unmarshal([]byte(r.stdout), &p2); err != nil || r.code != 0 {
		t.Fatalf("propose on PostgreSQL: %+v", r)
	}
	if r := daytwo(t, pgEnv, "run", p2.ID); r.code != 0 {
		t.Fatalf("run on PostgreSQL: %+v", r)
	}
	if got := w.versions(t, "stg-1", "stg-2"); got != "1.2.0,1.2.0" {
		t.Fatalf("staging after a run on PostgreSQL = %s", got)
	}
	if r := daytwo(t, pgEnv, "audit", "verify"); r.code != 0 {
		t.Fatalf("verify after more history on PostgreSQL: %+v", r)
	}
	if r := daytwo(t, pgEnv, "status", "-o", "json"); r.code != 0 || !strings.Contains(r.stdout, "postgres://") || strings.Contains(r.stdout, srv.Password) {
		t.Fatalf("status on PostgreSQL: %+v", r)
	}
}

// TestDaemonHeartbeatsOnPostgres: a daemon on PostgreSQL records itself
// (host, pid, version, heartbeat), `status` lists it, `/readyz` says what it
// holds, and a clean stop removes it.
func TestDaemonHeartbeatsOnPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	sim := startSim(t, snowsim.Options{})
	env, _ := writeGatedConfig(t, sim.URL())
	env = append(env, "DAYTWO_DB_URL="+srv.URL(srv.CreateDB(t)), "DAYTWO_DB_PASSWORD="+srv.Password)
	listen := freeAddr(t)
	daemon := exec.Command(daytwoBin, "sync", "--watch", "--interval", "1s", "--listen", listen)
	daemon.Env = append(os.Environ(), env...)
	var logs strings.Builder
	daemon.Stderr = &logs
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	defer daemon.Process.Kill()
	host, _ := os.Hostname()
	me := fmt.Sprintf("%s:%d", host, daemon.Process.Pid)
	var body string
	waitFor(t, "the daemon to be ready", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + listen + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == http.StatusOK
	})
	if !strings.Contains(body, "holds: nothing (daemon "+me+")") {
		t.Fatalf("/readyz = %q", body)
	}
	var st statusReport
	r := daytwo(t, env, "status", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st.Store.Daemons) != 1 {
		t.Fatalf("status: %+v (%v)", r, err)
	}
	if d := st.Store.Daemons[0]; d.ID != me || d.PID != daemon.Process.Pid || d.Host != host || d.Version == "" || d.HeartbeatAt.IsZero() {
		t.Fatalf("daemon = %+v, want %s", d, me)
	}
	first := st.Store.Daemons[0].HeartbeatAt
	waitFor(t, "a later heartbeat", 30*time.Second, func() bool {
		r := daytwo(t, env, "status", "-o", "json")
		var st statusReport
		return json.Unmarshal([]byte(r.stdout), &st) == nil && len(st.Store.Daemons) == 1 && st.Store.Daemons[0].HeartbeatAt.After(first)
	})
	if r := daytwo(t, env, "status"); !strings.Contains(r.stdout, fmt.Sprintf("daemon:      %s pid %d", host, daemon.Process.Pid)) {
		t.Fatalf("status text: %s", r.stdout)
	}
	daemon.Process.Signal(syscall.SIGTERM)
	if err := daemon.Wait(); err != nil {
		t.Fatalf("daemon: %v\n%s", err, logs.String())
	}
	r = daytwo(t, env, "status", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st.Store.Daemons) != 0 {
		t.Fatalf("after a clean stop: %+v (%v)", st.Store.Daemons, err)
	}
}

// TestStoreCopyRoundTripsTheDemo copies the database `daytwo demo` leaves
// to PostgreSQL: the audit chain verifies there with the same head, and
// the audit log and releases read the same from both stores.
func TestStoreCopyRoundTripsTheDemo(t *testing.T) {
	srv := pgtest.Start(t)
	dir := filepath.Join(t.TempDir(), "demo")
	if r := daytwo(t, nil, "demo", "--headless", "--dir", dir, "--keep"); r.code != 0 {
		t.Fatalf("demo: %+v", r)
	}
	env := []string{"DAYTWO_CONFIG=" + filepath.Join(dir, "daytwo.yaml"), "DAYTWO_DB=" + filepath.Join(dir, "daytwo.db")}
	url := srv.URL(srv.CreateDB(t))
	pgEnv := []string{"DAYTWO_CONFIG=" + filepath.Join(dir, "daytwo.yaml"), "DAYTWO_DB_URL=" + url, "DAYTWO_DB_PASSWORD=" + srv.Password}
	r := daytwo(t, pgEnv, "store", "copy", "--from", "sqlite://"+filepath.Join(dir, "daytwo.db"), "-o", "json")
	var copied struct {
		Rows  map[string]int64 `json:"rows"`
		Audit struct {
			OK bool `json:"ok"`
		} `json:"audit"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &copied) != nil || !copied.Audit.OK || copied.Rows["audit_events"] == 0 {
		t.Fatalf("store copy (--to from DAYTWO_DB_URL): %+v", r)
	}
	var v any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatal(err)
	}
	for _, p := range jsonProblems("daytwo store copy", v) {
		t.Error(p)
	}
	for _, args := range [][]string{
		{"audit", "verify", "-o", "json"},
		{"audit", "list", "--limit", "0", "-o", "json"},
		{"env", "show", "production", "-o", "json"},
		{"update", "list", "--all", "-o", "json"},
		{"outbox", "list", "--all", "-o", "json"},
	} {
		lite, pg := daytwo(t, env, args...), daytwo(t, pgEnv, args...)
		if lite.code != 0 || pg.code != 0 || lite.stdout != pg.stdout {
			t.Fatalf("%v differs:\nSQLite: %+v\nPostgreSQL: %+v", args, lite, pg)
		}
	}
}
