package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func loadYAML(t *testing.T, body string) (*Config, error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "daytwo.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv, environ := noEnv()
	return Load(Source{File: path, Getenv: getenv, Environ: environ})
}

func TestExecutorKeys(t *testing.T) {
	cfg, err := loadYAML(t, `
environments:
  - name: web
    targets: [{name: web-1}]
    deploy:
      ansible: {playbook: site.yml, inventory: inv/, forks: 50, timeout: 20m, extra_vars: {replicas: 3, region: "{{ .Env }}"}}
  - name: edge
    targets: [{name: edge-1}]
    deploy:
      ssh: {host: "{{ .Target.Name }}.example.net", user: deploy, port: 2222, key_file: keys/id, known_hosts: keys/known_hosts, command: [/opt/app/deploy, "{{ .Version }}"]}
`)
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Environments[0].Deploy.Ansible
	dir := filepath.Dir(cfg.File)
	if a == nil || a.Playbook != filepath.Join(dir, "site.yml") || a.Inventory != filepath.Join(dir, "inv") || a.Forks != 50 || a.ExtraVars["replicas"] != "3" || a.Timeout.String() != "20m0s" {
		t.Errorf("ansible = %+v", a)
	}
	s := cfg.Environments[1].Deploy.SSH
	if s == nil || s.KeyFile != filepath.Join(dir, "keys/id") || s.KnownHosts != filepath.Join(dir, "keys/known_hosts") || s.Port != 2222 || s.Command[0] != "/opt/app/deploy" {
		t.Errorf("ssh = %+v", s)
	}
}

func TestExecutorProblems(t *testing.T) {
	_, err := loadYAML(t, `
environments:
  - name: both
    targets: [{name: a}]
    deploy: {command: [/bin/true], ssh: {command: [x]}}
  - name: ans
    targets: [{name: a}]
    deploy:
      rollback: [/bin/undo]
      ansible: {forks: -1, extra_vars: {daytwo_version: x, url: "{{ .Target.Vars.url }}", "bad-name": y}}
  - name: ssh
    targets: [{name: a}]
    deploy:
      ssh: {port: 70000, host: "{{ .Bad"}
  - name: none
    targets: [{name: a}]
    deploy: {timeout: 1m}
  - name: typo
    targets: [{name: a}]
    deploy: {ansible: {playbok: x.yml, playbook: y.yml, inventory: i}}
`)
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v", err)
	}
	got := ce.Error()
	for _, want := range []string{
		"environments[0].deploy: set exactly one of command, ansible or ssh",
		"environments[1].deploy.ansible.playbook: must name the playbook",
		"environments[1].deploy.ansible.inventory: must name the inventory",
		"environments[1].deploy.ansible.forks: cannot be negative",
		"environments[1].deploy.ansible.extra_vars.daytwo_version: the daytwo_ prefix is reserved",
		"environments[1].deploy.ansible.extra_vars.url: extra vars are the same for every host",
		`environments[1].deploy.ansible.extra_vars.bad-name: "bad-name" is not an Ansible variable name`,
		"environments[1].deploy.rollback: is the command executor's rollback argv",
		"environments[2].deploy.ssh.command: must name the program to run on the target",
		"environments[2].deploy.ssh.port: 70000 is not a port",
		"environments[2].deploy.ssh.host: bad template",
		"environments[3].deploy.command: must name the program to run",
		"environments[4].deploy.ansible.playbok",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing problem %q in:\n%s", want, got)
		}
	}
}
