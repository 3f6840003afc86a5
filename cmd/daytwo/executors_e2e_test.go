package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daytwo/daytwo/itsm/snowsim"
	"github.com/daytwo/daytwo/ops"
)

// needTool skips loudly when a real component is absent, and fails under
// CI, which installs it (.ci/run).
func needTool(t testing.TB, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed, and CI must run this test: apt-get install -y %s", name, pkg)
		}
		t.Skipf("SKIPPED: %s is not installed (apt-get install -y %s); this test needs the real thing", name, pkg)
	}
}

// ansiblePlaybookE2E records the release per host (the version alone in
// <host>.version, for the probe and the health check), logs each play once
// with its host count, and fails on the hosts listed in fail/.
const ansiblePlaybookE2E = `- hosts: all
  gather_facts: false
  tasks:
    - name: log the play
      run_once: true
      ansible.builtin.shell: echo "{{ daytwo_version }} {{ daytwo_rollback }} {{ ansible_play_hosts_all | length }} {{ daytwo_change }}" >> {{ state_dir }}/plays.log
    - name: refuse on chosen hosts
      ansible.builtin.fail:
        msg: "{{ inventory_hostname }} refuses {{ daytwo_version }} (disk full)"
      when: not daytwo_rollback and (state_dir + '/fail/' + inventory_hostname) is exists
    - name: record the release
      ansible.builtin.copy:
        dest: "{{ state_dir }}/state/{{ inventory_hostname }}.version"
        content: "{{ daytwo_version }}\n"
`

type ansibleWorld struct {
	*safetyWorld
	ans string // inventory, playbook and the hosts' state
}

