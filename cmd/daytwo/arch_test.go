package main

import (
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// Commands are thin: they read and write through the service (ops), and
// only the wiring knows the store packages. The wiring is wire.go and
// wire_*.go (wire_store.go opens the store and does store administration:
// `store copy`, the schema version).

// isWiring reports whether a file of cmd/daytwo is wiring.
func isWiring(name string) bool {
	return name == "wire.go" || strings.HasPrefix(name, "wire_") && strings.HasSuffix(name, ".go")
}

// storeImporters lists the non-test, non-wiring Go files in dir that
// import the store or any package below it.
func storeImporters(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	commands := 0
	for _, f := range files {
		name := filepath.Base(f)
		if strings.HasSuffix(name, "_test.go") || isWiring(name) {
			continue
		}
		commands++
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range parsed.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if under(path, module+"/store") {
				out = append(out, name+" imports "+path)
			}
		}
	}
	if commands == 0 {
		t.Fatalf("no command files in %s: the check would pass on nothing", dir)
	}
	return out
}

func TestOnlyWiringImportsTheStore(t *testing.T) {
	if bad := storeImporters(t, "."); len(bad) > 0 {
		t.Errorf("commands read through ops (ops/readmodels.go), only wire.go and wire_*.go may import the store:\n%s", strings.Join(bad, "\n"))
	}
}

// TestOnlyWiringImportsTheStoreCatchesViolations proves the check can fail:
// a command importing the store (or store/pg) is named, the wiring and
// tests are not.
func TestOnlyWiringImportsTheStoreCatchesViolations(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"cmd_bad.go":      "package main\n\nimport _ \"" + module + "/store\"\n",
		"cmd_badpg.go":    "package main\n\nimport (\n\t\"fmt\"\n\tpg \"" + module + "/store/pg\"\n)\n",
		"cmd_ok.go":       "package main\n\nimport _ \"" + module + "/ops\"\n",
		"cmd_storex.go":   "package main\n\nimport _ \"" + module + "/storex\"\n",
		"wire.go":         "package main\n\nimport _ \"" + module + "/store\"\n",
		"wire_store.go":   "package main\n\nimport _ \"" + module + "/store/pg\"\n",
		"cmd_bad_test.go": "package main\n\nimport _ \"" + module + "/store\"\n",
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got := storeImporters(t, dir)
	want := []string{"cmd_bad.go imports " + module + "/store", "cmd_badpg.go imports " + module + "/store/pg"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
