package exec

import (
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// needBinary skips loudly when a real component is not installed, and
// fails instead under CI, which installs it.
func needBinary(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := osexec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed, and CI must run this test: apt-get install -y %s", name, pkg)
		}
		t.Skipf("SKIPPED: %s is not installed (apt-get install -y %s); this test needs the real thing", name, pkg)
	}
	return p
}

// ansibleFleet writes a loopback inventory of hosts and a playbook that
// records daytwo_version per host in state/ and fails on the hosts listed
// in the fail/ directory.
func ansibleFleet(t testing.TB, hosts ...string) (dir string, spec ops.DeploySpec) {
	t.Helper()
	needBinary(t, "ansible-playbook", "ansible")
	dir = t.TempDir()
	for _, d := range []string{"state", "fail", "home", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var inv strings.Builder
	inv.WriteString("[fleet]\n")
	for _, h := range hosts {
		inv.WriteString(h + "\n")
	}
	fmt.Fprintf(&inv, "[fleet:vars]\nansible_connection=local\nansible_python_interpreter=/usr/bin/python3\nstate_dir=%s\n", dir)
	writeFile(t, filepath.Join(dir, "hosts.ini"), inv.String())
	writeFile(t, filepath.Join(dir, "site.yml"), ansiblePlaybook)
	spec = ops.DeploySpec{
		Ansible: &ops.AnsibleSpec{
			Playbook: filepath.Join(dir, "site.yml"), Inventory: filepath.Join(dir, "hosts.ini"), Forks: 10,
			ExtraVars: map[string]string{"greeting": "hello {{ .Env }} {{ .Version }}"},
		},
		Env: map[string]string{
			"ANSIBLE_HOME": filepath.Join(dir, "home"), "ANSIBLE_LOCAL_TEMP": filepath.Join(dir, "tmp"),
			"ANSIBLE_GATHERING": "explicit",
		},
	}
	return dir, spec
}

// ansiblePlaybook is the test fleet's playbook.
const ansiblePlaybook = `- hosts: all
  gather_facts: false
  tasks:
    - name: refuse on chosen hosts
      ansible.builtin.fail:
        msg: "{{ inventory_hostname }} refuses {{ daytwo_version }}"
      when: (state_dir + '/fail/' + inventory_hostname) is exists
    - name: record the release
      ansible.builtin.copy:
        dest: "{{ state_dir }}/state/{{ inventory_hostname }}"
        content: "{{ daytwo_version }} rollback={{ daytwo_rollback }} cfg={{ daytwo_config.log_level | default('-') }} {{ greeting }}\n"
`

func writeFile(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readState(t testing.TB, dir, host string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "state", host))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func TestAnsibleBatchPerHostResults(t *testing.T) {
	dir, spec := ansibleFleet(t, "web-1", "web-2", "web-3")
	a, err := NewAnsible("staging", spec)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "fail", "web-2"), "")
	var (
		mu   sync.Mutex
		pids = map[string]int{}
	)
	var reqs []ops.StepRequest
	for _, h := range []string{"web-1", "web-2", "nosuch"} {
		req := stepReq()
		req.Target = ops.Target{Name: h}
		req.RunID, req.Epoch = "r-test", 3
		req.OnStart = func(pid int) error {
			mu.Lock()
			defer mu.Unlock()
			pids[h] = pid
			return nil
		}
		reqs = append(reqs, req)
	}
	var rec recorder
	res := a.DeployBatch(t.Context(), reqs, rec.sink)
	if err := res["web-1"]; err != nil {
		t.Errorf("web-1: %v", err)
	}
	if got := readState(t, dir, "web-1"); got != "1.2.3 rollback=False cfg=info hello staging 1.2.3" {
		t.Errorf("web-1 state = %q", got)
	}
	if err := res["web-2"]; err == nil || !strings.Contains(err.Error(), `task "refuse on chosen hosts" failed: web-2 refuses 1.2.3`) {
		t.Errorf("web-2: %v, want the failed task and its message", err)
	}
	if got := readState(t, dir, "web-2"); got != "" {
		t.Errorf("web-2 was written although it failed: %q", got)
	}
	if got := readState(t, dir, "web-3"); got != "" {
		t.Errorf("web-3 is outside the batch but was deployed: %q", got)
	}
	if err := res["nosuch"]; err == nil || !strings.Contains(err.Error(), "not in inventory") {
		t.Errorf("nosuch: %v, want a host missing from the inventory", err)
	}
	if len(pids) != 3 || pids["web-1"] == 0 || pids["web-1"] != pids["web-2"] || pids["web-2"] != pids["nosuch"] {
		t.Errorf("OnStart pids = %v, want one ansible-playbook pid for every target", pids)
	}
	var web2 []string
	for _, l := range rec.all() {
		if l.target == "web-2" {
			web2 = append(web2, l.line)
		}
	}
	if !strings.Contains(strings.Join(web2, "\n"), "TASK [refuse on chosen hosts] failed: web-2 refuses 1.2.3") {
		t.Errorf("web-2's log lacks the failed task:\n%s", strings.Join(web2, "\n"))
	}
	runs := 0
	for _, l := range rec.stream("daytwo") {
		if strings.HasPrefix(l, "run ") && strings.Contains(l, "--limit web-1,web-2,nosuch") {
			runs++
		}
	}
	if runs != 1 {
		t.Errorf("%d ansible-playbook runs logged, want exactly one for the batch", runs)
	}

	// Rollback: the same playbook with the previous release.
	back := a.RollbackBatch(t.Context(), reqs[:1], rec.sink)
	if err := back["web-1"]; err != nil {
		t.Fatalf("rollback web-1: %v", err)
	}
	if got := readState(t, dir, "web-1"); got != "1.2.2 rollback=True cfg=debug hello staging 1.2.2" {
		t.Errorf("web-1 state after rollback = %q", got)
	}
}

