package main

import "github.com/daytwo/daytwo/ops"

// hintText phrases a domain hint as what to type: the domain names what
// can be done (ops.Hint), the CLI says which command or flag does it.
func hintText(h ops.Hint) string {
	switch h.Kind {
	case ops.HintSync:
		return "run `daytwo sync --once`"
	case ops.HintForce:
		return "--force proposes it anyway (a redeploy)"
	case ops.HintSupersede:
		return "cancel it first (`daytwo update cancel " + h.Subject + "`) or propose with --supersede"
	case ops.HintComment:
		return "give one with --comment"
	case ops.HintConfigKey:
		return "check --set " + h.Subject
	case ops.HintChangeType:
		return "leave out --type"
	case ops.HintReleaseHistory:
		return "see `daytwo env show " + h.Subject + "`"
	}
	return ""
}

// withHintText is err's message followed by its hint, if it has one.
func withHintText(err error) string {
	msg := err.Error()
	if h, ok := ops.HintOf(err); ok {
		if t := hintText(h); t != "" {
			msg += "; " + t
		}
	}
	return msg
}
