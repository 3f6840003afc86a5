package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/spf13/cobra"
)

// TestEveryCommandHasExamples walks the whole command tree: every command
// a user can run (not cobra's own help/completion) has an Examples
// section in its help, and the help shows it.
func TestEveryCommandHasExamples(t *testing.T) {
	a := newApp(strings.NewReader(""), &strings.Builder{}, &strings.Builder{}, func(string) string { return "" }, func() []string { return nil })
	root := a.rootCommand()
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		if c.Name() == "help" || c.Name() == "completion" || strings.HasPrefix(c.Name(), "__") {
			return
		}
		n++
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s: no Example in its help", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if n < 30 {
		t.Fatalf("walked only %d commands", n)
	}
	r := daytwo(t, nil, "env", "list", "--help")
	if !strings.Contains(r.stdout, "Examples:") {
		t.Fatalf("env list --help shows no Examples section:\n%s", r.stdout)
	}
}

// completions runs `daytwo __complete args...` and returns the offered
// values (descriptions cut off) and the directive line.
func completions(t *testing.T, env []string, args ...string) []string {
	t.Helper()
	r := daytwo(t, env, append([]string{"__complete"}, args...)...)
	if r.code != 0 {
		t.Fatalf("__complete %v: %+v", args, r)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if strings.HasPrefix(l, ":") || l == "" {
			continue
		}
		v, _, _ := strings.Cut(l, "\t")
		out = append(out, v)
	}
	return out
}

func TestCompletionFromTheLocalStore(t *testing.T) {
	env, db := exampleEnv(t)
	// Before anything is recorded: environments from the configuration,
	// no update, and the database is not created.
	if got := completions(t, env, "env", "show", ""); strings.Join(got, " ") != "staging production" {
		t.Fatalf("env show completes %q", got)
	}
	if got := completions(t, env, "update", "show", ""); len(got) != 0 {
		t.Fatalf("update show with no database completes %q", got)
	}
	if _, err := os.Stat(db); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("completion created the database: %v", err)
	}
	if got := completions(t, env, "env", "diff", "staging", ""); strings.Join(got, " ") != "production" {
		t.Fatalf("env diff's second argument completes %q", got)
	}
	if got := completions(t, env, "propose", "pro"); strings.Join(got, " ") != "production" {
		t.Fatalf("propose pro completes %q", got)
	}
	if got := completions(t, env, "update", "list", "--env", "st"); strings.Join(got, " ") != "staging" {
		t.Fatalf("--env st completes %q", got)
	}
	if got := completions(t, env, "env", "list", "-o", ""); strings.Join(got, " ") != "table wide json yaml name" {
		t.Fatalf("list -o completes %q", got)
	}
	if got := completions(t, env, "env", "show", "staging", "-o", ""); strings.Join(got, " ") != "table json yaml" {
		t.Fatalf("show -o completes %q", got)
	}

	r := daytwo(t, env, "propose", "staging", "1.4.2", "-o", "json")
	var p struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || p.ID == "" {
		t.Fatalf("propose: %+v %v", r, err)
	}
	// Offline: the configured instance is not reachable, yet completion
	// answers at once from the store.
	offline := append(env, "DAYTWO_SN_INSTANCE=http://127.0.0.1:1")
	start := time.Now()
	got := completions(t, offline, "update", "show", "")
	if !slices.Contains(got, p.ID) {
		t.Fatalf("update show completes %q, want %s", got, p.ID)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("completion took %s", took)
	}
	if got := completions(t, offline, "run", ""); !slices.Contains(got, p.ID) || !slices.Contains(got, "staging") {
		t.Fatalf("run completes %q: want updates and environments", got)
	}
	if got := completions(t, offline, "update", "show", "zz"); len(got) != 0 {
		t.Fatalf("prefix zz completes %q", got)
	}
}

