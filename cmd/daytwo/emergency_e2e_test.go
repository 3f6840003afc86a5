package main

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// emergencyOf returns the simulator's change_request records whose parent
// is the change sysID.
func (w *verifyChangeWorld) emergencyOf(t *testing.T, sysID string) []map[string]any {
	t.Helper()
	return w.simRecords(t, "change_request", "parent="+sysID)
}

// TestEmergencyChangeRollsBackAfterTheClose: with verify.after_close on a
// gated environment a -degraded release closes its change successful when
// the last batch ends, then fails the verification window; daytwo raises
// an emergency change (same CI and group, parent = the original change,
// the failing checks with their numbers in its description and work
// notes), rolls every target back at once, opens an incident caused_by
// the original change, and leaves the emergency change awaiting
// retrospective authorization; once authorized the daemon closes it
// successful. The original change stays closed successful, never touched
// again.
func TestEmergencyChangeRollsBackAfterTheClose(t *testing.T) {
	w := newVerifyChangeWorld(t, true)
	w.write(t, "verify: {window: 2s, on_failure: rollback, after_close: true}")
	p := w.ready(t, "1.1.0")
	if r := daytwo(t, w.env, "run", p.ID); r.code != 0 || !strings.Contains(r.stdout+r.stderr, "verification window after the close passed") {
		t.Fatalf("healthy release: %+v", r)
	}
	p = w.ready(t, "1.2.0-degraded")
	r := daytwo(t, w.env, "run", p.ID)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "verification window after the close failed") {
		t.Fatalf("degraded release: %+v", r)
	}
	if got := w.versions(t, "w-1", "w-2"); got != "1.1.0,1.1.0" {
		t.Fatalf("after the failed window the fleet runs %s, want 1.1.0 everywhere", got)
	}
	if r := daytwo(t, w.env, "outbox", "retry"); r.code != 0 {
		t.Fatalf("outbox retry: %+v", r)
	}
	orig := w.simRecords(t, "change_request", "number="+p.Change)
	if len(orig) != 1 || orig[0]["state"] != "3" || orig[0]["close_code"] != "successful" {
		t.Fatalf("original change after the failed window: %v", orig)
	}
	origSysID, origMods := orig[0]["sys_id"].(string), orig[0]["sys_mod_count"]
	if notes := w.notesOf(t, origSysID); !strings.Contains(notes, "verification window continues after the close") {
		t.Errorf("the original change's work notes do not say the window continues:\n%s", notes)
	}

	em := w.emergencyOf(t, origSysID)
	if len(em) != 1 {
		t.Logf("outbox: %+v", daytwo(t, w.env, "outbox", "list", "--all"))
		t.Logf("changes: %v", w.simRecords(t, "change_request", "numberSTARTSWITHCHG"))
		t.Fatalf("emergency changes with parent %s: %v", p.Change, em)
	}
	e := em[0]
	if e["type"] != "emergency" || e["state"] != "-3" || e["approval"] != "requested" {
		t.Errorf("emergency change: type %v, state %v, approval %v; want emergency awaiting authorization (-3, requested)", e["type"], e["state"], e["approval"])
	}
	for _, f := range []string{"cmdb_ci", "assignment_group"} {
		if e[f] != orig[0][f] || e[f] == "" {
			t.Errorf("emergency change %s = %v, original's %v", f, e[f], orig[0][f])
		}
	}
	if sd := e["short_description"].(string); !strings.Contains(sd, "1.2.0-degraded") || !strings.Contains(sd, p.Change) {
		t.Errorf("emergency short description names neither the release nor %s: %q", p.Change, sd)
	}
	desc := e["description"].(string)
	for _, want := range []string{p.Change, `metrics "error-rate"`, "#1 failed: 0.", "success_condition does not hold", "retrospectively"} {
		if !strings.Contains(desc, want) {
			t.Errorf("emergency description lacks %q:\n%s", want, desc)
		}
	}
	eSysID, eNumber := e["sys_id"].(string), e["number"].(string)
	notes := w.notesOf(t, eSysID)
	for _, want := range []string{`metrics "error-rate" on w-`, "#1 failed: 0.", "Rolled out 1.1.0 to 2 target(s)", "each of the 2 verified on 1.1.0 by its version probe", "ran before this emergency change was authorized"} {
		if !strings.Contains(notes, want) {
			t.Errorf("emergency change's work notes lack %q:\n%s", want, notes)
		}
	}
	inc := w.simRecords(t, "incident", "caused_by="+origSysID)
	if len(inc) != 1 {
		t.Fatalf("incidents caused by %s: %v", p.Change, inc)
	}
	if d := inc[0]["description"].(string); !strings.Contains(d, `metrics "error-rate"`) || !strings.Contains(d, "#1 failed: 0.") {
		t.Errorf("incident lacks the failing metric and its values:\n%s", d)
	}
	audit := daytwo(t, w.env, "audit", "list", "--limit", "0", "-o", "json")
	for _, want := range []string{"verify.window_opened", "verify.window_closed", "verify.emergency_rollback", eNumber} {
		if !strings.Contains(audit.stdout, want) {
			t.Errorf("audit log lacks %q", want)
		}
	}

	// Authorized retrospectively: the daemon closes it.
	if err := w.sim.Sim().Approve(context.Background(), eNumber, "cab.manager", "retrospective: ok"); err != nil {
		t.Fatal(err)
	}
	startDaemonOn(t, w.env)
	waitFor(t, "the emergency change closed", 60*time.Second, func() bool {
		em := w.emergencyOf(t, origSysID)
		return len(em) == 1 && em[0]["state"] == "3"
	})
	em = w.emergencyOf(t, origSysID)
	if em[0]["close_code"] != "successful" || !strings.Contains(em[0]["close_notes"].(string), "authorized retrospectively") {
		t.Errorf("emergency change closed %v: %v", em[0]["close_code"], em[0]["close_notes"])
	}
	orig = w.simRecords(t, "change_request", "number="+p.Change)
	if orig[0]["state"] != "3" || orig[0]["close_code"] != "successful" || orig[0]["sys_mod_count"] != origMods {
		t.Errorf("the original change was touched after its close: %v", orig[0])
	}
	if inc := w.simRecords(t, "incident", "caused_by="+origSysID); len(inc) != 1 {
		t.Errorf("incidents caused by %s after the daemon ran: %d", p.Change, len(inc))
	}
}

