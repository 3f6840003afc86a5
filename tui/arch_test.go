package tui

import (
	"os/exec"
	"path"
	"slices"
	"strings"
	"testing"
)

const tuiPkg = "github.com/daytwo/daytwo/tui"

// shared are the tui packages every screen and component may use: they
// hold what screens share, so that no screen needs another.
var shared = []string{tuiPkg + "/common", tuiPkg + "/styles", tuiPkg + "/actions"}

// componentViolations lists every dependency of a tui sub-package (a
// screen, the dialog, a root component) on another sub-package that is not
// a shared one: only the root wires screens and components together.
func componentViolations(deps map[string][]string) []string {
	var out []string
	for pkg, ds := range deps {
		if pkg == tuiPkg || !strings.HasPrefix(pkg, tuiPkg+"/") {
			continue
		}
		for _, d := range ds {
			if d == pkg || !strings.HasPrefix(d, tuiPkg+"/") || slices.Contains(shared, d) {
				continue
			}
			out = append(out, pkg+" depends on "+d+": move what they share to tui/common")
		}
	}
	slices.Sort(out)
	return out
}

func TestComponentViolationsFindsAScreenImportingAScreen(t *testing.T) {
	got := componentViolations(map[string][]string{
		tuiPkg:               {tuiPkg + "/detail", tuiPkg + "/updates"},
		tuiPkg + "/detail":   {"fmt", tuiPkg + "/common", tuiPkg + "/styles", tuiPkg + "/updates"},
		tuiPkg + "/updates":  {tuiPkg + "/actions", tuiPkg + "/common"},
		tuiPkg + "/conn":     {tuiPkg + "/outbox"},
		tuiPkg + "/common":   {tuiPkg + "/styles"},
		"github.com/x/other": {tuiPkg + "/updates"},
	})
	want := []string{
		tuiPkg + "/conn depends on " + tuiPkg + "/outbox: move what they share to tui/common",
		tuiPkg + "/detail depends on " + tuiPkg + "/updates: move what they share to tui/common",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestNoScreenImportsAnotherScreen checks the real packages' transitive
// dependencies (go list -deps): no screen or component package reaches
// another one except through tui/common, tui/styles and tui/actions.
func TestNoScreenImportsAnotherScreen(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		deps[f[0]] = f[1:]
	}
	for _, p := range []string{"detail", "updates", "conn", "palette"} { // the listing covers the tree
		if _, ok := deps[path.Join(tuiPkg, p)]; !ok {
			t.Fatalf("go list did not list %s: %v", p, deps)
		}
	}
	if v := componentViolations(deps); len(v) > 0 {
		t.Errorf("tui packages depend on each other:\n%s", strings.Join(v, "\n"))
	}
}
