package ops

import "errors"

// Sentinel errors that callers branch on with errors.Is. Adapters map their
// own failures onto these so that the console and the CLI never need to know
// which adapter produced them.
var (
	// ErrNotFound reports that a record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict reports that a write collided with existing state, such as a
	// duplicate key or a concurrent modification.
	ErrConflict = errors.New("conflict")
	// ErrIllegalTransition reports an update state change that the lifecycle
	// does not allow.
	ErrIllegalTransition = errors.New("illegal state transition")
	// ErrBlocked reports that an action may not run now: a policy, a change
	// window, a freeze or another run's lease stands in the way.
	ErrBlocked = errors.New("blocked")
	// ErrApprovalPending reports that a change is still awaiting approval.
	ErrApprovalPending = errors.New("change awaiting approval")
	// ErrChangeRejected reports that the change was rejected by an approver.
	ErrChangeRejected = errors.New("change rejected")
	// ErrNothingToDo reports a request that would change nothing, such as
	// proposing the release an environment already runs.
	ErrNothingToDo = errors.New("nothing to do")
	// ErrOutsideWindow reports that now is outside the change's planned window.
	ErrOutsideWindow = errors.New("outside the change window")
	// ErrLeaseLost reports a journal write or step start refused because the
	// writer's lease is gone or another process holds a newer epoch: the
	// writer must stop at once and write nothing more.
	ErrLeaseLost = errors.New("lease lost to another process")
	// ErrRunInterrupted reports a run that stopped at a step boundary when
	// asked to (a signal): it is still running in the journal, its lease is
	// free, and recovery resumes it (or rolls it back if its gate closed).
	ErrRunInterrupted = errors.New("run stopped at a step boundary; it can be resumed")
	// ErrNotRunnable reports an update that is no longer approved or
	// scheduled when a run would start (another run took it first).
	ErrNotRunnable = errors.New("update is not runnable")
)