func TestAnsibleUnreachableIsFailure(t *testing.T) {
	dir, spec := ansibleFleet(t, "web-1")
	// A host reached over ssh on a closed port.
	writeFile(t, filepath.Join(dir, "hosts.ini"), fmt.Sprintf("web-1 ansible_connection=local state_dir=%s\ndown-1 ansible_host=127.0.0.1 ansible_port=1 state_dir=%s\n", dir, dir))
	a, err := NewAnsible("staging", spec)
	if err != nil {
		t.Fatal(err)
	}
	var reqs []ops.StepRequest
	for _, h := range []string{"web-1", "down-1"} {
		req := stepReq()
		req.Target = ops.Target{Name: h}
		reqs = append(reqs, req)
	}
	res := a.DeployBatch(t.Context(), reqs, nil)
	if err := res["web-1"]; err != nil {
		t.Errorf("web-1: %v", err)
	}
	if err := res["down-1"]; err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("down-1: %v, want unreachable", err)
	}
}

func TestAnsibleExtraVarsRefuseTargetAndReservedNames(t *testing.T) {
	_, spec := ansibleFleet(t, "web-1")
	spec.Ansible.ExtraVars = map[string]string{"daytwo_version": "x"}
	if _, err := NewAnsible("staging", spec); err == nil || !strings.Contains(err.Error(), "extra_vars.daytwo_version") {
		t.Errorf("reserved name: %v", err)
	}
	spec.Ansible.ExtraVars = map[string]string{"url": "{{ .Target.Vars.url }}"}
	a, err := NewAnsible("staging", spec)
	if err != nil {
		t.Fatal(err)
	}
	req := stepReq()
	req.Target = ops.Target{Name: "web-1"}
	if err := a.Deploy(t.Context(), req, nil); err == nil || !strings.Contains(err.Error(), "per-host values belong in the inventory") {
		t.Errorf("per-target extra var: %v", err)
	}
}

func TestAnsiblePlaybookErrorFailsEveryTarget(t *testing.T) {
	dir, spec := ansibleFleet(t, "web-1", "web-2")
	writeFile(t, filepath.Join(dir, "site.yml"), "- hosts: all\n  tasks:\n    - name: broken\n      no_such_module_xyz: {}\n")
	a, err := NewAnsible("staging", spec)
	if err != nil {
		t.Fatal(err)
	}
	var reqs []ops.StepRequest
	for _, h := range []string{"web-1", "web-2"} {
		req := stepReq()
		req.Target = ops.Target{Name: h}
		reqs = append(reqs, req)
	}
	res := a.DeployBatch(t.Context(), reqs, nil)
	for _, h := range []string{"web-1", "web-2"} {
		if res[h] == nil {
			t.Errorf("%s succeeded with a broken playbook", h)
		}
	}
}

// TestReaperStopsADeadRunnersAnsibleRun: the ansible-playbook run of a
// batch carries the run's marks, so recovery's Reaper finds it (and its
// workers) and stops it; every target of the batch then fails.
func TestReaperStopsADeadRunnersAnsibleRun(t *testing.T) {
	dir, spec := ansibleFleet(t, "web-1", "web-2")
	writeFile(t, filepath.Join(dir, "site.yml"), "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: hang\n      ansible.builtin.shell: touch {{ state_dir }}/state/{{ inventory_hostname }}.hanging; exec sleep 300\n")
	a, err := NewAnsible("staging", spec)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan int, 2)
	var reqs []ops.StepRequest
	for _, h := range []string{"web-1", "web-2"} {
		req := stepReq()
		req.Target = ops.Target{Name: h}
		req.RunID, req.Epoch = "r-reap-ansible", 1
		req.OnStart = func(pid int) error { started <- pid; return nil }
		reqs = append(reqs, req)
	}
	done := make(chan map[string]error, 1)
	go func() { done <- a.DeployBatch(t.Context(), reqs, nil) }()
	pid := <-started
	<-started
	// Wait until the hosts' workers run the task (sleep is a grandchild).
	deadline := time.Now().Add(60 * time.Second)
	for {
		hanging, _ := filepath.Glob(filepath.Join(dir, "state", "*.hanging"))
		if len(hanging) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the playbook's tasks did not start within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	got, err := (&Reaper{Grace: 2 * time.Second}).Reap(t.Context(), "r-reap-ansible", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), fmt.Sprintf("pid %d ", pid)) {
		t.Errorf("reaped %q, want ansible-playbook (pid %d) among them", got, pid)
	}
	select {
	case res := <-done:
		for _, h := range []string{"web-1", "web-2"} {
			if res[h] == nil {
				t.Errorf("%s succeeded although its ansible run was stopped", h)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatal("DeployBatch did not return after its run was reaped")
	}
}
