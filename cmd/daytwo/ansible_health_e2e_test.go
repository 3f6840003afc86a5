package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daytwo/daytwo/ops"
)

// ansibleHealthPlaybook is a health check run by Ansible: it logs each
// play once with its host count, checks that the host records the
// release, and fails on the hosts listed in sick/ (not during rollbacks).
const ansibleHealthPlaybook = `- hosts: all
  gather_facts: false
  tasks:
    - name: log the check
      run_once: true
      ansible.builtin.shell: echo "health {{ daytwo_version }} {{ daytwo_rollback }} {{ ansible_play_hosts_all | length }}" >> {{ state_dir }}/health.log
    - name: the release is in place
      ansible.builtin.shell: grep -qx "{{ daytwo_version }}" {{ state_dir }}/state/{{ inventory_hostname }}.version
    - name: the service answers
      ansible.builtin.fail:
        msg: "{{ inventory_hostname }} does not answer on {{ daytwo_version }} (port closed)"
      when: not daytwo_rollback and (state_dir + '/sick/' + inventory_hostname) is exists
`

// TestAnsibleHealthChecksRunOncePerBatch: the health step runs through
// Ansible, one ansible-playbook per batch over the batch's hosts (30
// loopback hosts in batches of 10, behind a ServiceNow change). host-15
// deploys fine but fails its health check in batch 2: every touched host
// is rolled back, the restored hosts are checked by one more Ansible run,
// and the failed task's message is in the journal.
func TestAnsibleHealthChecksRunOncePerBatch(t *testing.T) {
	w := newAnsibleWorld(t, 30)
	if err := os.MkdirAll(filepath.Join(w.ans, "sick"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(w.ans, "check.yml"), ansibleHealthPlaybook)
	cfg, err := os.ReadFile(w.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	old := fmt.Sprintf(`      - command: [grep, -qx, "{{ .Version }}", "%s/state/{{ .Target.Name }}.version"]
        retries: 0`, w.ans)
	if !strings.Contains(string(cfg), old) {
		t.Fatalf("the Ansible world's health block changed:\n%s", cfg)
	}
	writeTestFile(t, w.cfgPath, strings.Replace(string(cfg), old, `      - name: app-up
        ansible: {playbook: ansible/check.yml, inventory: ansible/hosts.ini, forks: 10, timeout: 5m}`, 1))
	if r := daytwo(t, w.env, "config", "check"); r.code != 0 {
		t.Fatalf("config check: %+v", r)
	}
	health := func() []string {
		b, _ := os.ReadFile(filepath.Join(w.ans, "health.log"))
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}

	first := w.proposeApproved(t, "1.0.0")
	if r := daytwo(t, w.env, "run", first.ID); r.code != 0 {
		t.Fatalf("first release: %+v", r)
	}
	if got, want := strings.Join(health(), "|"), "health 1.0.0 False 10|health 1.0.0 False 10|health 1.0.0 False 10"; got != want {
		t.Fatalf("health plays = %q, want one per batch of 10: %q", got, want)
	}

	writeTestFile(t, filepath.Join(w.ans, "sick", "host-15"), "")
	p := w.proposeApproved(t, "2.0.0")
	r := daytwo(t, w.env, "run", p.ID)
	if r.code == 0 {
		t.Fatalf("the run succeeded although host-15 failed its health check: %+v", r)
	}
	for i := 1; i <= 30; i++ {
		h := fmt.Sprintf("host-%02d", i)
		if got := w.version(t, h); got != "1.0.0" {
			t.Errorf("%s runs %s after the rollback, want 1.0.0", h, got)
		}
	}
	if got, want := strings.Join(health()[3:], "|"), "health 2.0.0 False 10|health 2.0.0 False 10|health 1.0.0 True 20"; got != want {
		t.Errorf("health plays of the failed update = %q, want batch 1, batch 2, then one check of the 20 restored hosts: %q", got, want)
	}

	db := w.open(t)
	runs, err := db.Runs(context.Background(), p.ID)
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs: %v %v", runs, err)
	}
	steps, err := db.Steps(context.Background(), runs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, s := range steps {
		count[s.Step+"/"+string(s.State)]++
		if s.Step == ops.StepHealth && s.Target == "host-15" && s.Version == "2.0.0" &&
			(s.State != ops.StepFailed || !strings.Contains(s.Detail, `task "the service answers" failed: host-15 does not answer on 2.0.0 (port closed)`)) {
			t.Errorf("host-15's health step: %s %q", s.State, s.Detail)
		}
	}
	if count["deploy/succeeded"] != 20 || count["health/failed"] != 1 || count["health/succeeded"] != 19+20 || count["rollback/succeeded"] != 20 {
		t.Errorf("journal: %v, want 20 deploys, 19+20 health checks ok, 1 failed, 20 rollbacks", count)
	}
}
