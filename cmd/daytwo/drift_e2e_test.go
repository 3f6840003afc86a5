package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// driftConfig writes an ungated environment whose version probe is a
// command: each target answers with the version in its own file, and a
// target without a file fails its probe.
func driftConfig(t *testing.T) (env []string, stateDir string) {
	t.Helper()
	dir := t.TempDir()
	stateDir = filepath.Join(dir, "state")
	if err := os.Mkdir(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`
store: {path: d.db}
environments:
  - name: dev
    targets: [{name: a}, {name: b}, {name: c}]
    deploy: {command: [sh, -c, 'echo "$0" > %[1]s/$1', "{{ .Version }}", "{{ .Target.Name }}"]}
    version_probe: {command: [cat, "%[1]s/{{ .Target.Name }}"]}
`, stateDir)
	path := filepath.Join(dir, "daytwo.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"DAYTWO_CONFIG=" + path}, stateDir
}

// TestDriftUnknownAndDriftedExitCodes: a target whose probe fails is
// unknown (shown and counted, exit 7), never "in line"; a drifted target
// exits 6; exit 0 only when every probe answered with the recorded release.
func TestDriftUnknownAndDriftedExitCodes(t *testing.T) {
	env, state := driftConfig(t)
	var p proposeResult
	r := daytwo(t, env, "propose", "dev", "1.0.0", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || r.code != 0 {
		t.Fatalf("propose: %+v (%v)", r, err)
	}
	if r = daytwo(t, env, "run", p.ID); r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	if r = daytwo(t, env, "drift"); r.code != 0 || !strings.Contains(r.stdout, "every target reports the recorded release") {
		t.Fatalf("drift with every target in line: %+v", r)
	}

	// Every probe fails: the release is unknown, not in line.
	for _, n := range []string{"a", "b", "c"} {
		if err := os.Remove(filepath.Join(state, n)); err != nil {
			t.Fatal(err)
		}
	}
	r = daytwo(t, env, "drift")
	if r.code != exitUnknown || strings.Contains(r.stdout, "every target reports") ||
		!strings.Contains(r.stdout, "no target answered its version probe (3 unknown)") || strings.Count(r.stdout, "unknown (probe failed") != 3 {
		t.Fatalf("drift with every probe failing: exit %d, want %d\n%s%s", r.code, exitUnknown, r.stdout, r.stderr)
	}
	var reps []struct {
		Drifted int `json:"drifted"`
		Unknown int `json:"unknown"`
		Targets []struct {
			Target  string `json:"target"`
			Unknown bool   `json:"unknown"`
		} `json:"targets"`
	}
	r = daytwo(t, env, "drift", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &reps); err != nil || r.code != exitUnknown || len(reps) != 1 ||
		reps[0].Unknown != 3 || reps[0].Drifted != 0 || !reps[0].Targets[0].Unknown {
		t.Fatalf("drift -o json: %+v (%v)", r, err)
	}

	// One target answers in line, one is unknown: still not "in line".
	if err := os.WriteFile(filepath.Join(state, "a"), []byte("1.0.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "b"), []byte("1.0.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = daytwo(t, env, "drift")
	if r.code != exitUnknown || !strings.Contains(r.stdout, "2 of 3 target(s) report the recorded release; 1 unknown") {
		t.Fatalf("drift with one probe failing: %+v", r)
	}

	// A drifted target wins over an unknown one.
	if err := os.WriteFile(filepath.Join(state, "b"), []byte("1.0.1-hotfix\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = daytwo(t, env, "drift")
	if r.code != exitDrifted || !strings.Contains(r.stdout, "1 of 3 target(s) drifted from 1.0.0") || !strings.Contains(r.stdout, "1 unknown") {
		t.Fatalf("drift with a drifted target: exit %d, want %d\n%s%s", r.code, exitDrifted, r.stdout, r.stderr)
	}
}