func TestChangeNumbersComplete(t *testing.T) {
	w := newEngineWorld(t, "0s")
	prod := w.propose(t, "production", "1.1.0")
	if prod.Change == "" {
		t.Fatalf("no change: %+v", prod)
	}
	if r := daytwo(t, w.env, "sync", "--once"); r.code != 0 {
		t.Fatalf("sync: %+v", r)
	}
	got := completions(t, w.env, "change", "show", "")
	if !slices.Contains(got, prod.Change) {
		t.Fatalf("change show completes %q, want %s", got, prod.Change)
	}
	if got := completions(t, w.env, "update", "logs", "CHG"); !slices.Contains(got, prod.Change) {
		t.Fatalf("update logs CHG completes %q, want %s", got, prod.Change)
	}
}

func TestOutputFormats(t *testing.T) {
	env, _ := exampleEnv(t)
	if r := daytwo(t, env, "propose", "staging", "1.4.2"); r.code != 0 {
		t.Fatalf("propose: %+v", r)
	}
	// name: one identifier a line.
	r := daytwo(t, env, "env", "list", "-o", "name")
	if r.code != 0 || r.stdout != "staging\nproduction\n" {
		t.Fatalf("env list -o name: %+v", r)
	}
	// --no-headers drops the header line only.
	withH := daytwo(t, env, "update", "list")
	noH := daytwo(t, env, "update", "list", "--no-headers")
	hl := strings.Split(strings.TrimSpace(withH.stdout), "\n")
	nl := strings.Split(strings.TrimSpace(noH.stdout), "\n")
	if noH.code != 0 || len(nl) != len(hl)-1 || !strings.HasPrefix(hl[0], "ID") || strings.HasPrefix(nl[0], "ID") {
		t.Fatalf("--no-headers:\n%s\nvs\n%s", noH.stdout, withH.stdout)
	}
	// wide adds columns after the table's.
	wide := daytwo(t, env, "update", "list", "-o", "wide")
	wh := strings.Fields(strings.Split(wide.stdout, "\n")[0])
	if wide.code != 0 || !slices.Contains(wh, "CREATED") || !strings.HasPrefix(wide.stdout, strings.Fields(hl[0])[0]) || len(wh) <= len(strings.Fields(hl[0])) {
		t.Fatalf("-o wide:\n%s", wide.stdout)
	}
	// yaml: the same document as json, same field names.
	for _, args := range [][]string{{"update", "list"}, {"env", "show", "staging"}, {"status"}, {"version"}} {
		j := daytwo(t, env, append(args, "-o", "json")...)
		y := daytwo(t, env, append(args, "-o", "yaml")...)
		if j.code != 0 || y.code != 0 {
			t.Fatalf("%v: %+v %+v", args, j, y)
		}
		var fromJSON, fromYAML any
		if err := json.Unmarshal([]byte(j.stdout), &fromJSON); err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal([]byte(y.stdout), &fromYAML); err != nil {
			t.Fatalf("%v -o yaml: %v\n%s", args, err, y.stdout)
		}
		jb, _ := json.Marshal(fromJSON)
		yb, _ := json.Marshal(fromYAML)
		if args[0] == "status" || args[0] == "version" {
			// Both carry times of their own run: compare the field names.
			jb, yb = []byte(strings.Join(keysOf(fromJSON), ",")), []byte(strings.Join(keysOf(fromYAML), ","))
		}
		if string(jb) != string(yb) {
			t.Fatalf("%v: yaml differs from json:\n%s\n%s", args, yb, jb)
		}
	}
	// Show commands refuse list formats; a wrong format names the choices.
	if r := daytwo(t, env, "env", "show", "staging", "-o", "name"); r.code != exitUsage || !strings.Contains(r.stderr, "want table, json, yaml") {
		t.Fatalf("env show -o name: %+v", r)
	}
	if r := daytwo(t, env, "update", "list", "-o", "xml"); r.code != exitUsage || !strings.Contains(r.stderr, "want table, wide, json, yaml, name") {
		t.Fatalf("-o xml: %+v", r)
	}
}

// keysOf lists a JSON object's field names, recursively, sorted.
func keysOf(v any) []string {
	var out []string
	var walk func(p string, v any)
	walk = func(p string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				out = append(out, p+k)
				walk(p+k+".", e)
			}
		case []any:
			for _, e := range x {
				walk(p+"[].", e)
			}
		}
	}
	walk("", v)
	slices.Sort(out)
	return slices.Compact(out)
}

