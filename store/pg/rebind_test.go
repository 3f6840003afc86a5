package pg

import "testing"

func TestRebind(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT 1`:                               `SELECT 1`,
		`a = ? AND b = ?`:                        `a = $1 AND b = $2`,
		`x LIKE ? ESCAPE '\' AND y = '?' OR z=?`: `x LIKE $1 ESCAPE '\' AND y = '?' OR z=$2`,
		"a = ? -- it's a comment?\n AND b = ?":   "a = $1 -- it's a comment?\n AND b = $2",
		"-- trailing comment's ?":                "-- trailing comment's ?",
	} {
		if got := rebind(in); got != want {
			t.Errorf("rebind(%q) = %q, want %q", in, got, want)
		}
	}
}
