package tui

import (
	"strings"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/lipgloss"

	"github.com/daytwo/daytwo/tui/common"
	"github.com/daytwo/daytwo/tui/styles"
)

func newHelp(s *styles.Styles) help.Model {
	h := help.New()
	h.Styles.ShortKey = s.Help
	h.Styles.ShortDesc = s.Help
	h.Styles.FullKey = s.Section.Title
	h.Styles.FullDesc = s.Section.Value
	return h
}

// View renders header, banner, body and footer, exactly filling the
// terminal.
func (m *Model) View() string {
	w := m.common.Width
	var b strings.Builder
	b.WriteString(m.header())
	if banner := m.conn.View(); banner != "" {
		b.WriteString("\n" + banner)
	}
	b.WriteString("\n")
	var body string
	switch {
	case m.dialog != nil:
		body = common.Fit(m.dialog.View(), w, m.bodyHeight())
	case m.showHelp:
		body = common.Fit(m.fullHelp(), w, m.bodyHeight())
	default:
		body = m.page(m.active()).View()
	}
	status := m.statusLines()
	if extra := len(status) - 1; extra > 0 {
		// An error too long for one line (a refusal saying who may decide)
		// takes its room from the bottom of the body.
		lines := strings.Split(body, "\n")
		body = strings.Join(lines[:max(len(lines)-extra, 1)], "\n")
	}
	b.WriteString(body)
	b.WriteString("\n" + strings.Join(status, "\n"))
	b.WriteString("\n" + common.PadRight(m.footer(), w))
	return b.String()
}

// footer is the short help: the keys that fit, then "…", and "? help"
// always (the way to every other key), however narrow the terminal.
// (bubbles' help adds an item that does not fit when the ellipsis does
// not fit either, so the footer fits the items itself.)
func (m *Model) footer() string {
	h := m.help
	sep := h.Styles.ShortSeparator.Inline(true).Render(h.ShortSeparator)
	item := func(k key.Binding) string {
		return h.Styles.ShortKey.Inline(true).Render(k.Help().Key) + " " + h.Styles.ShortDesc.Inline(true).Render(k.Help().Desc)
	}
	var tail string
	var rest []key.Binding
	for _, k := range m.ShortHelp() {
		switch {
		case !k.Enabled():
		case len(k.Keys()) > 0 && k.Keys()[0] == "?":
			tail = item(k)
		default:
			rest = append(rest, k)
		}
	}
	room := m.common.Width
	if tail != "" {
		room -= lipgloss.Width(sep) + lipgloss.Width(tail)
	}
	ellipsis := h.Styles.Ellipsis.Inline(true).Render(h.Ellipsis)
	var parts []string
	used := 0
	for i, k := range rest {
		it := item(k)
		w := lipgloss.Width(it)
		if len(parts) > 0 {
			w += lipgloss.Width(sep)
		}
		// the last item needs no room for an ellipsis after it
		need := w
		if i < len(rest)-1 {
			need += 1 + lipgloss.Width(ellipsis)
		}
		if used+need > room {
			if len(parts) > 0 && used+1+lipgloss.Width(ellipsis) <= room {
				parts[len(parts)-1] += " " + ellipsis
			}
			break
		}
		parts = append(parts, it)
		used += w
	}
	if tail != "" {
		parts = append(parts, tail)
	}
	return strings.Join(parts, sep)
}

func (m *Model) header() string {
	s := m.common.Styles
	crumbs := make([]string, len(m.stack))
	for i, p := range m.stack {
		crumbs[i] = m.page(p).Title()
	}
	left := s.App.Title.Render("daytwo") + s.App.Separator.Render(" ▸ ") + s.App.Breadcrumb.Render(strings.Join(crumbs, " ▸ "))
	var right []string
	if m.common.ReadOnly {
		right = append(right, s.App.ReadOnly.Render("READ-ONLY"))
	}
	r := strings.Join(append(right, m.conn.Badges()...), " ")
	gap := m.common.Width - lipgloss.Width(left) - lipgloss.Width(r)
	if gap < 1 {
		return common.PadRight(left, m.common.Width)
	}
	return left + strings.Repeat(" ", gap) + r
}

// statusLines is the palette while it is open, else the running tasks and
// the flash on one line, or an error flash too wide for one line on up to
// three (when no task runs).
func (m *Model) statusLines() []string {
	w := m.common.Width
	if m.palette.Active() {
		return []string{common.PadRight(m.palette.View(), w)}
	}
	if m.tasks.Len() == 0 {
		if lines := m.flash.Wrapped(w); lines != nil {
			return lines
		}
	}
	var parts []string
	for _, p := range []string{m.tasks.View(), m.flash.View()} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return []string{common.PadRight(strings.Join(parts, "  "), w)}
}

func (m *Model) fullHelp() string {
	groups := append(m.page(m.active()).FullHelp(), m.keys.FullHelp()...)
	h := m.help
	h.ShowAll = true
	return m.common.Styles.Section.Title.Render("Keys: "+m.page(m.active()).Title()) + "\n\n" + h.FullHelpView(groups) +
		"\n\n" + m.common.Styles.Help.Render("⚠ marks dangerous actions: disabled in read-only mode, always confirmed.") +
		"\n" + m.common.Styles.Help.Render("Palette (:) — "+paletteHelp) + m.bannerHelp()
}

// bannerHelp is the demo's banner under the help (the alternate screen
// hides what the demo printed): the config path, how to reach it from
// another terminal.
func (m *Model) bannerHelp() string {
	if strings.TrimSpace(m.common.Banner) == "" {
		return ""
	}
	s := m.common.Styles
	out := "\n\n" + s.Section.Title.Render("This console")
	for _, l := range strings.Split(strings.TrimSpace(m.common.Banner), "\n") {
		out += "\n" + s.Section.Value.Render(strings.TrimSpace(l))
	}
	return out
}

// ShortHelp implements help.KeyMap: the active screen's keys, then the
// global ones (or the dialog's or palette's while it is open).
func (m *Model) ShortHelp() []key.Binding {
	switch {
	case m.dialog != nil:
		return m.dialog.ShortHelp()
	case m.palette.Active():
		return m.palette.ShortHelp()
	case m.showHelp:
		return []key.Binding{m.keys.Help, m.keys.Back}
	}
	km := m.keys
	km.Quit.SetEnabled(!m.inputFocused())
	return append(m.page(m.active()).ShortHelp(), km.ShortHelp()...)
}

// FullHelp implements help.KeyMap.
func (m *Model) FullHelp() [][]key.Binding {
	return append(m.page(m.active()).FullHelp(), m.keys.FullHelp()...)
}

// SetSize implements the Component contract for embedding the console.
func (m *Model) SetSize(w, h int) { m.setSize(w, h) }
