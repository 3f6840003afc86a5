package ops

import (
	"context"
	"fmt"
	"time"
)

// StepRequest is everything an executor needs to put one target on a
// release (or back on the previous one).
type StepRequest struct {
	Environment string
	// Service is the service the step deploys (the environment's
	// Service).
	Service string
	Target  Target
	Version string
	// PreviousVersion is the release the target runs before the step (the
	// one a rollback returns to).
	PreviousVersion string
	Config          map[string]string
	PreviousConfig  map[string]string
	// Change is the ServiceNow change number authorising the step, if any.
	Change string
	// Rollback is set when the step returns the target to PreviousVersion.
	Rollback bool
	// RunID and Epoch identify the run and the lease epoch the step runs
	// under. Executors that start programs pass them on to the program's
	// environment (DAYTWO_RUN, DAYTWO_RUN_EPOCH), so that recovery can find
	// a dead runner's programs and a target can refuse a stale epoch.
	RunID string
	Epoch int64
	// OnStart, if set, is called with the process id (its own process
	// group) of each program the step starts, before it is waited for. An
	// error means the step may no longer run: the executor kills the
	// program's group and returns that error.
	OnStart func(pid int) error
	// Baseline are the targets not yet updated when the step runs (the
	// later batches'), against which metric checks compare during a bake.
	Baseline []Target
	// OnVerdict, if set, receives every metric check's verdict during a
	// bake, with its numbers.
	OnVerdict func(MetricVerdict)
}

// StepReaper stops programs that runs' earlier holders left running on
// this host: every step program of runID started under an epoch below
// epoch. It returns once they are gone, with a description of each.
type StepReaper interface {
	Reap(ctx context.Context, runID string, epoch int64) ([]string, error)
}

// TargetLocker serialises steps on one target across the processes of
// this host: at most one step runs on a target at a time. Lock blocks
// until the target is free or ctx is done.
type TargetLocker interface {
	Lock(ctx context.Context, env, target string) (unlock func(), err error)
}

// LogSink receives a step's output line by line, as it happens. stream is
// "stdout", "stderr" or "daytwo" for the engine's own notes. It must be
// safe for concurrent use: parallel steps share one sink.
type LogSink func(target, stream, line string)

// Executor applies releases to targets. Implementations must be safe for
// concurrent use: the engine runs up to max_parallel steps at once.
type Executor interface {
	Deploy(ctx context.Context, req StepRequest, log LogSink) error
}

// Rollbacker is implemented by executors that know how to roll back. req
// is the forward request as it was deployed (Version is the release being
// undone, PreviousVersion the one to return to); the executor swaps them.
// Executors without it are rolled back by the engine deploying
// PreviousVersion.
type Rollbacker interface {
	Rollback(ctx context.Context, req StepRequest, log LogSink) error
}

// HealthChecker checks that a target is healthy on a given version.
type HealthChecker interface {
	// Check runs every configured check once (each with its own retries and
	// timeout) and returns the first failure, or nil with a short evidence
	// string such as "http 200 in 12ms".
	Check(ctx context.Context, req StepRequest, log LogSink) (evidence string, err error)
}

// VersionProber asks a target which version it really runs.
type VersionProber interface {
	Probe(ctx context.Context, env string, target Target) (string, error)
}

// ValidateVersion refuses version strings that could be mistaken for
// flags, paths or shell syntax: letters, digits, '.', '_', '+' and '-', not
// starting with a punctuation mark, at most 128 characters.
func ValidateVersion(v string) error {
	if !versionLike(v) {
		return fmt.Errorf("version %q: use letters, digits, '.', '_', '+' and '-' (at most 128, starting with a letter or digit)", v)
	}
	return nil
}

// versionLike is ^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$ by hand: compiled,
// that counted repetition cost every daytwo process ~0.3 ms at start.
func versionLike(v string) bool {
	if v == "" || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '+' && c != '-') {
			return false
		}
	}
	return true
}

// Baker is implemented by health checkers that can keep checking a target
// for a bake period; the engine falls back to one Check per interval.
type Baker interface {
	Bake(ctx context.Context, req StepRequest, d time.Duration, log LogSink) (evidence string, err error)
}

// Executors builds what runs an environment's steps.
type Executors func(env Environment) (Executor, HealthChecker, error)
