package main

import (
	"bufio"
	"bytes"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/daytwo/daytwo/itsm/snowsim"
)

// walkthroughLines returns the shell lines of README's walk-through (the
// block between the walkthrough markers).
func walkthroughLines(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(fixture(t, "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- walkthrough:begin -->")
	block, _, ok2 := strings.Cut(rest, "<!-- walkthrough:end -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no walkthrough markers")
	}
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "```") {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestREADMEWalkthrough runs README's walk-through line by line, as
// written, in a fresh copy of the repository's fixtures with the built
// binary in bin/: every line exits 0, the update reaches staging's
// targets, the change is raised, and nothing is written into fixtures/.
// Two lines are the test's own: `make build` (the binary is already
// built) and the simulator, which the test starts itself on a free port
// (the address in the later lines is substituted).
func TestREADMEWalkthrough(t *testing.T) {
	lines := walkthroughLines(t)
	repo := t.TempDir()
	if err := os.CopyFS(filepath.Join(repo, "fixtures", "config"), os.DirFS(fixture(t, "config"))); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(repo, "fixtures", "config", "deploy.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(repo, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(daytwoBin, filepath.Join(repo, "bin", "daytwo")); err != nil {
		t.Fatal(err)
	}
	before := listFiles(t, filepath.Join(repo, "fixtures"))

	var sim *snowsim.Server
	simAddr := regexp.MustCompile(`--addr (\S+)`)
	shell := "" // the exports so far: each line runs in sh after them
	ran := 0
	for _, line := range lines {
		switch {
		case line == "make build":
			continue
		case strings.HasPrefix(line, "bin/daytwo snowsim "):
			m := simAddr.FindStringSubmatch(line)
			if m == nil || !strings.Contains(line, "--auto-approve-after") {
				t.Fatalf("the walk-through's simulator line changed: %q", line)
			}
			sim = startSim(t, snowsim.Options{AutoApprove: snowsim.AutoApprove{NormalAfter: 5 * time.Second, NormalApprover: "cab.manager"}})
			shell += "walkthrough_sim=" + m[1] + "\n"
			continue
		}
		if sim != nil {
			line = strings.ReplaceAll(line, walkthroughSimAddr(shell), strings.TrimPrefix(sim.URL(), "http://"))
		}
		if strings.HasSuffix(line, "&") {
			startBackground(t, repo, shell, strings.TrimSuffix(line, "&"))
			continue
		}
		if strings.HasPrefix(line, "export ") {
			shell += line + "\n"
			continue
		}
		cmd := exec.Command("sh", "-c", shell+line)
		cmd.Dir = repo
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("README walk-through line %q: %v\n%s", line, err, out)
		}
		t.Logf("$ %s\n%s", line, out)
		ran++
	}
	if sim == nil || ran < 5 {
		t.Fatalf("the walk-through ran %d commands (simulator started: %v)", ran, sim != nil)
	}
	for _, n := range []string{"stg-1", "stg-2"} {
		b, err := os.ReadFile(filepath.Join(repo, "bin", "walkthrough", "fleet", n+".json"))
		if err != nil || !bytes.Contains(b, []byte("1.4.2")) {
			t.Errorf("%s after the walk-through: %s (%v)", n, b, err)
		}
	}
	if got := simCorrelationIDs(t, sim.URL(), "daytwo:"); len(got) != 1 {
		t.Errorf("the walk-through raised %d changes, want 1", len(got))
	}
	if after := listFiles(t, filepath.Join(repo, "fixtures")); after != before {
		t.Errorf("the walk-through wrote into fixtures/:\nbefore %s\nafter  %s", before, after)
	}
}

// walkthroughSimAddr is the simulator address the walk-through names.
func walkthroughSimAddr(shell string) string {
	_, addr, _ := strings.Cut(shell, "walkthrough_sim=")
	addr, _, _ = strings.Cut(addr, "\n")
	return addr
}

// startBackground starts a walk-through line that ends in & and waits for
// the demo fleet to listen; it is stopped when the test ends.
func startBackground(t *testing.T, dir, shell, line string) {
	t.Helper()
	if !strings.HasPrefix(line, "bin/daytwo fleet serve ") {
		t.Fatalf("unexpected background line in the walk-through: %q", line)
	}
	targets := regexp.MustCompile(`--target \S+=(\S+)`).FindAllStringSubmatch(line, -1)
	for _, m := range targets {
		if ln, err := net.Listen("tcp", m[1]); err != nil {
			t.Skipf("the walk-through's fleet address %s is in use on this machine: %v", m[1], err)
		} else {
			ln.Close()
		}
	}
	cmd := exec.Command("sh", "-c", shell+"exec "+line)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for n := 0; n < len(targets) && sc.Scan(); {
		if strings.HasPrefix(sc.Text(), "fleet listening: ") {
			n++
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
}

// listFiles lists the files under dir, one path a line.
func listFiles(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b.WriteString(rel + " ")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
