package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/daytwo/daytwo/itsm/snowsim"

	"github.com/spf13/cobra"
)

// leafCommands walks the real command tree (cobra's help and completion
// included) and returns every runnable command by path.
func leafCommands() map[string]*cobra.Command {
	a := newApp(strings.NewReader(""), io.Discard, io.Discard, func(string) string { return "" }, func() []string { return nil })
	root := a.rootCommand()
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	out := map[string]*cobra.Command{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() {
			out[c.CommandPath()] = c
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return out
}

// TestReadOnlyEveryCommand runs every command of the tree with
// --read-only against a world with releases, an open gated update, its
// change and a queued write: each command that changes ServiceNow or an
// environment exits 6 naming read-only mode and changes nothing; each
// read works; sync --once mirrors and delivers nothing.
func TestReadOnlyEveryCommand(t *testing.T) {
	w := newEngineWorld(t, "0s")
	first := w.propose(t, "staging", "1.1.0")
	if r := daytwo(t, w.env, "run", first.ID); r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	w.propose(t, "staging", "1.2.0") // approved, waits for a run
	prod := w.propose(t, "production", "1.1.0")
	if prod.Change == "" {
		t.Fatalf("no change for %+v", prod)
	}
	// Queued writes: a proposal not delivered yet (superseding prod, whose
	// cancel is queued too).
	q := w.propose(t, "production", "1.1.1", "--supersede", "--wait", "0")
	if q.Queued == 0 {
		t.Fatalf("nothing queued: %+v", q)
	}

	cmds := leafCommands()
	// The arguments each command gets, and the exit code of a read that
	// cannot work here (needs a terminal, blocks, ...). A command missing
	// from this table fails the test: classify it in readOnlyClasses and
	// give it arguments here.
	type example struct {
		args []string
		code int // for reads: the expected exit code
	}
	examples := map[string]example{
		"daytwo":                       {nil, exitUsage}, // the console needs a terminal
		"daytwo tui":                   {nil, exitUsage},
		"daytwo sync":                  {[]string{"--once"}, 0},
		"daytwo demo":                  {[]string{"--headless"}, 0},
		"daytwo snowsim":               {[]string{"--addr", "256.0.0.1:0"}, exitError}, // would serve: given an address it cannot bind
		"daytwo config check":          {nil, 0},
		"daytwo config show":           {nil, 0},
		"daytwo env list":              {nil, 0},
		"daytwo service list":          {nil, 0},
		"daytwo service show":          {[]string{"checkout-service"}, 0},
		"daytwo env show":              {[]string{"staging"}, 0},
		"daytwo env diff":              {[]string{"staging", "production"}, 0},
		"daytwo propose":               {[]string{"staging", "9.9.9"}, 0},
		"daytwo change list":           {nil, 0},
		"daytwo change show":           {[]string{prod.Change}, 0},
		"daytwo change approve":        {[]string{prod.Change}, 0},
		"daytwo change reject":         {[]string{prod.Change, "--comment", "no"}, 0},
		"daytwo run":                   {[]string{"--resume"}, 0},
		"daytwo rollback":              {[]string{"staging"}, 0},
		"daytwo drift":                 {nil, exitDrifted}, // production has no recorded release: its targets drifted
		"daytwo policy check":          {nil, 0},
		"daytwo update list":           {nil, 0},
		"daytwo update show":           {[]string{q.ID}, 0},
		"daytwo update logs":           {[]string{first.ID}, 0},
		"daytwo update cancel":         {[]string{q.ID}, 0},
		"daytwo audit list":            {nil, 0},
		"daytwo audit verify":          {nil, 0},
		"daytwo audit export":          {nil, 0},
		"daytwo feed":                  {nil, 0},
		"daytwo outbox list":           {nil, 0},
		"daytwo outbox retry":          {nil, 0},
		"daytwo outbox discard":        {[]string{"1"}, 0},
		"daytwo store copy":            {[]string{"--from", "sqlite:///nonexistent/d.db", "--to", "postgres://daytwo@127.0.0.1:1/daytwo"}, 0},
		"daytwo status":                {nil, 0},
		"daytwo backup":                {[]string{"--to", filepath.Join(t.TempDir(), "backup.db")}, 0},
		"daytwo fleet serve":           {[]string{"--state-dir", t.TempDir()}, exitUsage}, // would serve: no --target
		"daytwo fleet deploy":          {[]string{"--state-dir", w.stateDir}, 0},
		"daytwo version":               {nil, 0},
		"daytwo help":                  {nil, 0},
		"daytwo completion bash":       {nil, 0},
		"daytwo completion zsh":        {nil, 0},
		"daytwo completion fish":       {nil, 0},
		"daytwo completion powershell": {nil, 0},
		"daytwo __complete":            {[]string{"env", ""}, 0},
		"daytwo __completeNoDesc":      {[]string{"env", ""}, 0},
	}
	paths := make([]string, 0, len(cmds))
	for p := range cmds {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	mark := func() string {
		r := daytwo(t, w.env, "audit", "list", "-o", "json", "--limit", "0")
		o := daytwo(t, w.env, "outbox", "list", "--all", "-o", "json")
		return r.stdout + o.stdout + w.versions(t, "stg-1", "stg-2")
	}
	for _, path := range paths {
		ex, ok := examples[path]
		if !ok {
			t.Errorf("%s: no example: classify it in readOnlyClasses and add it here", path)
			continue
		}
		if _, ok := readOnlyClasses[path]; !ok && readOnlyClass(cmds[path]) != roRead {
			t.Errorf("%s is not classified in readOnlyClasses (treated as a write)", path)
		}
		before := mark()
		args := append(append([]string{"--read-only"}, strings.Fields(strings.TrimPrefix(path, "daytwo"))...), ex.args...)
		r := daytwo(t, w.env, args...)
		refused := r.code == exitReadOnly && strings.Contains(r.stderr, "read-only mode")
		switch readOnlyClass(cmds[path]) {
		case roWrite, roWriteUnlessDryRun:
			if !refused {
				t.Errorf("%s: not refused in read-only mode: %+v", path, r)
			}
		default:
			if refused || r.code != ex.code {
				t.Errorf("%s: exit %d, want %d: %+v", path, r.code, ex.code, r)
			}
		}
		if after := mark(); after != before {
			t.Errorf("%s changed the store or the fleet in read-only mode", path)
		}
	}
	if r := daytwo(t, w.env, "--read-only", "propose", "staging", "9.9.9", "--dry-run"); r.code != 0 {
		t.Errorf("propose --dry-run in read-only mode: %+v", r)
	}
	if n := len(w.simRecords(t, "change_request", "correlation_id=daytwo:"+q.ID)); n != 0 {
		t.Errorf("read-only sync --once delivered the queued change of %s", q.ID)
	}
}

// TestReadOnlyDaemonMirrorsOnly: `daytwo --read-only sync --watch` mirrors
// ServiceNow (an approval made there moves the update) but delivers no
// queued write and runs nothing, not even an approved auto-run update.
func TestReadOnlyDaemonMirrorsOnly(t *testing.T) {
	w := newEngineWorld(t, "0s")
	staged := w.propose(t, "staging", "1.1.0") // ungated, auto_run: approved at once
	prod := w.propose(t, "production", "1.1.0")
	w.approve(t, prod.Change) // in ServiceNow only: the mirror still shows Assess
	// Queued writes: a proposal not delivered yet, and prod's cancel. The
	// proposing process tries to deliver the cancel itself in the
	// background: ServiceNow drops every call meanwhile, so both stay
	// queued for the daemon.
	w.sim.Sim().SetFaults(snowsim.Faults{Drop: snowsim.Rule{Every: 1}})
	q := w.propose(t, "production", "1.1.1", "--supersede", "--wait", "0")
	w.sim.Sim().SetFaults(snowsim.Faults{})
	if q.Queued == 0 {
		t.Fatalf("nothing queued: %+v", q)
	}
	if r := daytwo(t, w.env, "change", "show", prod.Change); !strings.Contains(r.stdout, "Assess") {
		t.Fatalf("the mirror already shows the approval: %+v", r)
	}

	daemon := exec.Command(daytwoBin, "--read-only", "--log-level", "debug", "sync", "--watch", "--interval", "1s", "--listen", "")
	daemon.Dir = t.TempDir()
	daemon.Env = append(os.Environ(), w.env...)
	logs := &lockedBuffer{}
	daemon.Stderr = logs
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three read-only sync cycles", 60*time.Second, func() bool {
		return strings.Count(logs.String(), `"msg":"sync cycle"`) >= 3
	})
	_ = daemon.Process.Signal(syscall.SIGTERM)
	if err := daemon.Wait(); err != nil {
		t.Fatalf("daemon: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), `"read_only":true`) {
		t.Errorf("the daemon does not say it is read-only:\n%s", logs.String())
	}
	// It mirrors ...
	if r := daytwo(t, w.env, "change", "show", prod.Change); !strings.Contains(r.stdout, "Scheduled") {
		t.Errorf("a read-only daemon did not mirror the approval of %s: %+v", prod.Change, r)
	}
	// ... and writes and runs nothing.
	if got := w.versions(t, "stg-1", "stg-2"); got != "1.0.0,1.0.0" {
		t.Errorf("a read-only daemon rolled staging out: %s", got)
	}
	if r := daytwo(t, w.env, "update", "show", staged.ID, "-o", "json"); !strings.Contains(r.stdout, `"state": "approved"`) {
		t.Errorf("staging update moved under a read-only daemon: %s", r.stdout)
	}
	if n := len(w.simRecords(t, "change_request", "correlation_id=daytwo:"+q.ID)); n != 0 {
		t.Errorf("a read-only daemon raised %d change(s) for %s", n, q.ID)
	}
	for _, c := range w.simRecords(t, "change_request", "correlation_id=daytwo:"+prod.ID) {
		if c["state"] == "4" {
			t.Errorf("a read-only daemon delivered the cancel of %s", prod.Change)
		}
	}
}

// lockedBuffer is a bytes.Buffer a process writes to while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestReadOnlyConsoleEngineRunsNothing: `daytwo --read-only tui --engine`
// (in a pseudo-terminal) runs the engine's loop as a mirror: cycles reach
// ServiceNow, but an approved auto-run update is not rolled out.
func TestReadOnlyConsoleEngineRunsNothing(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("needs script(1) for a pseudo-terminal")
	}
	w := newEngineWorld(t, "0s")
	staged := w.propose(t, "staging", "1.1.0") // ungated, auto_run: approved at once
	cycles := func() int {                     // one deletion query per sync cycle
		n := 0
		for _, r := range w.sim.Sim().Requests() {
			if strings.Contains(r.Path, "sys_audit_delete") {
				n++
			}
		}
		return n
	}
	console := exec.Command(script, "-qfec", daytwoBin+" --read-only tui --engine", "/dev/null")
	console.Dir = t.TempDir()
	console.Env = append(append(os.Environ(), w.env...), "TERM=xterm", "DAYTWO_SYNC_INTERVAL=1s")
	stdin, err := console.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	screen := &lockedBuffer{}
	console.Stdout, console.Stderr = screen, screen
	if err := console.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = console.Process.Kill() })
	// Three cycles: the engine pass of the first would have rolled
	// staging out by the third (a pass starts right after each cycle).
	waitFor(t, "three engine cycles of the console", 60*time.Second, func() bool { return cycles() >= 3 })
	if got := w.versions(t, "stg-1", "stg-2"); got != "1.0.0,1.0.0" {
		t.Errorf("a read-only console with --engine rolled staging out: %s", got)
	}
	if r := daytwo(t, w.env, "update", "show", staged.ID, "-o", "json"); !strings.Contains(r.stdout, `"state": "approved"`) {
		t.Errorf("staging update moved under a read-only console: %s", r.stdout)
	}
	if _, err := stdin.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- console.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("console: %v\n%s", err, screen.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the console did not quit on q")
	}
}
