//go:build unix

package store

import "golang.org/x/sys/unix"

// diskFull reports whether the file system holding dir has no block left
// for an unprivileged writer, which is how SQLite's I/O errors on a full
// disk (e.g. SQLITE_IOERR_SHMSIZE, "disk I/O error (4874)") are told apart
// from other I/O errors.
func diskFull(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Bavail == 0 || (st.Files > 0 && st.Ffree == 0)
}
