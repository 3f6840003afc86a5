package common

import (
	"slices"
	"testing"
)

// TestWrapCountsRunesNotBytes: the dialog wrapped its description by bytes,
// so a line with "→" or "⚠" broke early; Wrap counts runes.
func TestWrapCountsRunesNotBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		w    int
		want []string
	}{
		{"1.4.1 → 1.4.2 on production", 13, []string{"1.4.1 → 1.4.2", "on production"}},
		{"a bb ccc", 4, []string{"a bb", "ccc"}},
		{"averyveryverylongword x", 5, []string{"averyveryverylongword", "x"}},
		{"", 10, nil},
	} {
		if got := Wrap(tc.in, tc.w); !slices.Equal(got, tc.want) {
			t.Errorf("Wrap(%q, %d) = %q, want %q", tc.in, tc.w, got, tc.want)
		}
	}
}
