package exec

import (
	"context"
	"os"
	osexec "os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// TestReaperStopsOnlyOlderEpochsOfTheRun starts step programs the way the
// command executor does — marked with their run and epoch, each in its own
// process group with a child of its own — and checks that Reap stops the
// run's older-epoch programs (children included) and leaves the others.
func TestReaperStopsOnlyOlderEpochsOfTheRun(t *testing.T) {
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Skip("no /proc: the reaper cannot see processes here")
	}
	type proc struct {
		cmd  *osexec.Cmd
		done chan struct{}
	}
	start := func(run string, epoch int64) proc {
		t.Helper()
		// sh starts a sleep of its own: the reaper must stop the group.
		cmd := osexec.Command("/bin/sh", "-c", "sleep 60 & wait")
		cmd.Env = append(os.Environ(), RunEnvVar+"="+run, EpochEnvVar+"="+strconv.FormatInt(epoch, 10))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := proc{cmd: cmd, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(p.done) }() // the one Wait
		t.Cleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		})
		return p
	}
	old := start("r-test", 1)
	current := start("r-test", 2)
	other := start("r-other", 1)
	// Wait until the old shell's child has become sleep (until it execs,
	// a fork of sh is another "sh").
	waitUntil(t, func() bool {
		ps, _ := stepProcesses("r-test", 2)
		for _, p := range ps {
			if p.comm == "sleep" {
				return len(ps) == 2
			}
		}
		return false
	})
	stopped, err := (&Reaper{Grace: time.Second}).Reap(context.Background(), "r-test", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(stopped) != 2 || !strings.Contains(strings.Join(stopped, " "), "sleep") {
		t.Fatalf("stopped %v, want the old shell and its sleep", stopped)
	}
	select {
	case <-old.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the old-epoch program is still running")
	}
	for _, p := range []proc{current, other} {
		select {
		case <-p.done:
			t.Fatalf("pid %d was stopped but belongs to a current epoch or another run", p.cmd.Process.Pid)
		default:
		}
	}
}

// TestTargetLocksSerialiseSteps checks that a second holder of one target
// waits until the first lets go, that other targets are independent, and
// that a holder's death (closing its file) frees the lock.
func TestTargetLocksSerialiseSteps(t *testing.T) {
	l := &TargetLocks{Dir: t.TempDir(), Poll: 5 * time.Millisecond}
	ctx := context.Background()
	unlock, err := l.Lock(ctx, "production", "prd-1")
	if err != nil {
		t.Fatal(err)
	}
	if u2, err := l.Lock(ctx, "production", "prd-2"); err != nil {
		t.Fatalf("another target must not wait: %v", err)
	} else {
		u2()
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := l.Lock(short, "production", "prd-1"); err == nil {
		t.Fatal("a second step on a locked target got the lock")
	}
	got := make(chan struct{})
	go func() {
		u, err := l.Lock(ctx, "production", "prd-1")
		if err == nil {
			u()
		}
		close(got)
	}()
	unlock()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting step never got the lock after it was released")
	}
	var _ ops.TargetLocker = l
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
