package ops

import (
	"regexp"
	"strings"
	"testing"
)

// versionLike is the regexp it replaced, written by hand.
func TestVersionLikeIsTheRegexp(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)
	cases := []string{
		"", "1", "1.2.3", "v1.2.3-rc.1+build_7", "-1", ".1", "_1", "+1", "1/2", "1 2", "1\n", "é1", "1é",
		"$(x)", strings.Repeat("a", 128), strings.Repeat("a", 129), "a" + strings.Repeat("-", 127), "a" + strings.Repeat("-", 128),
	}
	for c := 0; c < 256; c++ {
		cases = append(cases, string(rune(c)), "a"+string(byte(c)), string(byte(c))+"a")
	}
	for _, s := range cases {
		if got, want := versionLike(s), re.MatchString(s); got != want {
			t.Errorf("versionLike(%q) = %v, the regexp says %v", s, got, want)
		}
	}
}

func FuzzVersionLike(f *testing.F) {
	re := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)
	f.Add("1.2.3")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := versionLike(s), re.MatchString(s); got != want {
			t.Errorf("versionLike(%q) = %v, the regexp says %v", s, got, want)
		}
	})
}
