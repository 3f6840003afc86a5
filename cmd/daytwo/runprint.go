package main

import (
	"errors"
	"fmt"

	"github.com/daytwo/daytwo/ops"
)

// How `run` reports the end of a run or of a bundle (cmd_run.go,
// cmd_bundle.go): one JSON document and the exit code its error means, or
// the table text and the error itself.

// printRunJSON prints doc and returns the exit its error says: 0, 8 (exitStopped) when
// the run stopped resumable (or lost its lease), 1 otherwise.
func (a *app) printRunJSON(doc any, err error) error {
	if jerr := a.printJSON(doc); jerr != nil {
		return jerr
	}
	switch {
	case errors.Is(err, ops.ErrRunInterrupted), errors.Is(err, ops.ErrLeaseLost):
		return silentError{exitStopped}
	case err != nil:
		return silentError{exitError}
	}
	return nil
}

// printResumable says how a run (or bundle) stopped at a step boundary is
// continued, when err says it was.
func (a *app) printResumable(err error, what, id string) {
	if !errors.Is(err, ops.ErrRunInterrupted) {
		return
	}
	then := ""
	if what == "bundle" {
		then = " (which goes on with the bundle)"
	}
	fmt.Fprintf(a.stdout, "%s %s stopped at a step boundary and is resumable: `daytwo run --resume`%s or a running `daytwo sync --watch` continues it\n", what, id, then)
}
