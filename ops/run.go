package ops

import "time"

// RunKind says what a run does.
type RunKind string

// Run kinds. A rollback run is the run of a rollback update (a manual
// `daytwo rollback`); the automatic rollback after a failure is part of
// the failed rollout run.
const (
	RunRollout  RunKind = "rollout"
	RunRollback RunKind = "rollback"
)

// RunState is where a run stands.
type RunState string

// Run states.
const (
	RunRunning     RunState = "running"
	RunSucceeded   RunState = "succeeded"
	RunRolledBack  RunState = "rolled_back"
	RunFailed      RunState = "failed" // failed and could not be rolled back: needs a human
	RunInterrupted RunState = "interrupted"
)

// Run is one execution of an update.
type Run struct {
	ID          string   `json:"id"`
	UpdateID    string   `json:"update_id"`
	Environment string   `json:"environment"`
	Kind        RunKind  `json:"kind"`
	State       RunState `json:"state"`
	Holder      string   `json:"holder"`
	// Epoch is the lease epoch the run's current holder runs it under.
	Epoch int64 `json:"epoch"`
	// Decision is "rollback" once the run has decided to roll back: from
	// then on, whoever runs it only continues the rollback.
	Decision       RunDecision `json:"decision,omitempty"`
	DecisionReason string      `json:"decision_reason,omitempty"`
	Error          string      `json:"error,omitempty"`
	StartedAt      time.Time   `json:"started_at"`
	FinishedAt     time.Time   `json:"finished_at,omitzero"`
}

// RunDecision is a journaled decision about a run's course.
type RunDecision string

// Run decisions.
const (
	// DecisionRollback: the run rolls back every target it touched.
	DecisionRollback RunDecision = "rollback"
)

// StepState is where a journaled step stands. A step is written as
// started before it runs and finished after, so a crash leaves it started.
type StepState string

// Step states.
const (
	StepStarted   StepState = "started"
	StepSucceeded StepState = "succeeded"
	StepFailed    StepState = "failed"
	// StepInterrupted is a check (bake) stopped at a signal before its
	// period ended; it changed nothing on the target.
	StepInterrupted StepState = "interrupted"
	// StepAbandoned is a step of a dead or fenced-off runner that recovery
	// found unfinished; its program, if still running, was stopped.
	StepAbandoned StepState = "abandoned"
	// StepWaiting is a planned target no step has reached yet: never
	// journaled, only reported in a run's progress.
	StepWaiting StepState = "waiting"
)

// RunEventState is what a run event reports: a step's start or end on a
// target, or a moment of the run as a whole (a batch, a pause, a rollback,
// the run's end).
type RunEventState string

// Run event states. A run's end is reported as its RunState.
const (
	EventStarted        RunEventState = "started"
	EventSucceeded      RunEventState = "succeeded"
	EventFailed         RunEventState = "failed"
	EventBatch          RunEventState = "batch"
	EventPause          RunEventState = "pause"
	EventRollback       RunEventState = "rollback"
	EventStopped        RunEventState = "stopped"
	EventFenced         RunEventState = "fenced"
	EventRecover        RunEventState = "recover"
	EventResume         RunEventState = "resume"
	EventVerify         RunEventState = "verify"
	EventVerifyFailed   RunEventState = "verify_failed"
	EventVerified       RunEventState = "verified"
	EventAnalysisPassed RunEventState = "analysis_passed"
	EventAnalysisFailed RunEventState = "analysis_failed"
)

// StepRecord is one journaled step on one target.
type StepRecord struct {
	ID         int64     `json:"id"`
	RunID      string    `json:"run_id"`
	Batch      int       `json:"batch"`
	Target     string    `json:"target"`
	Step       string    `json:"step"`
	Version    string    `json:"version"`
	Attempt    int       `json:"attempt"`
	Holder     string    `json:"holder,omitempty"`
	Epoch      int64     `json:"epoch,omitempty"`
	PGID       int       `json:"pgid,omitempty"`
	State      StepState `json:"state"`
	Detail     string    `json:"detail,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// LogLine is one line of a run's log.
type LogLine struct {
	ID     int64     `json:"id"`
	RunID  string    `json:"run_id"`
	Time   time.Time `json:"time"`
	Target string    `json:"target,omitempty"`
	Stream string    `json:"stream"`
	Line   string    `json:"line"`
}
