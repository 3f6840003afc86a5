package config

import (
	"encoding"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"
)

// secretKeys are keys people try to put in the file; the answer says where
// secrets go instead.
var secretKeys = map[string]string{
	"servicenow.auth.password":      "secrets are not read from the file: set DAYTWO_SN_PASSWORD or password_file",
	"servicenow.auth.client_secret": "secrets are not read from the file: set DAYTWO_SN_CLIENT_SECRET or client_secret_file",
	"servicenow.approver.password":  "secrets are not read from the file: set DAYTWO_SN_APPROVER_PASSWORD or password_file",
	"audit.key":                     "secrets are not read from the file: set DAYTWO_AUDIT_KEY or audit.key_file",
	"alertmanager.token":            "secrets are not read from the file: set DAYTWO_ALERTMANAGER_TOKEN or alertmanager.token_file",
}

// unknownKeys walks the raw YAML tree against the Config type and reports
// every key that has no field, with the closest known key as a hint.
func unknownKeys(path string, v any, t reflect.Type) []Problem {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []Problem
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok || t == reflect.TypeOf(time.Time{}) || reflect.PointerTo(t).Implements(textType) {
			return nil // a type error, reported by the decoder
		}
		fields := map[string]reflect.Type{}
		koanfFields(t, fields)
		keys := sortedKeys(m)
		for _, key := range keys {
			full := join(path, key)
			ft, ok := fields[key]
			if !ok {
				msg := "unknown key"
				if hint, ok := secretKeys[full]; ok {
					msg = hint
				} else if near := closest(key, fields); near != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", near)
				}
				out = append(out, Problem{Key: full, Message: msg})
				continue
			}
			out = append(out, unknownKeys(full, m[key], ft)...)
		}
	case reflect.Slice:
		if l, ok := v.([]any); ok {
			for i, e := range l {
				out = append(out, unknownKeys(fmt.Sprintf("%s[%d]", path, i), e, t.Elem())...)
			}
		}
	case reflect.Map:
		if m, ok := v.(map[string]any); ok {
			for _, key := range sortedKeys(m) {
				out = append(out, unknownKeys(join(path, key), m[key], t.Elem())...)
			}
		}
	}
	return out
}