// notesOf returns the change's work notes, joined.
func (w *verifyChangeWorld) notesOf(t *testing.T, sysID string) string {
	t.Helper()
	var b strings.Builder
	for _, n := range w.simRecords(t, "sys_journal_field", "element=work_notes^element_id="+sysID) {
		b.WriteString(n["value"].(string))
		b.WriteString("\n---\n")
	}
	return b.String()
}

// TestEmergencyWindowOfAKilledRunIsJudgedByTheDaemon: `daytwo run` is
// killed (SIGKILL) in the verification window after the close; the daemon
// takes the window over, judges it and rolls the release back under one
// emergency change, with one incident.
func TestEmergencyWindowOfAKilledRunIsJudgedByTheDaemon(t *testing.T) {
	w := newVerifyChangeWorld(t, true)
	w.write(t, "verify: {window: 1s, on_failure: rollback, after_close: true}")
	p := w.ready(t, "1.1.0")
	if r := daytwo(t, w.env, "run", p.ID); r.code != 0 {
		t.Fatalf("healthy release: %+v", r)
	}
	w.write(t, "verify: {window: 6s, on_failure: rollback, after_close: true}")
	p = w.ready(t, "1.2.0-degraded")
	run := exec.Command(daytwoBin, "run", p.ID)
	run.Env = append(run.Environ(), w.env...)
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the window after the close to open", 60*time.Second, func() bool {
		r := daytwo(t, w.env, "audit", "list", "--limit", "0", "-o", "json")
		return strings.Contains(r.stdout, "verify.window_opened") && strings.Count(r.stdout, "verify.window_opened") == 2
	})
	_ = run.Process.Signal(syscall.SIGKILL)
	_ = run.Wait()
	if a := daytwo(t, w.env, "audit", "list", "--limit", "0", "-o", "json"); strings.Count(a.stdout, `"verify.window_closed"`) != 1 {
		t.Fatalf("the killed run judged its window before it died (the test killed it too late)")
	}
	if got := w.versions(t, "w-1", "w-2"); got != "1.2.0-degraded,1.2.0-degraded" {
		t.Fatalf("killed in the window, the fleet runs %s", got)
	}
	startDaemonOn(t, w.env)
	waitFor(t, "the daemon to roll the release back", 90*time.Second, func() bool {
		return w.versions(t, "w-1", "w-2") == "1.1.0,1.1.0"
	})
	var origSysID string
	waitFor(t, "the emergency change and the incident", 60*time.Second, func() bool {
		orig := w.simRecords(t, "change_request", "number="+p.Change)
		if len(orig) != 1 {
			return false
		}
		origSysID = orig[0]["sys_id"].(string)
		return len(w.emergencyOf(t, origSysID)) == 1 && len(w.simRecords(t, "incident", "caused_by="+origSysID)) == 1
	})
	orig := w.simRecords(t, "change_request", "number="+p.Change)
	if orig[0]["state"] != "3" || orig[0]["close_code"] != "successful" {
		t.Errorf("original change: %v", orig[0])
	}
	audit := daytwo(t, w.env, "audit", "list", "--limit", "0", "-o", "json")
	if n := strings.Count(audit.stdout, `"verify.window_closed"`); n != 2 {
		t.Errorf("%d window verdicts in the audit log, want 2 (one per release)", n)
	}
}
