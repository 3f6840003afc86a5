package ops

import "errors"

// HintKind names what an operator can do about an error or a gate reason,
// in domain terms. The domain never phrases it as a command, a flag or a
// key: the CLI and the console each say it in their own words.
type HintKind string

// Hint kinds.
const (
	// HintSync: mirror ServiceNow now (a change is not mirrored yet).
	HintSync HintKind = "sync"
	// HintForce: propose the release the environment runs anyway (a
	// redeploy).
	HintForce HintKind = "force"
	// HintSupersede: cancel the environment's open update (Hint.Subject)
	// first, or propose superseding it.
	HintSupersede HintKind = "supersede"
	// HintComment: a rejection needs a comment.
	HintComment HintKind = "comment"
	// HintConfigKey: a config override's key (Hint.Subject) is malformed.
	HintConfigKey HintKind = "config_key"
	// HintChangeType: a change type override does not apply here.
	HintChangeType HintKind = "change_type"
	// HintReleaseHistory: the environment's (Hint.Subject) release history
	// shows what it ran.
	HintReleaseHistory HintKind = "release_history"
)

// Hint is what an operator can do next, and what it acts on.
type Hint struct {
	Kind HintKind `json:"kind"`
	// Subject is what the hint acts on: an update ID, an environment, a
	// config key.
	Subject string `json:"subject,omitempty"`
}

// IsZero reports whether there is no hint.
func (h Hint) IsZero() bool { return h.Kind == "" }

// HintError is an error the operator can act on: the domain's message
// (Err, which keeps its chain for errors.Is) and a typed hint for the CLI
// or the console to phrase.
type HintError struct {
	Err  error
	Hint Hint
}

func (e *HintError) Error() string { return e.Err.Error() }

// Unwrap returns the error without its hint.
func (e *HintError) Unwrap() error { return e.Err }

// withHint attaches a hint to err.
func withHint(err error, kind HintKind, subject string) error {
	return &HintError{Err: err, Hint: Hint{Kind: kind, Subject: subject}}
}

// HintOf returns the hint of the first HintError in err's chain.
func HintOf(err error) (Hint, bool) {
	var h *HintError
	if errors.As(err, &h) {
		return h.Hint, true
	}
	return Hint{}, false
}

// HintKinds lists every hint kind (for the phrasing sites' tests).
func HintKinds() []HintKind {
	return []HintKind{HintSync, HintForce, HintSupersede, HintComment, HintConfigKey, HintChangeType, HintReleaseHistory}
}