// koanfFields collects a struct's keys, those of embedded structs tagged
// ",squash" (ops.MetricAnalysis in the metric checks) included.
func koanfFields(t reflect.Type, fields map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("koanf")
		if f.Anonymous && strings.Contains(tag, ",squash") && f.Type.Kind() == reflect.Struct {
			koanfFields(f.Type, fields)
			continue
		}
		if name := strings.Split(tag, ",")[0]; name != "" && name != "-" {
			fields[name] = f.Type
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// closest returns the known key nearest to key by edit distance, if it is
// near enough to be a likely typo.
func closest(key string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	for f := range fields {
		if d := editDistance(key, f); d < bestD || (d == bestD && f < best) {
			best, bestD = f, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// walkPath calls fn on the map found at each of the dotted paths below
// root; "*" steps into every element of a list.
func walkPath(root map[string]any, path string, fn func(m map[string]any)) {
	head, rest, _ := strings.Cut(path, ".")
	if head == "" {
		fn(root)
		return
	}
	next := root[head]
	if rest != "" && strings.HasPrefix(rest, "*") {
		l, _ := next.([]any)
		rest = strings.TrimPrefix(strings.TrimPrefix(rest, "*"), ".")
		for _, e := range l {
			if m, ok := e.(map[string]any); ok {
				walkPath(m, rest, fn)
			}
		}
		return
	}
	if m, ok := next.(map[string]any); ok {
		walkPath(m, rest, fn)
	}
}

// resolvePaths makes the file's relative paths relative to the file's own
// directory: file-valued keys, and argv[0] of commands when it names a path
// ("./deploy.sh", not "bash").
func resolvePaths(tree map[string]any, dir string) {
	abs := func(m map[string]any, key string) {
		if s, ok := m[key].(string); ok && s != "" && !filepath.IsAbs(s) {
			m[key] = filepath.Join(dir, s)
		}
	}
	argv0 := func(m map[string]any, key string) {
		l, ok := m[key].([]any)
		if !ok || len(l) == 0 {
			return
		}
		if s, ok := l[0].(string); ok && strings.ContainsRune(s, '/') && !filepath.IsAbs(s) && !strings.Contains(s, "{{") {
			l[0] = filepath.Join(dir, s)
		}
	}
	walkPath(tree, "store", func(m map[string]any) { abs(m, "path"); abs(m, "password_file") })
	walkPath(tree, "servicenow", func(m map[string]any) { abs(m, "ca_file") })
	walkPath(tree, "servicenow.auth", func(m map[string]any) { abs(m, "password_file"); abs(m, "client_secret_file") })
	walkPath(tree, "servicenow.approver", func(m map[string]any) { abs(m, "password_file") })
	walkPath(tree, "console", func(m map[string]any) { abs(m, "log_file") })
	walkPath(tree, "audit", func(m map[string]any) { abs(m, "key_file"); abs(m, "anchor_file") })
	walkPath(tree, "alertmanager", func(m map[string]any) { abs(m, "token_file") })
	for _, e := range envLike {
		walkPath(tree, e+".deploy", func(m map[string]any) { argv0(m, "command"); argv0(m, "rollback") })
		walkPath(tree, e+".deploy.ansible", func(m map[string]any) {
			abs(m, "playbook")
			abs(m, "inventory")
			abs(m, "rollback_playbook")
		})
		walkPath(tree, e+".deploy.ssh", func(m map[string]any) { abs(m, "key_file"); abs(m, "known_hosts") })
		walkPath(tree, e+".version_probe", func(m map[string]any) { argv0(m, "command") })
		walkPath(tree, e+".health.*", func(m map[string]any) { argv0(m, "command") })
		walkPath(tree, e+".health.*.ansible", func(m map[string]any) { abs(m, "playbook"); abs(m, "inventory") })
	}
}

// envLike are the tree paths of entries that hold (part of) an
// environment's deployment: today's environments[], and with services the
// service itself and its per-environment entries.
var envLike = []string{"environments.*", "services.*", "services.*.environments.*"}

// elementDefaults fills defaults inside list elements where an explicit
// zero must keep its meaning (retries: 0 is "no retries").
func elementDefaults(tree map[string]any) {
	for _, e := range envLike {
		walkPath(tree, e+".health.*", func(m map[string]any) {
			setDefault(m, "interval", "1s")
			setDefault(m, "timeout", "5s")
			setDefault(m, "retries", 3)
		})
		walkPath(tree, e+".health.*.http", func(m map[string]any) { setDefault(m, "expect_status", 200) })
	}
	walkPath(tree, "environments.*", func(m map[string]any) {
		if gated, _ := m["requires_change"].(bool); !gated {
			return
		}
		ch, ok := m["change"].(map[string]any)
		if !ok {
			if m["change"] != nil {
				return // a type error, reported by the decoder
			}
			ch = map[string]any{}
			m["change"] = ch
		}
		setDefault(ch, "check_conflicts", true)
	})
}

func setDefault(m map[string]any, key string, v any) {
	if _, ok := m[key]; !ok {
		m[key] = v
	}
}

// stringifyMaps turns scalar values of free-form string maps (config maps,
// target vars) into strings, so `replicas: 3` means "3" instead of a type
// error.
func stringifyMaps(tree map[string]any) {
	str := func(m map[string]any, key string) {
		inner, ok := m[key].(map[string]any)
		if !ok {
			return
		}
		for k, v := range inner {
			switch v := v.(type) {
			case string, nil, []any, map[string]any:
			case time.Time:
				inner[k] = v.Format(time.RFC3339)
			case encoding.TextMarshaler:
				b, _ := v.MarshalText()
				inner[k] = string(b)
			default:
				inner[k] = fmt.Sprint(v)
			}
		}
	}
	for _, e := range envLike {
		walkPath(tree, e, func(m map[string]any) { str(m, "config") })
		walkPath(tree, e+".deploy", func(m map[string]any) { str(m, "env") })
		walkPath(tree, e+".deploy.ansible", func(m map[string]any) { str(m, "extra_vars") })
		walkPath(tree, e+".targets.*", func(m map[string]any) { str(m, "vars") })
		walkPath(tree, e+".health.*.http", func(m map[string]any) { str(m, "expect_json") })
	}
}
