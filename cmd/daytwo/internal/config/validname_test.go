package config

import (
	"regexp"
	"strings"
	"testing"
)

// validName is the regexp it replaced, written by hand.
func TestValidNameIsTheRegexp(t *testing.T) {
	re := regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	cases := []string{"", "a", "prod", "prod-eu_1", "-a", "_a", "A", "aB", "a.b", "a b", strings.Repeat("a", 63), strings.Repeat("a", 64)}
	for c := 0; c < 256; c++ {
		cases = append(cases, string(rune(c)), "a"+string(byte(c)), string(byte(c))+"a")
	}
	for _, s := range cases {
		if got, want := validName(s), re.MatchString(s); got != want {
			t.Errorf("validName(%q) = %v, the regexp says %v", s, got, want)
		}
	}
}
