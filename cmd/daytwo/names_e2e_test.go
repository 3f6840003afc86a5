package main

import (
	"encoding/json"
	"regexp"
	"testing"
)

var sysIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// changeNames reads a change from the mirror (`change show -o json`) and
// returns its CI, group and requester.
func changeNames(t *testing.T, w *engineWorld, number string) [3]string {
	t.Helper()
	r := daytwo(t, w.env, "change", "show", number, "-o", "json")
	var c changeDetail
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil || r.code != 0 {
		t.Fatalf("change show: %+v (%v)", r, err)
	}
	return [3]string{c.CmdbCI, c.AssignmentGroup, c.RequestedBy}
}

// TestChangeNamesSameWhicheverPathStoredIt: the CI, assignment group and
// requester are display names after the proposal's delivery, after
// `sync --once` (which re-reads changes whose approvals were decided),
// after a CLI `run` (which moves the change and stores ServiceNow's
// answers) and under `sync --watch`: never raw sys_ids.
func TestChangeNamesSameWhicheverPathStoredIt(t *testing.T) {
	w := newEngineWorld(t, "0s")
	staged := w.propose(t, "staging", "1.1.0")
	if r := daytwo(t, w.env, "run", staged.ID); r.code != 0 {
		t.Fatalf("run staging: %+v", r)
	}
	p := w.propose(t, "production", "1.1.0")
	want := [3]string{"checkout-service", "Platform Ops", ""}
	check := func(after string) {
		t.Helper()
		got := changeNames(t, w, p.Change)
		if want[2] == "" {
			want[2] = got[2]
		}
		for i, v := range got {
			if v == "" || sysIDRE.MatchString(v) || v != want[i] {
				t.Errorf("after %s: names %q, want %q", after, got, want)
				return
			}
		}
	}
	if r := daytwo(t, w.env, "sync", "--once"); r.code != 0 {
		t.Fatalf("sync: %+v", r)
	}
	check("the first sync --once")
	w.approve(t, p.Change)
	if r := daytwo(t, w.env, "sync", "--once"); r.code != 0 {
		t.Fatalf("sync: %+v", r)
	}
	check("sync --once after the approval")
	if r := daytwo(t, w.env, "run", p.ID); r.code != 0 {
		t.Fatalf("run production: %+v", r)
	}
	check("a CLI run")
	if r := daytwo(t, w.env, "sync", "--once"); r.code != 0 {
		t.Fatalf("sync: %+v", r)
	}
	check("sync --once after the run")
}
