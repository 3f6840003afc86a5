package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGHUPReloadsTheDaemonsConfiguration: `sync --watch` is running a
// staging rollout (a long bake) when its configuration gains an
// environment and SIGHUP arrives: the reload is logged, the run goes on
// and succeeds under its lease (one run, not stopped); an invalid file
// then is refused in a log line naming the file and the key, and the
// previous (reloaded) configuration stays in force: the new environment's
// update is rolled out by the daemon. SIGTERM then drains it.
func TestSIGHUPReloadsTheDaemonsConfiguration(t *testing.T) {
	w := newEngineWorld(t, "0s")
	base, err := os.ReadFile(w.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// Staging bakes long enough to reload in the middle of its run.
	slow := strings.Replace(string(base), "strategy: {batch_size: 1}\n    config: {log_level: info}", "strategy: {batch_size: 1, bake: 4s}\n    config: {log_level: info}", 1)
	if slow == string(base) {
		t.Fatal("the engine world's staging strategy moved: update this test")
	}
	write := func(cfg string) {
		t.Helper()
		if err := os.WriteFile(w.cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(slow)

	var logs lockedBuffer
	daemon := exec.Command(daytwoBin, "sync", "--watch", "--listen", "")
	daemon.Env = append(os.Environ(), w.env...)
	daemon.Stderr = &logs
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- daemon.Wait() }()
	t.Cleanup(func() {
		daemon.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
			t.Logf("update list: %s", daytwo(t, w.env, "update", "list", "--all").stdout)
		}
	})
	waitFor(t, "the daemon to start", 30*time.Second, func() bool { return strings.Contains(logs.String(), "daemon started") })

	first := w.propose(t, "staging", "1.1.0")
	updateState := func(id string) string {
		r := daytwo(t, w.env, "update", "show", id, "-o", "json")
		var s struct {
			Update struct {
				State string `json:"state"`
			} `json:"update"`
			Runs []json.RawMessage `json:"runs"`
		}
		_ = json.Unmarshal([]byte(r.stdout), &s)
		return s.Update.State
	}
	waitFor(t, "the staging run to be in its bake", 60*time.Second, func() bool {
		return updateState(first.ID) == "running" && w.versions(t, "stg-1") == "1.1.0"
	})

	// A new environment, qa (auto-run, on its own target), and SIGHUP.
	qa := strings.Replace(slow, "  - name: production\n", `  - name: qa
    auto_run: true
    targets:
      - {name: prd-1, vars: {url: "`+w.fleet.URLs()["prd-1"]+`"}}
    deploy: {command: ["`+daytwoBin+`", fleet, deploy, --state-dir, "`+w.stateDir+`"], timeout: 30s}
    version_probe: {http: {url: "{{ .Target.Vars.url }}/version"}}
    strategy: {batch_size: 1}
  - name: production
`, 1)
	write(qa)
	if err := daemon.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload to be logged", 30*time.Second, func() bool {
		return strings.Contains(logs.String(), "configuration reloaded") && strings.Contains(logs.String(), `"qa"`)
	})
	if st := updateState(first.ID); st != "running" {
		t.Fatalf("the staging run is %q right after the reload, want still running (the reload came within its 4s bakes)", st)
	}

	// An invalid file: refused, naming the file and the key.
	write(strings.Replace(qa, "sync: {interval: 1s}", "sync: {interval: banana}", 1))
	if err := daemon.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refusal to be logged", 30*time.Second, func() bool {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "configuration not reloaded") && strings.Contains(l, w.cfgPath) && strings.Contains(l, "sync.interval") {
				return true
			}
		}
		return false
	})
	// (The fleet's deploy program is daytwo too and reads the same file.)
	write(qa)

	// The in-flight run was not interrupted: it succeeded, in one run.
	waitFor(t, "the staging run to succeed", 60*time.Second, func() bool { return updateState(first.ID) == "succeeded" })
	if got := w.versions(t, "stg-1", "stg-2"); got != "1.1.0,1.1.0" {
		t.Fatalf("staging = %s", got)
	}
	if strings.Contains(logs.String(), "lease lost") || strings.Contains(logs.String(), "paused") {
		t.Fatalf("the run lost its lease or paused across the reload:\n%s", logs.String())
	}

	// The reloaded configuration is in force (the invalid one did not
	// replace it): the daemon rolls qa out.
	p := w.propose(t, "qa", "1.3.0")
	waitFor(t, "the daemon to roll qa out", 60*time.Second, func() bool { return w.versions(t, "prd-1") == "1.3.0" })
	waitFor(t, "qa's update to succeed", 30*time.Second, func() bool { return updateState(p.ID) == "succeeded" })

	// SIGTERM drains: the daemon stops cleanly.
	daemon.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("daemon after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("daemon did not stop on SIGTERM:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "daemon stopped") {
		t.Fatalf("no clean stop logged:\n%s", logs.String())
	}
}
