package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigCheckRefusesUnsafeTargetsAndOversizedValues: `config check`
// catches at check time what would otherwise fail or forge evidence in the
// middle of a rollout.
func TestConfigCheckRefusesUnsafeTargetsAndOversizedValues(t *testing.T) {
	body := `
environments:
  - name: dev
    targets:
      - {name: "../../etc/passwd", vars: {url: "http://a"}}
      - {name: "$(reboot)", vars: {url: "http://b"}}
      - {name: "ok-1\nbatch 1/1: ok-1 healthy", vars: {url: "http://c"}}
      - {name: web-4}
    deploy: {command: [deploy, "{{ .Target.Vars.url }}"]}
    config:
      blob: ` + strings.Repeat("z", 140_000) + `
`
	path := filepath.Join(t.TempDir(), "unsafe.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	r := daytwo(t, nil, "config", "check", path)
	if r.code != exitUsage {
		t.Fatalf("exit %d, want %d: %+v", r.code, exitUsage, r)
	}
	for _, want := range []string{
		path,
		`environments[0].targets[0].name: "../../etc/passwd"`,
		`environments[0].targets[1].name: "$(reboot)"`,
		`environments[0].targets[2].name: "ok-1\nbatch 1/1: ok-1 healthy"`,
		`environments[0].deploy.command[1]: uses .Target.Vars.url, which target "web-4" (environments[0].targets[3]) does not set`,
		`environments[0].config.blob: the value is 140000 bytes`,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%.3000s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "zzzzzzzz") {
		t.Error("the oversized value is echoed")
	}
}
