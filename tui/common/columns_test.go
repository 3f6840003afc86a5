package common

import (
	"slices"
	"testing"
)

// TestFittedSizesToContentThenShrinksByKeep: columns take their content's
// width; the room left goes to the Grow column; when the row is too wide
// the lowest Keep gives first, never below its Min.
func TestFittedSizesToContentThenShrinksByKeep(t *testing.T) {
	cols := []Column{{Title: "ID", Keep: 9}, {Title: "VERSION", Keep: 8}, {Title: "TEXT", Keep: 1, Grow: true, Min: 6}}
	rows := [][]string{{"u-fuspf2xq", "1.4.2-rc.1", "a long description of what happened"}}
	widths := func(cs []Column) []int {
		var w []int
		for _, c := range cs {
			w = append(w, c.Width)
		}
		return w
	}
	if got := widths(Fitted(cols, rows, 120)); !slices.Equal(got, []int{10, 10, 120 - 10 - 10 - 2}) {
		t.Errorf("wide: %v", got)
	}
	// 40 cells: the text gives (down to its Min) before the id or version.
	if got := widths(Fitted(cols, rows, 40)); !slices.Equal(got, []int{10, 10, 18}) {
		t.Errorf("narrow: %v", got)
	}
	// 20 cells: the text is at its Min, then the version gives; the id is
	// whole as long as anything else can give.
	got := widths(Fitted(cols, rows, 28))
	if got[0] != 10 || got[2] != 6 || got[1] != 28-10-6-2 {
		t.Errorf("narrower: %v", got)
	}
	if row := Row(Fitted(cols, rows, 40), rows[0]); len([]rune(row)) != 40 || row[:10] != "u-fuspf2xq" {
		t.Errorf("row %q", row)
	}
}

// TestFuzzyRankBestFirst: the filter is sahilm/fuzzy's: in-order
// subsequence, case-insensitive, best match first.
func TestFuzzyRankBestFirst(t *testing.T) {
	items := []string{"u-0001 production 1.3.0 succeeded", "u-0002 staging 1.4.2 succeeded", "u-0003 production 1.4.2 awaiting_approval"}
	text := func(i int) string { return items[i] }
	if got := FuzzyRank("", len(items), text); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("empty pattern: %v", got)
	}
	got := FuzzyRank("prod142", len(items), text)
	if !slices.Equal(got, []int{2}) {
		t.Errorf("prod142: %v, want only the production 1.4.2 update", got)
	}
	if got := FuzzyRank("STAGING", len(items), text); !slices.Equal(got, []int{1}) {
		t.Errorf("case: %v", got)
	}
	if got := FuzzyRank("1.4.2", len(items), text); len(got) != 2 || got[0] != 1 && got[0] != 2 {
		t.Errorf("1.4.2: %v", got)
	}
}