func TestVersionCommitAndDate(t *testing.T) {
	r := daytwo(t, nil, "version", "-o", "json")
	var v struct {
		Version, Commit, Date string
		GoVersion             string `json:"go_version"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code != 0 {
		t.Fatalf("%+v %v", r, err)
	}
	if v.Version == "" || v.Commit == "" || v.Date == "" || !strings.HasPrefix(v.GoVersion, "go") {
		t.Fatalf("version -o json = %+v", v)
	}
	// The Makefile's flags stamp commit and date.
	bin := filepath.Join(t.TempDir(), "daytwo")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v9.9.9 -X main.commit=abc1234 -X main.date=2026-01-02T03:04:05Z", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"daytwo v9.9.9", "abc1234", "2026-01-02T03:04:05Z", runtime.Version()} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("version says\n%s\nwant %q", out, want)
		}
	}
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mk), "-X main.commit=$(COMMIT) -X main.date=$(DATE)") {
		t.Fatal("the Makefile's build target does not stamp main.commit and main.date")
	}
}

// TestWatchPrintsAJSONDocumentPerChange: `update list -w -o json` prints
// the list, then a new document when the store changes (a proposal by
// another process), nothing while it does not, and exits 0 on SIGINT.
func TestWatchPrintsAJSONDocumentPerChange(t *testing.T) {
	env, _ := exampleEnv(t)
	if r := daytwo(t, env, "propose", "staging", "1.4.2"); r.code != 0 { // the database exists
		t.Fatalf("propose: %+v", r)
	}
	w := exec.Command(daytwoBin, "update", "list", "--all", "-w", "-o", "json")
	w.Dir = t.TempDir()
	w.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "DAYTWO_ACTOR=e2e"}, env...)
	stdout, err := w.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	w.Stderr = &stderr
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	docs := make(chan []map[string]any, 16)
	go func() {
		defer close(docs)
		dec := json.NewDecoder(stdout)
		for {
			var d []map[string]any
			if err := dec.Decode(&d); err != nil {
				return
			}
			docs <- d
		}
	}()
	next := func(what string) []map[string]any {
		t.Helper()
		select {
		case d, ok := <-docs:
			if !ok {
				t.Fatalf("watch ended before %s: %s", what, stderr.String())
			}
			return d
		case <-time.After(30 * time.Second):
			t.Fatalf("no document for %s: %s", what, stderr.String())
		}
		return nil
	}
	if d := next("the first list"); len(d) != 1 {
		t.Fatalf("first document: %v", d)
	}
	if r := daytwo(t, env, "update", "cancel", openUpdateID(t, env)); r.code != 0 {
		t.Fatalf("cancel: %+v", r)
	}
	d := next("the cancel")
	if len(d) != 1 || d[0]["update"].(map[string]any)["state"] != "canceled" {
		t.Fatalf("after cancel: %v", d)
	}
	if r := daytwo(t, env, "propose", "staging", "1.4.3"); r.code != 0 {
		t.Fatalf("propose: %+v", r)
	}
	if d := next("the new proposal"); len(d) != 2 {
		t.Fatalf("after a proposal: %d updates, want 2: %v", len(d), d)
	}
	// Nothing changes: nothing printed (the marker moves with no list change).
	select {
	case d := <-docs:
		t.Fatalf("a document without a change: %v", d)
	case <-time.After(2500 * time.Millisecond):
	}
	if err := w.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := w.Wait(); err != nil {
		t.Fatalf("watch after SIGINT: %v (%s)", err, stderr.String())
	}
}

// openUpdateID returns the one open update's id (update list -o name).
func openUpdateID(t *testing.T, env []string) string {
	t.Helper()
	r := daytwo(t, env, "update", "list", "-o", "name")
	id := strings.TrimSpace(r.stdout)
	if r.code != 0 || id == "" || strings.Contains(id, "\n") {
		t.Fatalf("update list -o name: %+v", r)
	}
	return id
}
