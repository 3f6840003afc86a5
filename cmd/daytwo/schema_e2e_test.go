package main

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The JSON schema table in README.md ("### JSON output"): one row per
// object, its fields in backticks, a trailing ? marking a field left out
// when empty. TestJSONSchemaMatchesREADME checks it against what -o json
// prints, both ways, so the table cannot rot.

// readmeSchema returns the README's objects and their fields (name →
// field → optional).
func readmeSchema(t *testing.T) map[string]map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "### JSON output")
	if !ok {
		t.Fatal("README.md has no \"### JSON output\" section")
	}
	sec, _, _ = strings.Cut(sec, "\n#")
	out := map[string]map[string]bool{}
	row := regexp.MustCompile(`^\| \*\*([a-z ]+)\*\* \|[^|]*\| (.*) \|$`)
	field := regexp.MustCompile("`([a-z0-9_.\\[\\]]+)(\\??)`")
	for _, l := range strings.Split(sec, "\n") {
		m := row.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		fs := map[string]bool{}
		for _, f := range field.FindAllStringSubmatch(m[2], -1) {
			fs[f[1]] = f[2] == "?"
		}
		out[m[1]] = fs
	}
	return out
}

// objectKeys collects the top-level field names of the JSON objects in
// docs (each an object or an array of objects), at path (a.b: nested).
func objectKeys(t *testing.T, path string, docs ...string) map[string]bool {
	t.Helper()
	keys := map[string]bool{}
	for _, d := range docs {
		var v any
		if err := json.Unmarshal([]byte(d), &v); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, d)
		}
		var objs []any
		if a, ok := v.([]any); ok {
			objs = a
		} else {
			objs = []any{v}
		}
		for _, o := range objs {
			for _, p := range strings.Split(path, ".") {
				if p == "" {
					continue
				}
				m, _ := o.(map[string]any)
				o = m[p]
				if a, ok := o.([]any); ok && len(a) > 0 {
					o = a[0]
				}
			}
			m, ok := o.(map[string]any)
			if !ok {
				continue
			}
			for k := range m {
				keys[k] = true
			}
		}
	}
	return keys
}

func TestJSONSchemaMatchesREADME(t *testing.T) {
	schema := readmeSchema(t)
	w := newEngineWorld(t, "0s")
	stg := w.propose(t, "staging", "1.1.0")
	if r := daytwo(t, w.env, "run", stg.ID); r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	w.propose(t, "production", "1.1.0") // a change and its outbox writes
	if r := daytwo(t, w.env, "sync", "--once"); r.code != 0 {
		t.Fatalf("sync: %+v", r)
	}
	js := func(args ...string) string {
		t.Helper()
		r := daytwo(t, w.env, append(args, "-o", "json")...)
		if r.stdout == "" {
			t.Fatalf("%v: %+v", args, r)
		}
		return r.stdout
	}
	printed := map[string]map[string]bool{
		"update":              objectKeys(t, "update", js("update", "list", "--all")),
		"update status":       objectKeys(t, "", js("update", "list", "--all")),
		"run":                 objectKeys(t, "runs", js("update", "show", stg.ID)),
		"change":              objectKeys(t, "", js("change", "list", "--all")),
		"environment":         objectKeys(t, "", js("env", "list")),
		"service":             objectKeys(t, "", js("service", "list")),
		"service environment": objectKeys(t, "environments", js("service", "list")),
		"outbox item":         objectKeys(t, "", js("outbox", "list", "--all")),
		"audit event":         objectKeys(t, "", js("audit", "list", "--limit", "0")),
		"drift row":           objectKeys(t, "targets", js("drift")),
		"status":              objectKeys(t, "", js("status")),
		"version":             objectKeys(t, "", js("version")),
		"feed record":         objectKeys(t, "", feedLines(t, w.env)...),
	}
	for name, got := range printed {
		doc, ok := schema[name]
		if !ok {
			t.Errorf("README's JSON table has no row **%s**", name)
			continue
		}
		if len(got) == 0 {
			t.Errorf("%s: nothing printed to compare", name)
		}
		for k := range got {
			if _, ok := doc[k]; !ok {
				t.Errorf("%s: -o json prints %q, which README's JSON table does not list", name, k)
			}
		}
		for k, optional := range doc {
			if !optional && !got[k] {
				t.Errorf("%s: README lists %q (not optional), which -o json did not print (printed: %v)", name, k, slices.Sorted(mapKeys(got)))
			}
		}
	}
	for name := range schema {
		if _, ok := printed[name]; !ok {
			t.Errorf("README's JSON table lists **%s**, which this test does not check", name)
		}
	}
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// feedLines is `daytwo feed`'s output, one document a line.
func feedLines(t *testing.T, env []string) []string {
	t.Helper()
	r := daytwo(t, env, "feed")
	if r.code != 0 || r.stdout == "" {
		t.Fatalf("feed: %+v", r)
	}
	return strings.Split(strings.TrimSpace(r.stdout), "\n")
}