func newAnsibleWorld(t *testing.T, hosts int) *ansibleWorld {
	t.Helper()
	needTool(t, "ansible-playbook", "ansible")
	w := &ansibleWorld{safetyWorld: &safetyWorld{engineWorld: &engineWorld{dir: t.TempDir()}}}
	w.sim = startSim(t, snowsim.Options{})
	w.ans = filepath.Join(w.dir, "ansible")
	for _, d := range []string{"state", "fail", "home", "tmp"} {
		if err := os.MkdirAll(filepath.Join(w.ans, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var inv, targets strings.Builder
	inv.WriteString("[fleet]\n")
	for i := 1; i <= hosts; i++ {
		fmt.Fprintf(&inv, "host-%02d\n", i)
		fmt.Fprintf(&targets, "\n      - {name: host-%02d}", i)
	}
	fmt.Fprintf(&inv, "[fleet:vars]\nansible_connection=local\nansible_python_interpreter=/usr/bin/python3\nstate_dir=%s\n", w.ans)
	writeTestFile(t, filepath.Join(w.ans, "hosts.ini"), inv.String())
	writeTestFile(t, filepath.Join(w.ans, "site.yml"), ansiblePlaybookE2E)
	cfg := fmt.Sprintf(`
store: {path: d.db}
servicenow:
  instance: %s
  auth: {username: daytwo}
  assignment_group: Platform Ops
sync: {interval: 1s}
environments:
  - name: production
    requires_change: true
    change: {type: normal, cmdb_ci: checkout-service, risk: moderate}
    targets:%s
    deploy:
      ansible:
        playbook: ansible/site.yml
        inventory: ansible/hosts.ini
        forks: 10
        timeout: 5m
      env: {ANSIBLE_HOME: %q, ANSIBLE_LOCAL_TEMP: %q}
    version_probe: {command: [cat, "%s/state/{{ .Target.Name }}.version"]}
    health:
      - command: [grep, -qx, "{{ .Version }}", "%s/state/{{ .Target.Name }}.version"]
        retries: 0
    strategy: {batch_size: 10, max_parallel: 10, max_failures: 0}
    config: {log_level: warn}
`, w.sim.URL(), targets.String(), filepath.Join(w.ans, "home"), filepath.Join(w.ans, "tmp"), w.ans, w.ans)
	w.cfgPath = filepath.Join(w.dir, "daytwo.yaml")
	writeTestFile(t, w.cfgPath, cfg)
	w.env = []string{"DAYTWO_CONFIG=" + w.cfgPath, "DAYTWO_SN_PASSWORD=daytwo"}
	return w
}

func writeTestFile(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (w *ansibleWorld) version(t *testing.T, host string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(w.ans, "state", host+".version"))
	if err != nil {
		return "(none)"
	}
	return strings.TrimSpace(string(b))
}

func (w *ansibleWorld) plays(t *testing.T) []string {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(w.ans, "plays.log"))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// TestAnsibleGatedRolloutFailsInBatchTwoAndRollsBack is issue 19's Ansible
// world through the binary: 30 loopback hosts in batches of 10 behind a
// ServiceNow change, one ansible-playbook run per batch; host-15 fails in
// batch 2, so every touched host (batches 1 and 2) is rolled back through
// Ansible, in one run, verified by the version probe, and the failed task
// is in the work notes and the run log attached to the change.
func TestAnsibleGatedRolloutFailsInBatchTwoAndRollsBack(t *testing.T) {
	w := newAnsibleWorld(t, 30)
	if r := daytwo(t, w.env, "config", "check"); r.code != 0 {
		t.Fatalf("config check: %+v", r)
	}
	first := w.proposeApproved(t, "1.0.0")
	if r := daytwo(t, w.env, "run", first.ID); r.code != 0 {
		t.Fatalf("first release: %+v", r)
	}
	for i := 1; i <= 30; i++ {
		if got := w.version(t, fmt.Sprintf("host-%02d", i)); got != "1.0.0" {
			t.Fatalf("host-%02d runs %s after the first release", i, got)
		}
	}
	if got, want := w.plays(t), []string{"1.0.0 False 10 " + first.Change, "1.0.0 False 10 " + first.Change, "1.0.0 False 10 " + first.Change}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("ansible plays = %q, want one per batch of 10: %q", got, want)
	}

	writeTestFile(t, filepath.Join(w.ans, "fail", "host-15"), "")
	p := w.proposeApproved(t, "2.0.0")
	r := daytwo(t, w.env, "run", p.ID)
	if r.code == 0 {
		t.Fatalf("the run succeeded although host-15 failed: %+v", r)
	}
	for i := 1; i <= 30; i++ {
		h := fmt.Sprintf("host-%02d", i)
		if got := w.version(t, h); got != "1.0.0" {
			t.Errorf("%s runs %s after the rollback, want 1.0.0", h, got)
		}
	}
	plays := w.plays(t)[3:]
	want := []string{"2.0.0 False 10 " + p.Change, "2.0.0 False 10 " + p.Change, "1.0.0 True 20 " + p.Change}
	if strings.Join(plays, "|") != strings.Join(want, "|") {
		t.Errorf("ansible plays of the failed update = %q, want batch 1, batch 2, then one rollback of the 20 touched hosts: %q", plays, want)
	}

	ctx := context.Background()
	db := w.open(t)
	u, err := db.GetUpdate(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if u.State != ops.UpdateRolledBack {
		t.Fatalf("update %s is %s (%s), want rolled_back", u.ID, u.State, u.Reason)
	}
	runs, err := db.Runs(ctx, p.ID)
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs: %v %v", runs, err)
	}
	steps, err := db.Steps(ctx, runs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	pgids := map[string]map[int]bool{}
	for _, s := range steps {
		count[s.Step+"/"+string(s.State)]++
		if s.Step == ops.StepDeploy {
			if pgids[fmt.Sprint(s.Batch)] == nil {
				pgids[fmt.Sprint(s.Batch)] = map[int]bool{}
			}
			pgids[fmt.Sprint(s.Batch)][s.PGID] = true
			if s.Target == "host-15" && (s.State != ops.StepFailed || !strings.Contains(s.Detail, `task "refuse on chosen hosts" failed: host-15 refuses 2.0.0 (disk full)`)) {
				t.Errorf("host-15's deploy step: %s %q", s.State, s.Detail)
			}
		}
	}
	if count["deploy/succeeded"] != 19 || count["deploy/failed"] != 1 || count["rollback/succeeded"] != 20 || count["verify/succeeded"] != 20 {
		t.Errorf("journal: %v, want 19 deploys ok, 1 failed, 20 rollbacks and 20 verifications", count)
	}
	for b, set := range pgids {
		if len(set) != 1 || set[0] {
			t.Errorf("batch %s's deploy steps name process groups %v, want the one ansible-playbook run", b, set)
		}
	}

	w.drain(t)
	notes := strings.Join(w.workNotes(t, p.Change), "\n")
	if !strings.Contains(notes, `host-15 FAILED:`) || !strings.Contains(notes, `task \"refuse on chosen hosts\" failed: host-15 refuses 2.0.0 (disk full)`) && !strings.Contains(notes, `task "refuse on chosen hosts" failed: host-15 refuses 2.0.0 (disk full)`) {
		t.Errorf("work notes lack host-15's failed task:\n%s", notes)
	}
	chg := w.simRecords(t, "change_request", "number="+p.Change)
	atts := w.simRecords(t, "sys_attachment", "table_sys_id="+fmt.Sprint(chg[0]["sys_id"]))
	if len(atts) == 0 {
		t.Fatalf("no run log attached to %s", p.Change)
	}
	text, err := w.svcLog(t, runs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "TASK [refuse on chosen hosts] failed: host-15 refuses 2.0.0 (disk full)") {
		t.Errorf("run log lacks host-15's failed task:\n%s", tail(text, 3000))
	}
}

// svcLog renders a run's log as the evidence attachment does.
func (w *ansibleWorld) svcLog(t *testing.T, runID string) (string, error) {
	db := w.open(t)
	var b strings.Builder
	lines, err := db.LogLines(context.Background(), runID, 0, 100000)
	for _, l := range lines {
		fmt.Fprintf(&b, "%s %s %s\n", l.Target, l.Stream, l.Line)
	}
	return b.String(), err
}

// TestConfigCheckAnsible: config check runs ansible-inventory and the
// playbook's syntax check, naming the key at fault.
func TestConfigCheckAnsible(t *testing.T) {
	w := newAnsibleWorld(t, 3)
	if r := daytwo(t, w.env, "config", "check"); r.code != 0 {
		t.Fatalf("config check: %+v", r)
	}
	inv := filepath.Join(w.ans, "hosts.ini")
	writeTestFile(t, inv, "[fleet]\nhost-01\nhost-02\n[fleet:vars]\nansible_connection=local\n")
	r := daytwo(t, w.env, "config", "check")
	if out := r.stdout + r.stderr; r.code != 2 || !strings.Contains(out, "environments[0].deploy.ansible.inventory") || !strings.Contains(out, "has no host named host-03") {
		t.Errorf("config check, a target missing from the inventory: %+v", r)
	}
	writeTestFile(t, inv, "[fleet]\nhost-01\nhost-02\nhost-03\n")
	writeTestFile(t, filepath.Join(w.ans, "site.yml"), "- hosts: all\n  tasks: [ {{ broken\n")
	r = daytwo(t, w.env, "config", "check")
	if out := r.stdout + r.stderr; r.code != 2 || !strings.Contains(out, "environments[0].deploy.ansible.playbook") || !strings.Contains(out, "syntax-check") {
		t.Errorf("config check, a broken playbook: %+v", r)
	}
	if err := os.Remove(inv); err != nil {
		t.Fatal(err)
	}
	r = daytwo(t, w.env, "config", "check")
	if out := r.stdout + r.stderr; r.code != 2 || !strings.Contains(out, "environments[0].deploy.ansible.inventory") || !strings.Contains(out, "no such file") {
		t.Errorf("config check, a missing inventory: %+v", r)
	}
}
