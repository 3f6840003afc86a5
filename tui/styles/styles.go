// Package styles holds the console's one set of lipgloss styles, built once
// from a theme and passed to every screen through common.Common. The
// theme is console.theme: auto (adaptive colours: the terminal's
// background decides), dark, light, or none (no colour at all: bold,
// italics and reverse video only). NO_COLOR in the environment forces
// none whatever the setting (https://no-color.org).
package styles

import (
	"fmt"

	"github.com/charmbracelet/lipgloss"
)

// Theme names accepted by Named (console.theme).
const (
	ThemeAuto  = "auto"
	ThemeDark  = "dark"
	ThemeLight = "light"
	ThemeNone  = "none"
)

// Resolve is the theme the console uses for name (console.theme, "" for
// auto) given NO_COLOR's value: NO_COLOR set to anything non-empty means
// none.
func Resolve(name, noColor string) (string, error) {
	if name == "" {
		name = ThemeAuto
	}
	switch name {
	case ThemeAuto, ThemeDark, ThemeLight, ThemeNone:
	default:
		return "", fmt.Errorf("console.theme: %q is not one of auto, dark, light, none", name)
	}
	if noColor != "" {
		return ThemeNone, nil
	}
	return name, nil
}

// Named builds the styles of a resolved theme name (see Resolve).
func Named(name string) (*Styles, error) {
	t := DefaultTheme()
	switch name {
	case "", ThemeAuto:
		return New(t), nil
	case ThemeDark, ThemeLight:
		return New(t.fixed(name == ThemeDark)), nil
	case ThemeNone:
		s := New(Theme{})
		s.Table.Selected = lipgloss.NewStyle().Bold(true).Reverse(true)
		s.ProgressColor = ""
		return s, nil
	}
	return nil, fmt.Errorf("console.theme: %q is not one of auto, dark, light, none", name)
}

// fixed pins every adaptive colour to its dark or light variant, so the
// terminal's background is never queried.
func (t Theme) fixed(dark bool) Theme {
	pin := func(c lipgloss.AdaptiveColor) lipgloss.AdaptiveColor {
		if dark {
			return lipgloss.AdaptiveColor{Light: c.Dark, Dark: c.Dark}
		}
		return lipgloss.AdaptiveColor{Light: c.Light, Dark: c.Light}
	}
	return Theme{
		Accent: pin(t.Accent), Muted: pin(t.Muted), Text: pin(t.Text), OK: pin(t.OK), Warn: pin(t.Warn),
		Danger: pin(t.Danger), Info: pin(t.Info), SelectB: pin(t.SelectB),
	}
}

// Theme is the palette the styles are built from.
type Theme struct {
	Accent  lipgloss.AdaptiveColor
	Muted   lipgloss.AdaptiveColor
	Text    lipgloss.AdaptiveColor
	OK      lipgloss.AdaptiveColor
	Warn    lipgloss.AdaptiveColor
	Danger  lipgloss.AdaptiveColor
	Info    lipgloss.AdaptiveColor
	SelectB lipgloss.AdaptiveColor
}

// DefaultTheme is daytwo's palette.
func DefaultTheme() Theme {
	return Theme{
		Accent:  lipgloss.AdaptiveColor{Light: "#5A3FC0", Dark: "#A78BFA"},
		Muted:   lipgloss.AdaptiveColor{Light: "#6B7280", Dark: "#9CA3AF"},
		Text:    lipgloss.AdaptiveColor{Light: "#111827", Dark: "#E5E7EB"},
		OK:      lipgloss.AdaptiveColor{Light: "#047857", Dark: "#34D399"},
		Warn:    lipgloss.AdaptiveColor{Light: "#B45309", Dark: "#FBBF24"},
		Danger:  lipgloss.AdaptiveColor{Light: "#B91C1C", Dark: "#F87171"},
		Info:    lipgloss.AdaptiveColor{Light: "#1D4ED8", Dark: "#60A5FA"},
		SelectB: lipgloss.AdaptiveColor{Light: "#E0E7FF", Dark: "#312E81"},
	}
}

// Styles is every style the console uses, grouped by area.
type Styles struct {
	// ProgressColor fills progress bars (bubbles/progress takes a colour,
	// not a style); the theme's OK colour for this terminal's background.
	ProgressColor string
	App           struct {
		Title      lipgloss.Style
		Breadcrumb lipgloss.Style
		Separator  lipgloss.Style
		Offline    lipgloss.Style
		Online     lipgloss.Style
		ReadOnly   lipgloss.Style
	}
	Table struct {
		Header   lipgloss.Style
		Row      lipgloss.Style
		Selected lipgloss.Style
		Empty    lipgloss.Style
	}
	Flash struct {
		Info  lipgloss.Style
		Warn  lipgloss.Style
		Error lipgloss.Style
	}
	Status struct {
		OK      lipgloss.Style
		Warn    lipgloss.Style
		Bad     lipgloss.Style
		Pending lipgloss.Style
		Muted   lipgloss.Style
	}
	Section struct {
		Title lipgloss.Style
		Label lipgloss.Style
		Value lipgloss.Style
	}
	Badge struct {
		Gated   lipgloss.Style
		Drift   lipgloss.Style
		Behind  lipgloss.Style
		Lease   lipgloss.Style
		Alert   lipgloss.Style
		Running lipgloss.Style
	}
	Dialog struct {
		Box    lipgloss.Style
		Title  lipgloss.Style
		Danger lipgloss.Style
		Hint   lipgloss.Style
		OK     lipgloss.Style
		NotOK  lipgloss.Style
	}
	Diff struct {
		Add lipgloss.Style
		Del lipgloss.Style
	}
	Log struct {
		Time   lipgloss.Style
		Target lipgloss.Style
		Daytwo lipgloss.Style
		Stderr lipgloss.Style
	}
	Help   lipgloss.Style
	Prompt lipgloss.Style
}

