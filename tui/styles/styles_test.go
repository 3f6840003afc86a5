package styles

import (
	"strings"
	"testing"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// TestThemes: console.theme picks the palette, NO_COLOR forces none, and a
// bad name is refused naming the key.
func TestThemes(t *testing.T) {
	for _, tc := range []struct{ name, noColor, want string }{
		{"", "", ThemeAuto},
		{"dark", "", ThemeDark},
		{"light", "", ThemeLight},
		{"none", "", ThemeNone},
		{"dark", "1", ThemeNone},
		{"", "yes", ThemeNone},
	} {
		got, err := Resolve(tc.name, tc.noColor)
		if err != nil || got != tc.want {
			t.Errorf("Resolve(%q, NO_COLOR=%q) = %q, %v; want %q", tc.name, tc.noColor, got, err, tc.want)
		}
	}
	if _, err := Resolve("solarized", ""); err == nil || !strings.Contains(err.Error(), "console.theme") || !strings.Contains(err.Error(), "solarized") {
		t.Errorf("a bad theme: %v", err)
	}
	none, err := Named(ThemeNone)
	if err != nil {
		t.Fatal(err)
	}
	if !none.Table.Selected.GetReverse() {
		t.Error("without colour the selected row is not in reverse video")
	}
	lipgloss.SetColorProfile(termenv.TrueColor)
	if out := none.Status.Bad.Render("x") + none.Table.Selected.Render("x"); strings.Contains(out, "38;2") || strings.Contains(out, "48;2") {
		t.Errorf("theme none renders colour: %q", out)
	}
	dark, _ := Named(ThemeDark)
	light, _ := Named(ThemeLight)
	if out := dark.Status.Bad.Render("x"); !strings.Contains(out, "38;2") {
		t.Errorf("theme dark renders no colour: %q", out)
	}
	if dark.ProgressColor != DefaultTheme().OK.Dark || light.ProgressColor != DefaultTheme().OK.Light {
		t.Errorf("dark/light do not pin the palette: %q %q", dark.ProgressColor, light.ProgressColor)
	}
}
