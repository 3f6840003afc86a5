package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var snakeKeyRE = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// dataMaps are JSON objects whose keys are data, not field names: config
// maps, target vars, environment variables, counts by state.
var dataMaps = map[string]bool{
	"config": true, "vars": true, "env": true, "updates": true, "last_sync": true,
	"expect_json": true, "secrets": true, "deployed": true,
}

// durationKey names a field that holds a duration.
var durationKeyRE = regexp.MustCompile(`(^|_)(duration|timeout|interval|window|bake|pause|elapsed|ttl|backoff|warm_up)($|_)|_(ns|ms|seconds)$`)

// jsonProblems lists every key that is not snake_case and every duration
// given as a number, with its path.
func jsonProblems(path string, v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, val := range v {
			p := path + "." + k
			if !snakeKeyRE.MatchString(k) {
				out = append(out, p+": not snake_case")
			}
			if _, isNum := val.(float64); isNum && durationKeyRE.MatchString(k) {
				out = append(out, fmt.Sprintf("%s: a duration as a number (%v); want a string like \"2h0m0s\"", p, val))
			}
			if dataMaps[k] {
				continue
			}
			out = append(out, jsonProblems(p, val)...)
		}
	case []any:
		for i, e := range v {
			out = append(out, jsonProblems(fmt.Sprintf("%s[%d]", path, i), e)...)
		}
	case string:
		// JSON held in a string (an outbox payload) is checked too.
		if t := strings.TrimSpace(v); strings.HasPrefix(t, "{") {
			var inner any
			if json.Unmarshal([]byte(t), &inner) == nil {
				out = append(out, jsonProblems(path, inner)...)
			}
		}
	}
	return out
}

// TestEveryJSONOutputIsSnakeCase runs every command that takes -o json,
// in a world with releases, runs, changes, approvals, queued writes and
// audit events, and fails on any key that is not snake_case and on any
// duration written as a number.
func TestEveryJSONOutputIsSnakeCase(t *testing.T) {
	w := newEngineWorld(t, "1s") // production's plan has a bake
	staged := w.propose(t, "staging", "1.1.0")
	if r := daytwo(t, w.env, "run", staged.ID); r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	if r := daytwo(t, w.env, "run", w.propose(t, "staging", "1.2.0").ID); r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	prod := w.propose(t, "production", "1.1.0")
	// The writes that print JSON: a decision (as an approver, four eyes)
	// and a rollback.
	approver := append(append([]string{}, w.env...), "DAYTWO_SN_APPROVER_USER=ops.lead", "DAYTWO_SN_APPROVER_PASSWORD=ops.lead")
	writes := [][]string{
		daytwo(t, approver, "change", "approve", prod.Change, "--comment", "ok", "-o", "json").lines(),
		daytwo(t, w.env, "rollback", "staging", "-o", "json").lines(),
	}
	for _, out := range writes {
		if len(out) == 0 {
			t.Error("a write printed no JSON")
		}
		for _, l := range out {
			var v any
			if err := json.Unmarshal([]byte(l), &v); err != nil {
				t.Errorf("not JSON: %v: %s", err, l)
			}
			for _, p := range jsonProblems("write", v) {
				t.Error(p)
			}
		}
	}
	daytwo(t, w.env, "sync", "--once")

	examples := map[string][]string{
		"daytwo sync":           {"--once"},
		"daytwo env show":       {"staging"},
		"daytwo env diff":       {"staging", "production"},
		"daytwo service show":   {"checkout-service"},
		"daytwo propose":        {"staging", "1.3.0", "--dry-run"},
		"daytwo change show":    {prod.Change},
		"daytwo change approve": nil, // writes: checked above
		"daytwo change reject":  nil,
		"daytwo run":            {"--resume"},
		"daytwo rollback":       nil,
		"daytwo update show":    {prod.ID},
		"daytwo update logs":    {staged.ID},
		"daytwo outbox list":    {"--all"},
		"daytwo outbox retry":   nil,
		"daytwo audit list":     {"--limit", "0"},
		"daytwo audit verify":   {},
		"daytwo audit export":   {},
		"daytwo update cancel":  nil,
		"daytwo store copy":     nil, // needs PostgreSQL: checked in TestStoreCopyRoundTripsTheDemo
		"daytwo backup":         {"--to", filepath.Join(t.TempDir(), "backup.db")},
	}
	cmds := leafCommands()
	paths := make([]string, 0, len(cmds))
	for p, c := range cmds {
		if c.Flags().Lookup("output") != nil {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	checked := 0
	for _, path := range paths {
		args, ok := examples[path]
		if ok && args == nil {
			continue
		}
		argv := append(append(strings.Fields(strings.TrimPrefix(path, "daytwo")), args...), "-o", "json")
		r := daytwo(t, w.env, argv...)
		if strings.TrimSpace(r.stdout) == "" {
			t.Errorf("%s -o json printed nothing: %+v", path, r)
			continue
		}
		dec := json.NewDecoder(strings.NewReader(r.stdout))
		for dec.More() {
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Errorf("%s -o json: not JSON: %v\n%s", path, err, r.stdout)
				break
			}
			for _, p := range jsonProblems(path, v) {
				t.Error(p)
			}
		}
		checked++
	}
	if checked < 15 {
		t.Fatalf("only %d commands checked", checked)
	}
}

// lines splits the JSON documents of stdout (one indented document, or
// JSON lines) into one string each.
func (r result) lines() []string {
	var out []string
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return append(out, r.stdout)
		}
		out = append(out, string(raw))
	}
	return out
}
