package exec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daytwo/daytwo/ops"
)

// ansibleHealthPlay logs each run once with its host count and fails on
// the hosts listed in fail/.
const ansibleHealthPlay = `- hosts: all
  gather_facts: false
  tasks:
    - name: log the run
      run_once: true
      ansible.builtin.shell: echo "{{ daytwo_version }} {{ ansible_play_hosts_all | length }}" >> {{ state_dir }}/health.log
    - name: the service answers
      ansible.builtin.fail:
        msg: "{{ inventory_hostname }} does not answer"
      when: (state_dir + '/fail/' + inventory_hostname) is exists
`

// TestAnsibleHealthCheckBatch: CheckBatch runs an ansible health check
// once over the batch's hosts and gives each host its own result; the
// other checks run per target on the hosts that passed; Check runs it for
// one host.
func TestAnsibleHealthCheckBatch(t *testing.T) {
	dir, spec := ansibleFleet(t, "web-1", "web-2", "web-3")
	for k, v := range spec.Env {
		t.Setenv(k, v) // health checks run with daytwo's environment
	}
	writeFile(t, filepath.Join(dir, "check.yml"), ansibleHealthPlay)
	writeFile(t, filepath.Join(dir, "fail", "web-2"), "")
	h, err := NewHealth("staging", []ops.HealthCheck{
		{Name: "app-up", Ansible: &ops.AnsibleSpec{Playbook: filepath.Join(dir, "check.yml"), Inventory: spec.Ansible.Inventory, Forks: 5}},
		{Name: "marker", Command: []string{"test", "-e", filepath.Join(dir, "hosts.ini")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !h.ChecksByBatch() {
		t.Fatal("an ansible check must be run by batch")
	}
	var reqs []ops.StepRequest
	for _, name := range []string{"web-1", "web-2", "web-3"} {
		req := stepReq()
		req.Target = ops.Target{Name: name}
		reqs = append(reqs, req)
	}
	var rec recorder
	ev, errs := h.CheckBatch(t.Context(), reqs, rec.sink)
	for _, ok := range []string{"web-1", "web-3"} {
		if errs[ok] != nil || !strings.Contains(ev[ok], "app-up: ansible ") || !strings.Contains(ev[ok], "one run over the batch's 3 hosts") || !strings.Contains(ev[ok], "marker: ") {
			t.Errorf("%s: %v, evidence %q", ok, errs[ok], ev[ok])
		}
	}
	if err := errs["web-2"]; err == nil || !strings.Contains(err.Error(), `check "app-up"`) || !strings.Contains(err.Error(), `task "the service answers" failed: web-2 does not answer`) {
		t.Errorf("web-2: %v, want the check, the failed task and its message", err)
	}
	if _, err := h.Check(t.Context(), reqs[0], rec.sink); err != nil {
		t.Errorf("Check of web-1: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "health.log"))
	if got := strings.TrimSpace(string(b)); got != "1.2.3 3\n1.2.3 1" {
		t.Errorf("ansible runs = %q, want one over the 3 hosts of the batch, then one for the single check", got)
	}
}
