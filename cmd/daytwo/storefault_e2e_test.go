package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// readOnlyView returns dir as the kernel refuses to write it. Root ignores
// file modes, so as root the view is a read-only bind mount (what a
// read-only volume is); other users get chmod'ed files. Where neither can
// be made, the test is skipped, saying why.
func readOnlyView(t *testing.T, dir string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			os.Chmod(filepath.Join(dir, e.Name()), 0o444)
		}
		os.Chmod(dir, 0o555)
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
		return dir
	}
	mnt := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "--bind", dir, mnt).CombinedOutput(); err != nil {
		t.Skipf("running as root without a way to make a read-only mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	if out, err := exec.Command("mount", "-o", "remount,bind,ro", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot remount read-only: %v %s", err, out)
	}
	return mnt
}

// TestReadOnlyDatabase: on a read-only volume, reads (status, lists, audit
// verify) work and a command that writes names the file and the cause
// instead of "unable to open database file (14)".
func TestReadOnlyDatabase(t *testing.T) {
	env, _ := driftConfig(t)
	dbDir := t.TempDir()
	env = append(env, "DAYTWO_DB="+filepath.Join(dbDir, "d.db"))
	var p proposeResult
	r := daytwo(t, env, "propose", "dev", "1.0.0", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || r.code != 0 {
		t.Fatalf("propose: %+v (%v)", r, err)
	}
	if r = daytwo(t, env, "run", p.ID); r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	ro := filepath.Join(readOnlyView(t, dbDir), "d.db")
	env = append(env, "DAYTWO_DB="+ro)
	for _, args := range [][]string{{"status"}, {"audit", "verify"}, {"audit", "list"}, {"update", "list", "--all"}, {"env", "show", "dev"}} {
		r := daytwo(t, env, args...)
		if r.code != 0 {
			t.Errorf("%s on a read-only database: %+v", strings.Join(args, " "), r)
		}
	}
	if r := daytwo(t, env, "update", "list", "--all"); !strings.Contains(r.stdout, p.ID) {
		t.Errorf("update list does not show %s: %+v", p.ID, r)
	}
	r = daytwo(t, env, "propose", "dev", "1.0.1")
	t.Logf("propose on a read-only database: %s", r.stderr)
	if r.code == 0 || !strings.Contains(r.stderr, ro) || !strings.Contains(r.stderr, "read-only") || strings.Contains(r.stderr, "(14)") {
		t.Fatalf("a write to a read-only database: %+v", r)
	}
	if os.Geteuid() == 0 && !strings.Contains(r.stderr, "read-only file system") {
		t.Fatalf("the cause is not named: %s", r.stderr)
	}
}

// TestDiskFullIsNamed: a write on a full disk says so and names the file,
// not "disk I/O error (4874)".
func TestDiskFullIsNamed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("filling a disk needs a private tmpfs mount (root)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	env, _ := driftConfig(t)
	path := filepath.Join(dir, "d.db")
	env = append(env, "DAYTWO_DB="+path)
	if r := daytwo(t, env, "status"); r.code != 0 {
		t.Fatalf("status: %+v", r)
	}
	f, err := os.Create(filepath.Join(dir, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{64 << 10, 512} {
		buf := make([]byte, n)
		for {
			if _, err := f.Write(buf); err != nil {
				break
			}
		}
	}
	f.Close()
	r := daytwo(t, env, "propose", "dev", "1.0.0")
	t.Logf("propose on a full disk: %s", r.stderr)
	if r.code == 0 || !strings.Contains(r.stderr, "disk is full") || !strings.Contains(r.stderr, path) {
		t.Fatalf("propose on a full disk: %+v", r)
	}
}
