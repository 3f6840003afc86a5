package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRunPrintsFailedStepAndUpdateLogs: a failing `daytwo run` prints the
// failed step with the last lines of its output; `daytwo update logs`
// prints the run log (the deploy and health commands' output), and
// --follow started before the run prints it live and ends with the run.
func TestRunPrintsFailedStepAndUpdateLogs(t *testing.T) {
	w := newEngineWorld(t, "0s")
	if r := daytwo(t, w.env, "run", w.propose(t, "staging", "1.1.0").ID); r.code != 0 {
		t.Fatalf("run 1.1.0: %+v", r)
	}
	p := w.propose(t, "staging", "1.2.0-broken")
	if r := daytwo(t, w.env, "update", "logs", p.ID); r.code != exitUsage || !strings.Contains(r.stderr, "has not run yet") {
		t.Fatalf("logs before a run: %+v", r)
	}

	follow := exec.Command(daytwoBin, "update", "logs", p.ID, "--follow", "--poll", "50ms")
	follow.Dir = t.TempDir()
	follow.Env = append(os.Environ(), w.env...)
	var fout, ferr bytes.Buffer
	follow.Stdout, follow.Stderr = &fout, &ferr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- follow.Wait() }()

	r := daytwo(t, w.env, "run", p.ID)
	if r.code != exitError {
		t.Fatalf("run of a broken release: %+v", r)
	}
	for _, want := range []string{"step health on stg-1 failed", "  | ", "daytwo update logs " + p.ID + " --run r-"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("run output lacks %q:\n%s", want, r.stdout)
		}
	}

	r = daytwo(t, w.env, "update", "logs", p.ID)
	if r.code != 0 || !strings.Contains(r.stdout, "stg-1: 1.1.0 → 1.2.0-broken") || !strings.Contains(r.stdout, "(rollback)") {
		t.Fatalf("update logs: %+v", r)
	}
	r = daytwo(t, w.env, "update", "logs", p.ID, "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"stream":`) || strings.Count(r.stdout, "\n") < 3 {
		t.Fatalf("update logs -o json: %+v", r)
	}

	select {
	case err := <-done:
		if err != nil || !strings.Contains(fout.String(), "stg-1: 1.1.0 → 1.2.0-broken") {
			t.Fatalf("logs --follow: %v\n%s\n%s", err, fout.String(), ferr.String())
		}
	case <-time.After(30 * time.Second):
		_ = follow.Process.Kill()
		t.Fatalf("logs --follow did not end with the run:\n%s", fout.String())
	}
}
