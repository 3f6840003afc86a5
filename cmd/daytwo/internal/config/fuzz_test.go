package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to Load as a configuration file: it must
// never panic, and it returns either a valid configuration or an *Error
// (never another error type, never both, never neither).
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"daytwo.example.yaml", "broken.yaml"} {
		if b, err := os.ReadFile(fixture(name)); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("environments: [{name: dev, targets: [{name: a}], deploy: {command: [\"true\"]}}]\n"))
	f.Add([]byte("sync: {interval: -1s}\nenvironments: ~\n"))
	f.Add([]byte("environments:\n  - name: x\n    strategy: {batch_size: \"150%\", max_parallel: -3}\n"))
	f.Add([]byte("policies: [{name: p, expr: \"update.version ==\", action: block}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("\x00\xff: {"))
	dir := f.TempDir()
	empty := func(string) string { return "" }
	noEnv := func() []string { return nil }
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "daytwo.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(Source{File: path, Getenv: empty, Environ: noEnv})
		if err != nil {
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("Load returned %T (%v), want *config.Error", err, err)
			}
			if cfg != nil {
				t.Fatalf("Load returned both a config and %v", err)
			}
			if len(cerr.Problems) == 0 {
				t.Fatal("*config.Error without problems")
			}
			_ = cerr.Error()
			return
		}
		if cfg == nil {
			t.Fatal("Load returned neither a config nor an error")
		}
	})
}
