//go:build !unix

package store

// diskFull cannot tell on this platform; SQLITE_FULL is still reported.
func diskFull(string) bool { return false }
