package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The import rules of ARCHITECTURE.md, enforced (tailscale's deptest idea):
// ops imports no adapter, tui talks to ops only, itsm and store never import
// each other, the simulator is a ServiceNow and knows nothing of daytwo, and
// nothing imports the composition root.

const module = "github.com/daytwo/daytwo"

type importRule struct {
	pkg    string   // package prefix the rule applies to
	banned []string // import prefixes it may not use
	why    string
}

var importRules = []importRule{
	{module + "/ops", []string{module + "/store", module + "/itsm", module + "/tui", module + "/cmd", module + "/fixtures",
		"modernc.org/sqlite", "github.com/go-resty/", "github.com/charmbracelet/", "github.com/spf13/", "github.com/knadh/koanf"},
		"ops is the domain: it imports no adapter, UI or config library"},
	{module + "/tui", []string{module + "/store", module + "/itsm", module + "/cmd", "modernc.org/sqlite", "github.com/go-resty/"},
		"tui talks to ops only"},
	{module + "/itsm", []string{module + "/store", module + "/tui", module + "/cmd"},
		"itsm and store never import each other; adapters never import the UI or cmd"},
	{module + "/store", []string{module + "/itsm", module + "/tui", module + "/cmd"},
		"itsm and store never import each other; adapters never import the UI or cmd"},
	{module + "/itsm/snowsim", []string{module + "/ops", module + "/store", module + "/tui", module + "/cmd", module + "/itsm"},
		"the simulator is a ServiceNow: it must not share code with the client it tests"},
}

// violations lists every import in graph that breaks a rule. A package
// matches a rule when its path equals the rule's prefix or lies below it;
// the most specific rule and every broader one apply.
func violations(graph map[string][]string, rules []importRule) []string {
	var out []string
	for pkg, imports := range graph {
		for _, r := range rules {
			if !under(pkg, r.pkg) {
				continue
			}
			for _, imp := range imports {
				for _, b := range r.banned {
					if under(imp, b) {
						out = append(out, pkg+" imports "+imp+": "+r.why)
					}
				}
			}
		}
		if !under(pkg, module+"/cmd") {
			for _, imp := range imports {
				if under(imp, module+"/cmd") {
					out = append(out, pkg+" imports "+imp+": nothing imports the composition root")
				}
			}
		}
	}
	return out
}

// under reports whether path is prefix or lies below it; a prefix ending
// in "/" matches anything that starts with it.
func under(path, prefix string) bool {
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(path, prefix)
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	graph := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		graph[f[0]] = f[1:]
	}
	if _, ok := graph[module+"/ops"]; !ok {
		t.Fatalf("go list did not see %s/ops; output:\n%s", module, out)
	}
	for _, v := range violations(graph, importRules) {
		t.Error(v)
	}
}

// TestImportRulesCatchViolations proves the checker can fail.
func TestImportRulesCatchViolations(t *testing.T) {
	bad := map[string][]string{
		module + "/ops":          {"context", module + "/store"},
		module + "/ops/policy":   {"modernc.org/sqlite"},
		module + "/tui/envs":     {module + "/ops", module + "/itsm"},
		module + "/itsm":         {module + "/store"},
		module + "/store":        {module + "/itsm", module + "/ops"},
		module + "/itsm/snowsim": {module + "/fixtures", module + "/ops"},
		module + "/fixtures":     {module + "/cmd/daytwo/internal/config"},
		module + "/storex":       {module + "/itsm"}, // not "store": prefix match must respect path boundaries
	}
	got := violations(bad, importRules)
	want := []string{
		module + "/ops imports " + module + "/store",
		module + "/ops/policy imports modernc.org/sqlite",
		module + "/tui/envs imports " + module + "/itsm",
		module + "/itsm imports " + module + "/store",
		module + "/store imports " + module + "/itsm",
		module + "/itsm/snowsim imports " + module + "/ops",
		module + "/fixtures imports " + module + "/cmd/daytwo/internal/config",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d violations, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || strings.HasPrefix(g, w+":")
		}
		if !found {
			t.Errorf("missing violation %q in:\n%s", w, strings.Join(got, "\n"))
		}
	}
}
