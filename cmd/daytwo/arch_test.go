package main

import (
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The import rules of ARCHITECTURE.md, enforced (tailscale's deptest idea):
// ops imports no adapter, tui talks to ops only (and never to the
// executors), itsm and store never import each other, the simulator is a
// ServiceNow and knows nothing of daytwo, and nothing imports the
// composition root. The rules hold for transitive dependencies: a package
// may not reach a banned one through a third-party or daytwo package
// either, and the violation names the path.

const module = "github.com/daytwo/daytwo"

type importRule struct {
	pkg    string   // package prefix the rule applies to
	banned []string // import prefixes it may not use
	why    string
}

var importRules = []importRule{
	{
		module + "/ops",
		[]string{
			module + "/store", module + "/itsm", module + "/tui", module + "/cmd", module + "/fixtures",
			"modernc.org/sqlite", "github.com/go-resty/", "github.com/charmbracelet/", "github.com/spf13/", "github.com/knadh/koanf",
		},
		"ops is the domain: it imports no adapter, UI or config library",
	},
	{
		module + "/tui",
		[]string{module + "/store", module + "/itsm", module + "/cmd", module + "/ops/exec", "modernc.org/sqlite", "github.com/go-resty/"},
		"tui talks to ops only",
	},
	{
		module + "/itsm",
		[]string{module + "/store", module + "/tui", module + "/cmd"},
		"itsm and store never import each other; adapters never import the UI or cmd",
	},
	{
		module + "/store",
		[]string{module + "/itsm", module + "/tui", module + "/cmd"},
		"itsm and store never import each other; adapters never import the UI or cmd",
	},
	{
		module + "/itsm/snowsim",
		[]string{module + "/ops", module + "/store", module + "/tui", module + "/cmd", module + "/itsm"},
		"the simulator is a ServiceNow: it must not share code with the client it tests",
	},
}

// violations lists every dependency in graph that breaks a rule. graph
// maps each package to its direct imports (daytwo's packages and every
// package they reach); a rule is checked against everything a package
// reaches, and a violation names the import path that leads there. A
// package matches a rule when its path equals the rule's prefix or lies
// below it; the most specific rule and every broader one apply.
func violations(graph map[string][]string, rules []importRule) []string {
	var out []string
	for pkg := range graph {
		if !under(pkg, module) {
			continue
		}
		via := reach(graph, pkg)
		for _, r := range rules {
			if !under(pkg, r.pkg) {
				continue
			}
			for dep := range via {
				for _, b := range r.banned {
					if under(dep, b) {
						out = append(out, pkg+" imports "+dep+": "+r.why+chain(via, pkg, dep))
					}
				}
			}
		}
		if !under(pkg, module+"/cmd") {
			for dep := range via {
				if under(dep, module+"/cmd") {
					out = append(out, pkg+" imports "+dep+": nothing imports the composition root"+chain(via, pkg, dep))
				}
			}
		}
	}
	return out
}

// reach walks graph breadth-first from pkg and returns, for every package
// pkg depends on, the package that imports it on a shortest path.
func reach(graph map[string][]string, pkg string) map[string]string {
	via := map[string]string{}
	queue := []string{pkg}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, imp := range graph[p] {
			if _, seen := via[imp]; seen || imp == pkg {
				continue
			}
			via[imp] = p
			queue = append(queue, imp)
		}
	}
	return via
}

// chain renders the path from pkg to dep when dep is not a direct import.
func chain(via map[string]string, pkg, dep string) string {
	if via[dep] == pkg {
		return ""
	}
	path := []string{dep}
	for p := via[dep]; p != pkg; p = via[p] {
		path = append(path, p)
	}
	path = append(path, pkg)
	for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
		path[i], path[j] = path[j], path[i]
	}
	return " (via " + strings.Join(path, " -> ") + ")"
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
	out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"/...").CombinedOutput()
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
	// Each direct violation is reported; every other one is a transitive
	// consequence of them and names its path.
	direct := 0
	for _, g := range got {
		if !strings.Contains(g, " (via ") {
			direct++
		}
	}
	if direct != len(want) {
		t.Fatalf("got %d direct violations, want %d:\n%s", direct, len(want), strings.Join(got, "\n"))
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

// TestImportRulesAreTransitive proves a banned package reached through an
// allowed one is caught, with the path that leads to it, and that an
// allowed graph stays clean.
func TestImportRulesAreTransitive(t *testing.T) {
	graph := map[string][]string{
		module + "/tui/deploys": {module + "/ops", "example.com/wrapper"},
		"example.com/wrapper":   {"example.com/inner"},
		"example.com/inner":     {module + "/ops/exec", "github.com/go-resty/resty/v2"},
		module + "/ops":         {"context", module + "/ops/policy"},
		module + "/ops/policy":  {"github.com/google/cel-go/cel"},
		module + "/ops/exec":    {"os/exec"},
	}
	got := violations(graph, importRules)
	want := []string{
		module + "/tui/deploys imports " + module + "/ops/exec: tui talks to ops only (via " +
			module + "/tui/deploys -> example.com/wrapper -> example.com/inner -> " + module + "/ops/exec)",
		module + "/tui/deploys imports github.com/go-resty/resty/v2: tui talks to ops only (via " +
			module + "/tui/deploys -> example.com/wrapper -> example.com/inner -> github.com/go-resty/resty/v2)",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	delete(graph, "example.com/wrapper")
	graph[module+"/tui/deploys"] = []string{module + "/ops"}
	if got := violations(graph, importRules); len(got) != 0 {
		t.Fatalf("an allowed graph has violations:\n%s", strings.Join(got, "\n"))
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
