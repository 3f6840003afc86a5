package main

import (
	"bufio"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemoStopsAndCleansUpOnCtrlC starts `daytwo demo --headless`, waits
// until its world is up, interrupts it as Ctrl-C would, and checks that the
// process exits, its workspace is gone and its servers are closed.
func TestDemoStopsAndCleansUpOnCtrlC(t *testing.T) {
	cmd := exec.Command(daytwoBin, "demo", "--headless", "--approve-after", "1h")
	cmd.Env = append(os.Environ(), "DAYTWO_ACTOR=e2e")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var dir, simURL, dev1 string
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "daytwo demo workspace: "):
			dir = strings.TrimPrefix(line, "daytwo demo workspace: ")
		case strings.HasPrefix(line, "  ServiceNow simulator: "):
			simURL = strings.Fields(strings.TrimPrefix(line, "  ServiceNow simulator: "))[0]
		case strings.HasPrefix(line, "  dev-1 "):
			dev1 = strings.TrimPrefix(line, "  dev-1 ")
		}
		if strings.HasPrefix(line, "[1] ") {
			break
		}
	}
	if dir == "" || simURL == "" || dev1 == "" {
		t.Fatalf("demo banner incomplete: dir=%q sim=%q dev-1=%q", dir, simURL, dev1)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("workspace missing while running: %v", err)
	}
	if resp, err := http.Get(dev1 + "/healthz"); err != nil {
		t.Fatalf("fleet not serving: %v", err)
	} else {
		resp.Body.Close()
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go func() {
		for sc.Scan() {
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("demo ignored Ctrl-C")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("workspace %s left behind (err %v)", dir, err)
	}
	for _, u := range []string{simURL + "/api/now/table/sys_user", dev1 + "/healthz"} {
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			t.Errorf("%s still answers after the demo stopped", u)
		}
	}
}
