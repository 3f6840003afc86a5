package common

import (
	"sort"

	"github.com/charmbracelet/lipgloss"
	"github.com/sahilm/fuzzy"
)

// Fitted sizes columns to their content (k9s's way): each column takes
// the width of its widest cell or title; when the row does not fit in
// total cells, the columns with the lowest Keep shrink first, each down to
// its Min (default: its title's width, at least 4). A column marked Grow
// takes whatever room is left over. A Width set on a column is ignored:
// the content decides. cells are the rows shown, styled or not.
func Fitted(cols []Column, cells [][]string, total int) []Column {
	out := make([]Column, len(cols))
	copy(out, cols)
	used := 0
	for i := range out {
		w := lipgloss.Width(out[i].Title)
		for _, row := range cells {
			if i < len(row) {
				w = max(w, lipgloss.Width(row[i]))
			}
		}
		out[i].Width = max(w, 1)
		used += out[i].Width
	}
	used += max(len(out)-1, 0) // separators
	if over := used - total; over > 0 {
		order := make([]int, len(out))
		for i := range order {
			order[i] = i
		}
		// Lowest Keep first; among equals the rightmost gives first.
		sort.SliceStable(order, func(a, b int) bool {
			ka, kb := out[order[a]].Keep, out[order[b]].Keep
			if ka != kb {
				return ka < kb
			}
			return order[a] > order[b]
		})
		for _, i := range order {
			if over <= 0 {
				break
			}
			lo := out[i].Min
			if lo <= 0 {
				lo = max(lipgloss.Width(out[i].Title), 4)
			}
			give := min(max(out[i].Width-lo, 0), over)
			out[i].Width -= give
			over -= give
		}
	} else if over < 0 {
		for i := range out {
			if out[i].Grow {
				out[i].Width -= over
				break
			}
		}
	}
	return out
}

// FuzzyRank returns the indexes of the n items whose text (text(i))
// matches pattern, best match first (sahilm/fuzzy, the matcher bubbles'
// list uses); an empty pattern keeps every item in order.
func FuzzyRank(pattern string, n int, text func(i int) string) []int {
	out := make([]int, 0, n)
	if pattern == "" {
		for i := range n {
			out = append(out, i)
		}
		return out
	}
	for _, m := range fuzzy.FindFrom(pattern, source{n: n, text: text}) {
		out = append(out, m.Index)
	}
	return out
}

type source struct {
	n    int
	text func(int) string
}

func (s source) String(i int) string { return s.text(i) }
func (s source) Len() int            { return s.n }