// New builds the styles from a theme.
func New(t Theme) *Styles {
	s := &Styles{}
	s.App.Title = lipgloss.NewStyle().Bold(true).Foreground(t.Accent)
	s.App.Breadcrumb = lipgloss.NewStyle().Foreground(t.Text)
	s.App.Separator = lipgloss.NewStyle().Foreground(t.Muted)
	s.App.Offline = lipgloss.NewStyle().Bold(true).Foreground(t.Danger)
	s.App.Online = lipgloss.NewStyle().Foreground(t.OK)
	s.App.ReadOnly = lipgloss.NewStyle().Bold(true).Foreground(t.Warn)

	s.Table.Header = lipgloss.NewStyle().Bold(true).Foreground(t.Muted)
	s.Table.Row = lipgloss.NewStyle().Foreground(t.Text)
	s.Table.Selected = lipgloss.NewStyle().Bold(true).Foreground(t.Accent).Background(t.SelectB)
	s.Table.Empty = lipgloss.NewStyle().Italic(true).Foreground(t.Muted)

	s.Flash.Info = lipgloss.NewStyle().Foreground(t.Info)
	s.Flash.Warn = lipgloss.NewStyle().Foreground(t.Warn)
	s.Flash.Error = lipgloss.NewStyle().Bold(true).Foreground(t.Danger)

	s.Status.OK = lipgloss.NewStyle().Foreground(t.OK)
	s.ProgressColor = t.OK.Light
	if t.OK.Light != t.OK.Dark && lipgloss.HasDarkBackground() {
		s.ProgressColor = t.OK.Dark
	}
	s.Status.Warn = lipgloss.NewStyle().Foreground(t.Warn)
	s.Status.Bad = lipgloss.NewStyle().Bold(true).Foreground(t.Danger)
	s.Status.Pending = lipgloss.NewStyle().Foreground(t.Info)
	s.Status.Muted = lipgloss.NewStyle().Foreground(t.Muted)

	s.Section.Title = lipgloss.NewStyle().Bold(true).Foreground(t.Accent)
	s.Section.Label = lipgloss.NewStyle().Foreground(t.Muted)
	s.Section.Value = lipgloss.NewStyle().Foreground(t.Text)

	s.Badge.Gated = lipgloss.NewStyle().Foreground(t.Warn)
	s.Badge.Drift = lipgloss.NewStyle().Foreground(t.Danger)
	s.Badge.Behind = lipgloss.NewStyle().Foreground(t.Info)
	s.Badge.Lease = lipgloss.NewStyle().Foreground(t.Accent)
	s.Badge.Alert = lipgloss.NewStyle().Bold(true).Foreground(t.Danger)
	s.Badge.Running = lipgloss.NewStyle().Bold(true).Foreground(t.Info)

	s.Dialog.Box = lipgloss.NewStyle().Border(lipgloss.NormalBorder()).BorderForeground(t.Accent).Padding(0, 1)
	s.Dialog.Title = lipgloss.NewStyle().Bold(true).Foreground(t.Text)
	s.Dialog.Danger = lipgloss.NewStyle().Bold(true).Foreground(t.Danger)
	s.Dialog.Hint = lipgloss.NewStyle().Foreground(t.Muted)
	s.Dialog.OK = lipgloss.NewStyle().Bold(true).Foreground(t.OK)
	s.Dialog.NotOK = lipgloss.NewStyle().Foreground(t.Muted)

	s.Diff.Add = lipgloss.NewStyle().Foreground(t.OK)
	s.Diff.Del = lipgloss.NewStyle().Foreground(t.Danger)

	s.Log.Time = lipgloss.NewStyle().Foreground(t.Muted)
	s.Log.Target = lipgloss.NewStyle().Foreground(t.Accent)
	s.Log.Daytwo = lipgloss.NewStyle().Foreground(t.Info)
	s.Log.Stderr = lipgloss.NewStyle().Foreground(t.Warn)

	s.Help = lipgloss.NewStyle().Foreground(t.Muted)
	s.Prompt = lipgloss.NewStyle().Bold(true).Foreground(t.Accent)
	return s
}

// Default returns the styles of the default theme.
func Default() *Styles { return New(DefaultTheme()) }
