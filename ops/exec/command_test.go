package exec

import (
	"context"
	"errors"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

func stepReq() ops.StepRequest {
	return ops.StepRequest{
		Environment:     "staging",
		Target:          ops.Target{Name: "stg-1", Vars: map[string]string{"url": "http://127.0.0.1:1", "zone": "a"}},
		Version:         "1.2.3",
		PreviousVersion: "1.2.2",
		Config:          map[string]string{"log_level": "info", "feature_x": "on"},
		PreviousConfig:  map[string]string{"log_level": "debug", "feature_x": "off"},
		Change:          "CHG0001234",
	}
}

func mustCommand(t *testing.T, spec ops.DeploySpec) *Command {
	t.Helper()
	c, err := NewCommand("staging", spec)
	if err != nil {
		t.Fatalf("NewCommand: %v", err)
	}
	return c
}

func TestDeployEnvironment(t *testing.T) {
	t.Setenv("DAYTWO_SN_PASSWORD", "hunter2")
	t.Setenv("DAYTWO_VERSION", "0.0.0-inherited")
	t.Setenv("KEEP_ME", "kept")
	c := mustCommand(t, ops.DeploySpec{Command: []string{"env"}, Env: map[string]string{"EXTRA": "x=y"}})
	req := stepReq()
	req.Config["feature.y"] = "1"
	req.Service = "checkout"
	var rec recorder
	if err := c.Deploy(t.Context(), req, rec.sink); err != nil {
		t.Fatal(err)
	}
	got := rec.stream("stdout")
	want := []string{
		"KEEP_ME=kept",
		"EXTRA=x=y",
		"DAYTWO_ENV=staging",
		"DAYTWO_SERVICE=checkout",
		"DAYTWO_TARGET=stg-1",
		"DAYTWO_VERSION=1.2.3",
		"DAYTWO_PREVIOUS_VERSION=1.2.2",
		"DAYTWO_CHANGE=CHG0001234",
		"DAYTWO_ROLLBACK=false",
		"DAYTWO_TARGET_URL=http://127.0.0.1:1",
		"DAYTWO_TARGET_ZONE=a",
		"DAYTWO_CFG_LOG_LEVEL=info",
		"DAYTWO_CFG_FEATURE_X=on",
		"DAYTWO_CFG_FEATURE_Y=1",
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("environment lacks %s", w)
		}
	}
	for _, l := range got {
		if strings.Contains(l, "hunter2") || strings.Contains(l, "inherited") {
			t.Errorf("inherited daytwo variable leaked: %s", l)
		}
	}
	for _, l := range rec.all() {
		if l.target != "stg-1" {
			t.Fatalf("line for target %q", l.target)
		}
	}
}

func TestDeployTemplates(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	c := mustCommand(t, ops.DeploySpec{Command: []string{
		"testdata/deploy.sh", out,
		"--env={{ .Env }}", "{{ .Target.Name }}", "{{ .Target.Vars.url }}", "{{ .Version }}",
		"{{ .PreviousVersion }}", "{{ .Change }}", "{{ .Config.log_level }}", "{{ .Rollback }}",
		"plain {{/* a comment */}}text",
	}})
	if err := c.Deploy(t.Context(), stepReq(), nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out + ".args")
	if err != nil {
		t.Fatal(err)
	}
	want := "--env=staging\nstg-1\nhttp://127.0.0.1:1\n1.2.3\n1.2.2\nCHG0001234\ninfo\nfalse\nplain text\n"
	if string(b) != want {
		t.Errorf("args:\n%s\nwant:\n%s", b, want)
	}
}

func TestNewCommandErrors(t *testing.T) {
	tests := map[string]struct {
		spec ops.DeploySpec
		want string
	}{
		"no command":       {ops.DeploySpec{}, "deploy.command: empty"},
		"bad template":     {ops.DeploySpec{Command: []string{"echo", "ok", "{{ .Version "}}, "deploy.command[2]"},
		"bad rollback":     {ops.DeploySpec{Command: []string{"true"}, Rollback: []string{"{{ end }}"}}, "deploy.rollback[0]"},
		"reserved env":     {ops.DeploySpec{Command: []string{"true"}, Env: map[string]string{"DAYTWO_VERSION": "x"}}, "reserved"},
		"bad env name":     {ops.DeploySpec{Command: []string{"true"}, Env: map[string]string{"A=B": "x"}}, "not a variable name"},
		"unknown function": {ops.DeploySpec{Command: []string{"{{ shell .Version }}"}}, "deploy.command[0]"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := NewCommand("staging", tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "exec: environment staging: ") {
				t.Errorf("err = %v, want it to name the environment", err)
			}
		})
	}
}

