package exec

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// Reaper finds the step programs a run's earlier holders left running on
// this host — every process whose environment carries the run's id
// (DAYTWO_RUN) and an older lease epoch (DAYTWO_RUN_EPOCH); the marks are
// inherited by whatever a deploy script starts — and stops them: SIGTERM
// to the process group, then SIGKILL after Grace. It reads /proc, so it
// needs Linux and the right to read other processes' environments (the
// same user, or root).
type Reaper struct {
	// Grace is how long a program may take to end after SIGTERM.
	Grace time.Duration
	// Poll is how often the process table is read while waiting.
	Poll time.Duration
}

var _ ops.StepReaper = (*Reaper)(nil)

// Reap stops every program of runID started under an epoch below epoch,
// and returns once they are all gone.
func (r *Reaper) Reap(ctx context.Context, runID string, epoch int64) ([]string, error) {
	grace, poll := r.Grace, r.Poll
	if grace <= 0 {
		grace = 5 * time.Second
	}
	if poll <= 0 {
		poll = 50 * time.Millisecond
	}
	first, err := stepProcesses(runID, epoch)
	if err != nil || len(first) == 0 {
		return nil, err
	}
	var out []string
	for _, p := range first {
		out = append(out, p.String())
		p.signal(syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	killed := false
	for {
		left, err := stepProcesses(runID, epoch)
		if err != nil {
			return out, err
		}
		if len(left) == 0 {
			return out, nil
		}
		if !killed && time.Now().After(deadline) {
			for _, p := range left {
				p.signal(syscall.SIGKILL)
			}
			killed = true
		}
		select {
		case <-ctx.Done():
			return out, fmt.Errorf("waiting for %d program(s) of run %s to end: %w", len(left), runID, ctx.Err())
		case <-time.After(poll):
		}
	}
}

type stepProc struct {
	pid, pgid int
	comm      string
}

func (p stepProc) String() string {
	return fmt.Sprintf("pid %d (%s) in process group %d", p.pid, p.comm, p.pgid)
}

func (p stepProc) signal(sig syscall.Signal) {
	if p.pgid > 1 {
		_ = syscall.Kill(-p.pgid, sig)
	}
	_ = syscall.Kill(p.pid, sig)
}

// stepProcesses lists live (not zombie) processes marked with runID and an
// epoch below epoch.
func stepProcesses(runID string, epoch int64) ([]stepProc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil // no /proc: nothing we can find (documented)
		}
		return nil, fmt.Errorf("read /proc: %w", err)
	}
	runMark := []byte(RunEnvVar + "=" + runID)
	epochMark := []byte(EpochEnvVar + "=")
	self := os.Getpid()
	var out []stepProc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(env, runMark) {
			continue // gone, not ours to read, or not a step of this run
		}
		var ok bool
		var ep int64 = -1
		for _, kv := range bytes.Split(env, []byte{0}) {
			switch {
			case bytes.Equal(kv, runMark):
				ok = true
			case bytes.HasPrefix(kv, epochMark):
				ep, _ = strconv.ParseInt(string(kv[len(epochMark):]), 10, 64)
			}
		}
		if !ok || ep >= epoch {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		comm, state := parseStat(stat)
		if state == 'Z' || state == 'X' {
			continue // exited; only its parent's wait is missing
		}
		pgid, err := syscall.Getpgid(pid)
		if err != nil {
			continue
		}
		out = append(out, stepProc{pid: pid, pgid: pgid, comm: comm})
	}
	return out, nil
}

// parseStat returns the command name and state of a /proc/PID/stat line
// ("PID (comm) S ..."; comm may itself hold spaces and parentheses).
func parseStat(b []byte) (string, byte) {
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open || closing+2 >= len(b) {
		return "", 0
	}
	return string(b[open+1 : closing]), b[closing+2]
}

// TargetLocks serialises steps per target across the processes of one
// host with flock(2) on a file per target under Dir. The kernel releases a
// lock when its process dies, so a killed runner never leaves a target
// locked; a paused one keeps it until it resumes (and then finds its lease
// gone).
type TargetLocks struct {
	// Dir holds the lock files (created if missing).
	Dir string
	// Poll is how often a busy lock is tried again.
	Poll time.Duration
}

var _ ops.TargetLocker = (*TargetLocks)(nil)

// Lock blocks until no other step holds the target, or ctx is done.
func (l *TargetLocks) Lock(ctx context.Context, env, target string) (func(), error) {
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("target locks: %w", err)
	}
	sum := sha256.Sum256([]byte(env + "\x00" + target))
	path := filepath.Join(l.Dir, hex.EncodeToString(sum[:12])+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("target lock for %s/%s: %w", env, target, err)
	}
	poll := l.Poll
	if poll <= 0 {
		poll = 20 * time.Millisecond
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("target lock for %s/%s: %w", env, target, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("target %s/%s is held by another step: %w", env, target, ctx.Err())
		case <-time.After(poll):
		}
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
