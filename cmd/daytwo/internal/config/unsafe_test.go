package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTargetNamesAreValidatedLikeVersions(t *testing.T) {
	tests := map[string]bool{
		"prd-1": true, "web-1.example.com": true, "a+b_c": true,
		"../../etc/passwd": false, "$(reboot)": false, "a\nb": false, "a b": false, "-x": false, ".hidden": false,
		strings.Repeat("a", 129): false, "x;y": false, "`id`": false,
	}
	for name, ok := range tests {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			body := fmt.Sprintf("environments:\n  - name: dev\n    targets: [{name: %q}]\n    deploy: {command: [/bin/true]}\n", name)
			_, err := loadBody(t, body)
			if ok && err != nil {
				t.Fatalf("%q refused: %v", name, err)
			}
			if !ok && (err == nil || !strings.Contains(err.Error(), "environments[0].targets[0].name:") || !strings.Contains(err.Error(), "as for versions")) {
				t.Fatalf("%q: %v", name, err)
			}
		})
	}
}

func TestTemplateVarsEveryTargetMustSet(t *testing.T) {
	body := `
environments:
  - name: dev
    targets: [{name: a, vars: {url: "http://a", port: "1"}}, {name: b, vars: {url: "http://b"}}, {name: c}]
    deploy: {command: [deploy, "{{ .Target.Vars.url }}", "{{ index .Target.Vars \"port\" }}", "{{ .Version }}"]}
    health:
      - tcp: {address: "{{ if .Target.Vars.host }}{{ .Target.Vars.host }}{{ end }}:80"}
`
	_, err := loadBody(t, body)
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{
		`environments[0].deploy.command[1]: uses .Target.Vars.url, which target "c" (environments[0].targets[2]) does not set`,
		`environments[0].deploy.command[2]: uses .Target.Vars.port, which target "b" (environments[0].targets[1]), "c" (environments[0].targets[2]) does not set`,
		`environments[0].health[0].tcp.address: uses .Target.Vars.host`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "command[3]") {
		t.Errorf(".Version is not a target var: %v", err)
	}
}

func TestValuesTooLargeForAnArgumentList(t *testing.T) {
	big := strings.Repeat("x", 200_000)
	mid := strings.Repeat("y", 100_000)
	var cfg strings.Builder
	for i := range 12 {
		fmt.Fprintf(&cfg, "      k%d: %s\n", i, mid)
	}
	body := fmt.Sprintf(`
environments:
  - name: dev
    targets: [{name: a, vars: {blob: %s}}, {name: b}]
    deploy: {command: [/bin/true]}
    config:
      huge: %s
  - name: qa
    targets: [{name: q}]
    deploy: {command: [/bin/true]}
    config:
%s`, big, big, cfg.String())
	_, err := loadBody(t, body)
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{
		"environments[0].config.huge: the value is 200000 bytes",
		`environments[0].targets[0].vars.blob: target "a": the value is 200000 bytes`,
		`environments[1].targets[0]: target "q": config, deploy.env and vars add`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%.2000s", want, err)
		}
	}
}

func loadBody(t *testing.T, body string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "d.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv, environ := noEnv()
	return Load(Source{File: path, Getenv: getenv, Environ: environ})
}
