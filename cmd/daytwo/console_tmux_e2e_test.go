package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tmuxConsole runs the real binary in a detached tmux session on its own
// server socket (never the developer's) at w×h, and stops it at the end.
type tmuxConsole struct {
	t      *testing.T
	socket string
	name   string
}

func startTmux(t *testing.T, w, h int, env []string, args ...string) *tmuxConsole {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tmux is needed for the console tests")
		}
		t.Skip("tmux not installed")
	}
	c := &tmuxConsole{t: t, socket: filepath.Join(t.TempDir(), "tmux.sock"), name: "daytwo"}
	cmdline := "exec env " + strings.Join(env, " ") + " " + daytwoBin + " " + strings.Join(args, " ")
	out, err := exec.Command("tmux", "-S", c.socket, "new-session", "-d", "-s", c.name, "-x", fmt.Sprint(w), "-y", fmt.Sprint(h), cmdline).CombinedOutput()
	if err != nil {
		t.Fatalf("tmux: %v: %s", err, out)
	}
	t.Cleanup(func() {
		c.keys("C-c")
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) && exec.Command("tmux", "-S", c.socket, "has-session", "-t", c.name).Run() == nil {
			time.Sleep(100 * time.Millisecond)
		}
		_ = exec.Command("tmux", "-S", c.socket, "kill-server").Run()
	})
	return c
}

func (c *tmuxConsole) keys(keys ...string) {
	args := append([]string{"-S", c.socket, "send-keys", "-t", c.name}, keys...)
	_ = exec.Command("tmux", args...).Run()
}

func (c *tmuxConsole) screen() string {
	out, _ := exec.Command("tmux", "-S", c.socket, "capture-pane", "-p", "-t", c.name).Output()
	return string(out)
}

// waitFor waits until the pane shows every text (90 s at most).
func (c *tmuxConsole) waitFor(texts ...string) string {
	c.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		s := c.screen()
		all := true
		for _, want := range texts {
			all = all && strings.Contains(s, want)
		}
		if all {
			return s
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the console did not show %q:\n%s", texts, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTmuxDemoConsoleShowsItsBannerAndTakesBatchedKeys: the demo's banner
// (config path, how to run the CLI against it) is hidden by the alternate
// screen, so the console's connection screen shows it; keys sent together
// by tmux each move the selection; the footer keeps "? help" at 80×24.
func TestTmuxDemoConsoleShowsItsBannerAndTakesBatchedKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	c := startTmux(t, 80, 24, []string{"DAYTWO_ACTOR=e2e", "TERM=xterm-256color"},
		"demo", "--approve-after", "1h", "--dir", dir)
	s := c.waitFor("SERVICE", "production") // the services matrix, home
	if !strings.Contains(s, "? help") {
		t.Errorf("the footer at 80×24 lost ? help:\n%s", s)
	}
	c.keys("Tab") // the environments list
	c.waitFor("ENVIRONMENT", "production")
	c.keys("jj") // one write: bubbletea may read it as one message
	c.waitUntil("the preview of production", func(s string) bool {
		for _, l := range strings.Split(s, "\n") {
			if strings.TrimSpace(l) == "production" {
				return true
			}
		}
		return false
	})
	c.keys("6")
	s = c.waitFor("demo", "DAYTWO_CONFIG=", "update list")
	// The paths are wrapped, not cut: join the wrapped lines back.
	var flat strings.Builder
	for _, l := range strings.Split(s, "\n") {
		flat.WriteString(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "demo")))
	}
	cfg := filepath.Join(dir, "daytwo.yaml")
	if !strings.Contains(flat.String(), "config:"+cfg) || !strings.Contains(flat.String(), "DAYTWO_CONFIG="+cfg) {
		t.Errorf("the connection screen does not show the config path %s whole:\n%s", cfg, s)
	}
}

// waitUntil waits until ok(pane) (90 s at most).
func (c *tmuxConsole) waitUntil(what string, ok func(string) bool) {
	c.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !ok(c.screen()) {
		if time.Now().After(deadline) {
			c.t.Fatalf("the console did not show %s:\n%s", what, c.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