func TestDeployRenderErrors(t *testing.T) {
	tests := map[string]struct {
		argv []string
		req  func(*ops.StepRequest)
		want string
	}{
		"missing config key": {[]string{"echo", "{{ .Config.nope }}"}, nil, `deploy.command[1]`},
		"missing target var": {[]string{"echo", "x", "{{ .Target.Vars.nope }}"}, nil, `deploy.command[2]`},
		"empty program":      {[]string{"{{ .Change }}"}, func(r *ops.StepRequest) { r.Change = "" }, "rendered empty"},
		"colliding config":   {[]string{"true"}, func(r *ops.StepRequest) { r.Config = map[string]string{"a.b": "1", "a_b": "2"} }, "DAYTWO_CFG_A_B"},
		"other environment":  {[]string{"true"}, func(r *ops.StepRequest) { r.Environment = "production" }, `"production"`},
		"no such program":    {[]string{"testdata/does-not-exist"}, nil, "start testdata/does-not-exist"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c := mustCommand(t, ops.DeploySpec{Command: tt.argv})
			req := stepReq()
			if tt.req != nil {
				tt.req(&req)
			}
			err := c.Deploy(t.Context(), req, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// TestInjection proves that values full of shell syntax reach the program
// as data and are never interpreted, and that bad versions never run.
func TestInjection(t *testing.T) {
	dir := t.TempDir()
	pwned := filepath.Join(dir, "pwned")
	evil := []string{
		"$(touch " + pwned + ")",
		"`touch " + pwned + "`",
		"; touch " + pwned + "; rm -rf " + dir + "/x",
		"x && touch " + pwned + " | cat > " + pwned + " 'a' \"b\" \\ * ? ~ # {a,b} <(x)",
		"--help",
	}
	for i, value := range evil {
		t.Run("value "+strconv.Itoa(i), func(t *testing.T) {
			// The value travels as an argv element and as DAYTWO_CFG_EVIL,
			// through a shell the user wrote, quoted as they should.
			c := mustCommand(t, ops.DeploySpec{Command: []string{
				"sh", "-c", `printf '%s\n' "$DAYTWO_CFG_EVIL" "$1"`, "sh", "{{ .Config.evil }}",
			}})
			req := stepReq()
			req.Config = map[string]string{"evil": value}
			var rec recorder
			if err := c.Deploy(t.Context(), req, rec.sink); err != nil {
				t.Fatal(err)
			}
			if got := rec.stream("stdout"); !slices.Equal(got, []string{value, value}) {
				t.Errorf("program saw %q, want %q twice", got, value)
			}
			// And straight to a program with no shell at all.
			out := filepath.Join(dir, "out")
			c = mustCommand(t, ops.DeploySpec{Command: []string{"testdata/deploy.sh", out, "{{ .Config.evil }}"}})
			if err := c.Deploy(t.Context(), req, nil); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(out + ".args"); string(b) != value+"\n" {
				t.Errorf("argument arrived as %q, want %q", b, value)
			}
			if fileExists(pwned) {
				t.Fatal("a value was interpreted by a shell")
			}
		})
	}

	badVersions := map[string]func(*ops.StepRequest){
		"version substitution": func(r *ops.StepRequest) { r.Version = "$(touch " + pwned + ")" },
		"version separator":    func(r *ops.StepRequest) { r.Version = "1.0;touch " + pwned },
		"version flag":         func(r *ops.StepRequest) { r.Version = "--force" },
		"version path":         func(r *ops.StepRequest) { r.Version = "../../etc/passwd" },
		"version empty":        func(r *ops.StepRequest) { r.Version = "" },
		"version newline":      func(r *ops.StepRequest) { r.Version = "1.0\ntouch" },
		"previous backtick":    func(r *ops.StepRequest) { r.PreviousVersion = "`touch " + pwned + "`" },
		"previous space":       func(r *ops.StepRequest) { r.PreviousVersion = "1.0 2.0" },
	}
	for name, mutate := range badVersions {
		t.Run(name, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "ran")
			c := mustCommand(t, ops.DeploySpec{Command: []string{"testdata/deploy.sh", marker}})
			req := stepReq()
			mutate(&req)
			var rec recorder
			err := c.Deploy(t.Context(), req, rec.sink)
			if err == nil || !strings.Contains(err.Error(), "version") {
				t.Fatalf("err = %v, want a refused version", err)
			}
			// Rolling back from an unknown (empty) version is fine; from or
			// to a bad one is not.
			if err := c.Rollback(t.Context(), req, rec.sink); err == nil && req.Version != "" {
				t.Fatal("rollback accepted a bad version")
			}
			if req.Version != "" && (fileExists(marker) || len(rec.all()) > 0) {
				t.Fatal("the program ran despite a bad version")
			}
		})
	}
	if fileExists(pwned) {
		t.Fatal("a value was interpreted by a shell")
	}
}

func TestDeployTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	c := mustCommand(t, ops.DeploySpec{Command: []string{"testdata/grandchild.sh", pidFile}, Timeout: 300 * time.Millisecond})
	start := time.Now()
	err := c.Deploy(t.Context(), stepReq(), nil)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("deploy returned after %s, want soon after the 300ms timeout", took)
	}
	if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want it to match context.DeadlineExceeded", err)
	}
	var te *TimeoutError
	if !errors.As(err, &te) || te.After != 300*time.Millisecond {
		t.Errorf("err = %#v, want a *TimeoutError", err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
}

func TestDeployLeavesBackgroundProcess(t *testing.T) {
	// A deploy that starts a daemon without redirecting its output: the
	// step succeeds once the script exits, after a bounded wait for the
	// output to close, and the daemon keeps running.
	pidFile := filepath.Join(t.TempDir(), "pid")
	c := mustCommand(t, ops.DeploySpec{Command: []string{"sh", "-c", `sleep 30 & echo $! > "$1"; echo started`, "sh", pidFile}})
	var rec recorder
	start := time.Now()
	if err := c.Deploy(t.Context(), stepReq(), rec.sink); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > waitDelay+time.Second {
		t.Errorf("deploy took %s", took)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if processGone(pid) {
		t.Error("the background process was killed")
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	notes := rec.stream("daytwo")
	if len(notes) != 2 || !strings.Contains(notes[1], "output stayed open") {
		t.Errorf("notes %q, want one about the open output", notes)
	}
}

func TestWithDir(t *testing.T) {
	c, err := NewCommand("staging", ops.DeploySpec{Command: []string{"./fail.sh"}}, WithDir("testdata"))
	if err != nil {
		t.Fatal(err)
	}
	var xe *ExitError
	if err := c.Deploy(t.Context(), stepReq(), nil); !errors.As(err, &xe) || xe.Code != 3 {
		t.Fatalf("err = %v, want testdata/fail.sh to run and exit 3", err)
	}
}

func TestDeployCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	c := mustCommand(t, ops.DeploySpec{Command: []string{"sleep", "30"}})
	time.AfterFunc(100*time.Millisecond, cancel)
	err := c.Deploy(ctx, stepReq(), nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestTimeoutMessage(t *testing.T) {
	if got := (&TimeoutError{After: 60 * time.Second}).Error(); got != "timed out after 60s" {
		t.Errorf("got %q", got)
	}
}

func TestDeployExitError(t *testing.T) {
	c := mustCommand(t, ops.DeploySpec{Command: []string{"testdata/fail.sh"}})
	var rec recorder
	err := c.Deploy(t.Context(), stepReq(), rec.sink)
	want := `exec: deploy 1.2.3 to stg-1: testdata/fail.sh exited with code 3; stderr: "problem 3" / "problem 4" / "problem 5" / "problem 6" / "problem 7"`
	if err == nil || err.Error() != want {
		t.Fatalf("err:\n%v\nwant:\n%s", err, want)
	}
	var xe *ExitError
	if !errors.As(err, &xe) || xe.Code != 3 || len(xe.Stderr) != tailLines {
		t.Fatalf("err = %#v, want an *ExitError with code 3", err)
	}
	if got := rec.stream("stderr"); len(got) != 7 {
		t.Errorf("stderr lines logged: %q, want all 7", got)
	}

	c = mustCommand(t, ops.DeploySpec{Command: []string{"sh", "-c", "kill -TERM $$"}})
	err = c.Deploy(t.Context(), stepReq(), nil)
	if err == nil || !strings.Contains(err.Error(), "killed by signal terminated") {
		t.Fatalf("err = %v, want a signal", err)
	}
}

func TestDeployStreamsAsItHappens(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "go-on")
	c := mustCommand(t, ops.DeploySpec{Command: []string{"testdata/stream.sh", marker}, Timeout: 10 * time.Second})
	var rec recorder
	sink := func(target, stream, line string) {
		rec.sink(target, stream, line)
		if line == "ready" {
			// The script waits for this: it only happens if "ready" is
			// delivered while the script still runs.
			if err := os.WriteFile(marker, nil, 0o600); err != nil {
				t.Error(err)
			}
		}
	}
	if err := c.Deploy(t.Context(), stepReq(), sink); err != nil {
		t.Fatal(err)
	}
	// Within a stream, order is kept; across stdout and stderr (two pipes)
	// it is only as good as the arrival order.
	if got, want := rec.stream("stdout"), []string{"ready", "done"}; !slices.Equal(got, want) {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if got, want := rec.stream("stderr"), []string{"warning"}; !slices.Equal(got, want) {
		t.Errorf("stderr %q, want %q", got, want)
	}
	if got := rec.all(); len(got) == 0 || got[0].stream != "daytwo" || !strings.HasPrefix(got[0].line, "run testdata/stream.sh ") {
		t.Errorf("first line %v, want the command run", got)
	}
}

func TestRollback(t *testing.T) {
	show := `printf '%s %s %s %s %s\n' "$DAYTWO_VERSION" "$DAYTWO_PREVIOUS_VERSION" "$DAYTWO_ROLLBACK" "$DAYTWO_CFG_LOG_LEVEL" "$1"`
	tests := map[string]struct {
		spec ops.DeploySpec
		want string
	}{
		"deploys the previous release": {
			spec: ops.DeploySpec{Command: []string{"sh", "-c", "echo deploy; " + show, "sh", "{{ .Version }}/{{ .Config.log_level }}/{{ .Rollback }}"}},
			want: "deploy|1.2.2 1.2.3 true debug 1.2.2/debug/true",
		},
		"runs the rollback argv": {
			spec: ops.DeploySpec{
				Command:  []string{"sh", "-c", "echo deploy"},
				Rollback: []string{"sh", "-c", "echo rollback; " + show, "sh", "{{ .Version }} from {{ .PreviousVersion }}"},
			},
			want: "rollback|1.2.2 1.2.3 true debug 1.2.2 from 1.2.3",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c := mustCommand(t, tt.spec)
			var rec recorder
			if err := c.Rollback(t.Context(), stepReq(), rec.sink); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(rec.stream("stdout"), "|"); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("needs a previous version", func(t *testing.T) {
		c := mustCommand(t, ops.DeploySpec{Command: []string{"true"}})
		req := stepReq()
		req.PreviousVersion = ""
		err := c.Rollback(t.Context(), req, nil)
		if !errors.Is(err, errNoPrevious) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("failure names the version returned to", func(t *testing.T) {
		c := mustCommand(t, ops.DeploySpec{Command: []string{"false"}})
		err := c.Rollback(t.Context(), stepReq(), nil)
		if err == nil || !strings.HasPrefix(err.Error(), "exec: roll back stg-1 to 1.2.2: false exited with code 1") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestDeployNoGoroutineLeak(t *testing.T) {
	c := mustCommand(t, ops.DeploySpec{Command: []string{"true"}})
	before := runtime.NumGoroutine()
	for range 20 {
		if err := c.Deploy(t.Context(), stepReq(), nil); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines: %d before, %d after", before, runtime.NumGoroutine())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func BenchmarkCommandNoop(b *testing.B) {
	c, err := NewCommand("bench", ops.DeploySpec{Command: []string{"/bin/true"}, Timeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	req := stepReq()
	req.Environment = ""
	sink := func(string, string, string) {}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Deploy(b.Context(), req, sink); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommandNoopParallel runs 50 steps at a time, as the rollout
// benchmark does with max_parallel 50.
func BenchmarkCommandNoopParallel(b *testing.B) {
	c, err := NewCommand("bench", ops.DeploySpec{Command: []string{"/bin/true"}, Timeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	req := stepReq()
	req.Environment = ""
	sink := func(string, string, string) {}
	b.SetParallelism(max(1, 50/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.Deploy(context.Background(), req, sink); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSpawnFloor is the bare os/exec cost of /bin/true, to read
// BenchmarkCommandNoop against on the same machine and load.
func BenchmarkSpawnFloor(b *testing.B) {
	for b.Loop() {
		if err := osexec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSpawnFloorParallel is BenchmarkSpawnFloor 50 at a time.
func BenchmarkSpawnFloorParallel(b *testing.B) {
	b.SetParallelism(max(1, 50/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := osexec.Command("/bin/true").Run(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
