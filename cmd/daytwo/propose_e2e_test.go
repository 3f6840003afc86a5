package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/daytwo/daytwo/ops"
)

// TestProposeOneOpenUpdatePerEnvironment: proposing the release an
// environment already runs is refused unless --force; a second open update
// is refused naming the first, or supersedes it with --supersede; a
// running update is never superseded.
func TestProposeOneOpenUpdatePerEnvironment(t *testing.T) {
	w := newEngineWorld(t, "0s")
	p := w.propose(t, "staging", "1.1.0")
	if r := daytwo(t, w.env, "run", p.ID); r.code != 0 {
		t.Fatalf("run: %+v", r)
	}

	r := daytwo(t, w.env, "propose", "staging", "1.1.0")
	if r.code != exitBlocked || !strings.Contains(r.stderr, "staging already runs 1.1.0 with this config") || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("same release: %+v", r)
	}
	// The same version with another config is a new release.
	other := w.propose(t, "staging", "1.1.0", "--set", "log_level=debug")

	r = daytwo(t, w.env, "propose", "staging", "1.2.0")
	if r.code != exitBlocked || !strings.Contains(r.stderr, "staging already has an open update "+other.ID+" to 1.1.0 (approved)") ||
		!strings.Contains(r.stderr, "--supersede") {
		t.Fatalf("second open update: %+v", r)
	}
	sup := w.propose(t, "staging", "1.2.0", "--supersede")
	if len(sup.Superseded) != 1 || sup.Superseded[0] != other.ID {
		t.Fatalf("superseded = %v, want [%s]", sup.Superseded, other.ID)
	}
	forced := daytwo(t, w.env, "propose", "staging", "1.1.0", "--force", "--supersede", "-o", "json")
	if forced.code != 0 {
		t.Fatalf("--force: %+v", forced)
	}

	r = daytwo(t, w.env, "update", "list", "--all", "-o", "json")
	var sts []ops.UpdateStatus
	if err := json.Unmarshal([]byte(r.stdout), &sts); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	open := 0
	for _, s := range sts {
		if s.Update.Environment != "staging" {
			continue
		}
		switch s.Update.ID {
		case other.ID, sup.ID:
			if s.Update.State != ops.UpdateCanceled || !strings.Contains(s.Update.Reason, "superseded by") {
				t.Errorf("%s: %s %q, want canceled as superseded", s.Update.ID, s.Update.State, s.Update.Reason)
			}
		}
		for _, st := range ops.OpenUpdateStates() {
			if s.Update.State == st {
				open++
			}
		}
	}
	if open != 1 {
		t.Fatalf("%d open staging updates, want 1: %+v", open, sts)
	}
}

// TestProposeBlockedByPolicyIsClosed: a proposal a blocking policy refuses
// is recorded as blocked and closed: it is not listed as open, and it does
// not stand in the way of the next proposal.
func TestProposeBlockedByPolicyIsClosed(t *testing.T) {
	env, _ := exampleEnv(t)
	env = append(env, "DAYTWO_SN_PASSWORD=x")
	r := daytwo(t, env, "propose", "production", "1.4.2", "-o", "json")
	var p proposeResult
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || r.code != exitBlocked || !p.Blocked || p.State != ops.UpdateBlocked {
		t.Fatalf("propose: %+v (%v)", r, err)
	}
	r = daytwo(t, env, "update", "list", "-o", "json")
	if r.code != 0 || strings.Contains(r.stdout, p.ID) {
		t.Fatalf("a blocked proposal is listed as open: %+v", r)
	}
	r = daytwo(t, env, "update", "list", "--all")
	if !strings.Contains(r.stdout, p.ID) || !strings.Contains(r.stdout, "blocked") {
		t.Fatalf("update list --all lacks the blocked proposal: %+v", r)
	}
	r = daytwo(t, env, "update", "cancel", p.ID)
	if r.code == 0 {
		t.Fatalf("a closed (blocked) update was canceled: %+v", r)
	}
	r = daytwo(t, env, "propose", "production", "1.4.2", "-o", "json")
	if r.code != exitBlocked || strings.Contains(r.stderr, "open update") {
		t.Fatalf("second blocked proposal: %+v", r)
	}
}
