// Package ops is daytwo's domain: environments, releases, updates and their
// lifecycle, mirrored ServiceNow changes, runs and audit events, together with
// the small interfaces ops needs from the outside world (the store, the change
// system, executors).
//
// ops imports no adapter. store (SQLite) and itsm (ServiceNow) implement the
// interfaces declared here; tui talks to ops only; cmd/daytwo wires them.
package ops
