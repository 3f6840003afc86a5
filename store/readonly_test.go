package store

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daytwo/daytwo/ops"
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

// smallDisk mounts a tmpfs of size (root only; skipped otherwise).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	mnt := t.TempDir()
	if os.Geteuid() != 0 {
		t.Skip("filling a disk needs a private tmpfs mount (root)")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	return mnt
}

func fillDisk(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	small := make([]byte, 512)
	for {
		if _, err := f.Write(small); err != nil {
			return
		}
	}
}

func TestReadOnlyDatabaseServesReadsAndNamesTheCause(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	db, err := Open(ctx, filepath.Join(src, "d.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendEvents(t, db, 3)
	db.Close()
	ro := filepath.Join(readOnlyView(t, src), "d.db")

	db, err = Open(ctx, ro, Options{})
	if err != nil {
		t.Fatalf("open read-only: %v", err)
	}
	defer db.Close()
	if db.ReadOnly() == "" {
		t.Fatal("not detected as read-only")
	}
	res, err := db.VerifyAudit(ctx)
	if err != nil || !res.OK || res.Events != 3 {
		t.Fatalf("verify on a read-only database: %+v, %v", res, err)
	}
	if evs, err := db.ListEvents(ctx, ops.EventFilter{}); err != nil || len(evs) != 3 {
		t.Fatalf("list: %d, %v", len(evs), err)
	}
	_, err = db.AppendEvent(ctx, ops.Event{Actor: "a", Action: "x"})
	if !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), ro) || strings.Contains(err.Error(), "(14)") {
		t.Fatalf("write to a read-only database: %v", err)
	}
	if os.Geteuid() == 0 && !strings.Contains(err.Error(), "read-only file system") {
		t.Fatalf("cause not named: %v", err)
	}
}

func TestDiskFullIsNamed(t *testing.T) {
	ctx := context.Background()
	dir := smallDisk(t, "2m")
	path := filepath.Join(dir, "d.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	appendEvents(t, db, 3)
	fillDisk(t, dir)
	for i := 0; ; i++ {
		_, err = db.AppendEvent(ctx, ops.Event{Actor: "a", Action: "x", Detail: map[string]any{"pad": strings.Repeat("x", 20000)}})
		if err != nil || i > 100 {
			break
		}
	}
	if !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("write on a full disk: %v", err)
	}
}
