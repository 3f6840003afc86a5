package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// inDir runs the binary in dir with only PATH and HOME set.
func inDir(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(daytwoBin, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	var r result
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r.stdout, r.stderr = out.String(), errb.String()
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestNoConfigSaysWhereItLookedAndReadsCreateNoDatabase: with no
// configuration file, commands say where daytwo looked and exit 2 (never
// "-: ok"); reads never create the database, with or without a
// configuration.
func TestNoConfigSaysWhereItLookedAndReadsCreateNoDatabase(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"config", "check"}, {"status"}, {"env", "list"}, {"update", "list"}, {"config", "show"}} {
		r := inDir(t, dir, nil, args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "no configuration file found") || !strings.Contains(r.stderr, dir) ||
			!strings.Contains(r.stderr, "DAYTWO_CONFIG") || strings.Contains(r.stdout, "-: ok") {
			t.Errorf("%v without a configuration: %+v", args, r)
		}
	}
	if r := inDir(t, dir, nil, "version"); r.code != 0 {
		t.Errorf("version needs no configuration: %+v", r)
	}

	// With a configuration whose database does not exist yet.
	db := filepath.Join(dir, "sub", "daytwo.db")
	env := []string{"DAYTWO_CONFIG=" + fixture(t, "config", "daytwo.example.yaml"), "DAYTWO_DB=" + db}
	for _, args := range [][]string{
		{"status"},
		{"env", "list"},
		{"env", "show", "staging"},
		{"update", "list"},
		{"change", "list"},
		{"audit", "verify"},
		{"outbox", "list"},
		{"policy", "check"},
		{"status", "-o", "json"},
	} {
		if r := inDir(t, dir, env, args...); r.code != 0 {
			t.Errorf("%v before any database: %+v", args, r)
		}
	}
	r := inDir(t, dir, env, "status")
	if !strings.Contains(r.stdout, "not created yet") {
		t.Errorf("status does not say the store is not created yet: %s", r.stdout)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		t.Errorf("a read created %s", e.Name())
	}
	if _, err := os.Stat(filepath.Join(fixture(t, "config"), "daytwo.db")); err == nil {
		t.Errorf("a database was written into fixtures/config")
	}
	// A write creates it.
	if r := inDir(t, dir, env, "propose", "staging", "1.4.2"); r.code != 0 {
		t.Fatalf("propose: %+v", r)
	}
	if _, err := os.Stat(db); err != nil {
		t.Fatalf("propose did not create the database: %v", err)
	}
}
