package common

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/daytwo/daytwo/ops"
)

// Fit pads or cuts s to exactly h lines of at most w cells, each padded to
// w, so that every screen fills its area (and resizes cleanly).
func Fit(s string, w, h int) string {
	if h <= 0 {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > h {
		lines = lines[:h]
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	for i, l := range lines {
		lines[i] = PadRight(l, w)
	}
	return strings.Join(lines, "\n")
}

// PadRight cuts s to w cells (with an ellipsis) or pads it with spaces.
func PadRight(s string, w int) string {
	if w <= 0 {
		return ""
	}
	n := lipgloss.Width(s)
	if n > w {
		return ansi.Truncate(s, w, "…")
	}
	return s + strings.Repeat(" ", w-n)
}

// Truncate cuts s to w cells with an ellipsis.
func Truncate(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if lipgloss.Width(s) <= w {
		return s
	}
	return ansi.Truncate(s, w, "…")
}

// Column is one column of a table: a header and its width in cells, set
// by Fitted from what the column shows.
type Column struct {
	Title string
	Width int
	// Keep ranks what Fitted shrinks last (ids and versions high, free
	// text low); Min is the narrowest it shrinks a column to; Grow takes
	// the room left over.
	Keep int
	Min  int
	Grow bool
}

// Row renders cells in columns separated by a space; styled cells keep
// their style and are cut by visible width.
func Row(cols []Column, cells []string) string {
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteByte(' ')
		}
		cell := ""
		if i < len(cells) {
			cell = cells[i]
		}
		b.WriteString(PadRight(cell, c.Width))
	}
	return b.String()
}

// Header renders the column titles.
func Header(cols []Column) string {
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.Title
	}
	return Row(cols, titles)
}

// Window returns the first visible index so that cursor stays inside a
// window of height rows starting at offset.
func Window(offset, cursor, height, total int) int {
	if height <= 0 {
		return 0
	}
	if cursor < offset {
		offset = cursor
	}
	if cursor >= offset+height {
		offset = cursor - height + 1
	}
	offset = min(offset, max(total-height, 0))
	return max(offset, 0)
}

// Clamp keeps v within [lo, hi] (hi < lo gives lo).
func Clamp(v, lo, hi int) int {
	if v > hi {
		v = hi
	}
	if v < lo {
		v = lo
	}
	return v
}

// Duration renders d compactly: 45s, 3m05s, 2h10m.
func Duration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return d.String()
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int((d%time.Minute)/time.Second))
	default:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int((d%time.Hour)/time.Minute))
	}
}

// Timestamp renders t in UTC to the minute, or "—" for the zero time.
func Timestamp(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format(ops.TimeLayout)
}

// Or returns s, or alt when s is empty.
func Or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// Wrap breaks s into lines of at most w runes at spaces (a word longer
// than w stands alone on its line).
func Wrap(s string, w int) []string {
	var out []string
	line := ""
	for _, word := range strings.Fields(s) {
		switch {
		case line == "":
			line = word
		case len([]rune(line))+1+len([]rune(word)) <= w:
			line += " " + word
		default:
			out = append(out, line)
			line = word
		}
	}
	if line != "" {
		out = append(out, line)
	}
	return out
}

// Rows renders the rows from..from+height of a table of n rows, the row at
// cursor highlighted across the width.
func (c Common) Rows(from, cursor, n, height int, row func(i int) string) []string {
	var out []string
	for i := from; i < n && i < from+height; i++ {
		r := row(i)
		if i == cursor {
			r = c.Styles.Table.Selected.Render(PadRight(r, c.Width))
		}
		out = append(out, r)
	}
	return out
}

// Fact is one labelled line of a selected row's summary ("gate       …"):
// the label padded to 10 cells, cut to the width.
func (c Common) Fact(label, value string) string {
	s := c.Styles
	return Truncate(s.Section.Label.Render(fmt.Sprintf("%-10s", label)+" ")+s.Section.Value.Render(value), c.Width)
}

// GateWords says whether an environment's updates need a change.
func GateWords(env ops.Environment) string {
	if env.RequiresChange {
		return "every update needs an approved ServiceNow change"
	}
	return "no change needed"
}
