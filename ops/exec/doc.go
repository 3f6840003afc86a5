// Package exec runs daytwo's steps against targets: the command executor
// that deploys releases and rolls them back, the health checks (http, tcp,
// command) that decide whether a target is healthy, and the version probe
// behind drift detection.
//
// Nothing here goes through a shell. Argv elements, URLs, addresses and
// expected values are text/template templates, parsed once when the
// executor is built and rendered per step with [TemplateData]. Every value
// of a step also reaches the program as an environment variable, so a
// value full of shell syntax is only ever data. A user who wants a shell
// writes ["sh", "-c", "..."] and refers to "$DAYTWO_VERSION" there, quoted.
//
// # Environment of a step
//
// A program started by this package sees the environment of the daytwo
// process, minus every DAYTWO_* variable (those configure daytwo itself and
// may hold ServiceNow credentials), plus the step's deploy.env, plus:
//
//	DAYTWO_ENV               environment name (with services, the stage)
//	DAYTWO_SERVICE           service name (the implicit service's without services)
//	DAYTWO_TARGET            target name
//	DAYTWO_VERSION           version this step puts in place
//	DAYTWO_PREVIOUS_VERSION  version the target ran before the step
//	DAYTWO_CHANGE            ServiceNow change number, if any
//	DAYTWO_ROLLBACK          "true" when the step is a rollback, else "false"
//	DAYTWO_TARGET_<VAR>      each target var, name upper-cased
//	DAYTWO_CFG_<KEY>         each key of the release's config, upper-cased
//
// Names are upper-cased and any character outside A-Z, 0-9 and '_' becomes
// '_'; two keys that end up with the same name are an error.
//
// # Processes
//
// Each program runs in its own process group. When its timeout passes, or
// its context is canceled, the whole group is killed, so children the
// program started die with it. Output is streamed to the step's
// [ops.LogSink] line by line as it arrives; lines longer than 4 KiB are
// split. A program that leaves a background process holding its stdout or
// stderr open is waited for 2s after it exits, then its output is closed
// (the background process should redirect its output).
package exec
