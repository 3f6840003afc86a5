package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
	opsexec "github.com/daytwo/daytwo/ops/exec"
	"github.com/daytwo/daytwo/store"
)

// benchPlaybook records the release per host: one task, so that what is
// measured is Ansible's own cost per host and daytwo's around it.
const benchPlaybook = `- hosts: all
  gather_facts: false
  tasks:
    - name: record the release
      ansible.builtin.copy:
        dest: "{{ state_dir }}/{{ inventory_hostname }}"
        content: "{{ daytwo_version }}\n"
`

// BenchmarkAnsibleExecutor is issue 19's comparison: a rollout of N local
// hosts (DAYTWO_BENCH_HOSTS, default 1000) through the engine and the
// Ansible executor — one ansible-playbook per batch (DAYTWO_BENCH_BATCH,
// default 25%), forks 50, every step journaled — against the same
// playbook run once over all hosts by plain ansible-playbook. x-ansible
// is their ratio (target ≤ 1.2). `make bench-ansible`; not part of make
// test.
func BenchmarkAnsibleExecutor(b *testing.B) {
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		b.Skip("SKIPPED: ansible-playbook is not installed (apt-get install -y ansible)")
	}
	hosts := 1000
	if s := os.Getenv("DAYTWO_BENCH_HOSTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("DAYTWO_BENCH_HOSTS=%q", s)
		}
		hosts = n
	}
	batch := "25%"
	if s := os.Getenv("DAYTWO_BENCH_BATCH"); s != "" {
		batch = s
	}
	dir := b.TempDir()
	state := filepath.Join(dir, "state")
	for _, d := range []string{state, filepath.Join(dir, "home"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	var inv strings.Builder
	inv.WriteString("[fleet]\n")
	for i := range hosts {
		fmt.Fprintf(&inv, "host-%04d\n", i)
	}
	fmt.Fprintf(&inv, "[fleet:vars]\nansible_connection=local\nansible_python_interpreter=/usr/bin/python3\nstate_dir=%s\n", state)
	invPath, pbPath := filepath.Join(dir, "hosts.ini"), filepath.Join(dir, "site.yml")
	if err := os.WriteFile(invPath, []byte(inv.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(pbPath, []byte(benchPlaybook), 0o600); err != nil {
		b.Fatal(err)
	}
	ansEnv := map[string]string{"ANSIBLE_HOME": filepath.Join(dir, "home"), "ANSIBLE_LOCAL_TEMP": filepath.Join(dir, "tmp")}

	var bs ops.BatchSize
	if err := bs.UnmarshalText([]byte(batch)); err != nil {
		b.Fatal(err)
	}
	env := ops.Environment{
		Name:     "fleet",
		Deploy:   ops.DeploySpec{Ansible: &ops.AnsibleSpec{Playbook: pbPath, Inventory: invPath, Forks: 50, Timeout: 30 * time.Minute}, Env: ansEnv},
		Strategy: ops.Strategy{BatchSize: bs, MaxParallel: 50},
	}
	for i := range hosts {
		env.Targets = append(env.Targets, ops.Target{Name: fmt.Sprintf("host-%04d", i)})
	}
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, "bench.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.SyncEnvironments(ctx, []ops.Environment{env}, "bench"); err != nil {
		b.Fatal(err)
	}
	svc, err := ops.New(ops.Config{Environments: []ops.Environment{env}, Actor: "bench"}, db, nil,
		ops.WithExecutors(func(env ops.Environment) (ops.Executor, ops.HealthChecker, error) {
			a, err := opsexec.NewAnsible(env.Name, env.Deploy)
			return a, nil, err
		}))
	if err != nil {
		b.Fatal(err)
	}

	var daytwoTime, ansibleTime time.Duration
	i := 0
	for b.Loop() {
		i++
		version := fmt.Sprintf("3.0.%d", i)
		p, err := svc.Propose(ctx, ops.ProposeRequest{Environment: env.Name, Version: version})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		res, err := svc.Run(ctx, ops.RunRequest{Update: p.Update.ID})
		daytwoTime += time.Since(start)
		if err != nil || res.Run.State != ops.RunSucceeded {
			b.Fatalf("run: %v %+v", err, res.Run)
		}
		steps, err := db.Steps(ctx, res.Run.ID)
		if err != nil || len(steps) != hosts {
			b.Fatalf("journal holds %d steps (%v), want %d", len(steps), err, hosts)
		}
		checkBenchState(b, state, hosts, version)

		b.StopTimer()
		plain := "9.9." + strconv.Itoa(i)
		cmd := exec.Command("ansible-playbook", "-i", invPath, "--forks", "50", "-e", "daytwo_version="+plain, pbPath)
		cmd.Env = os.Environ()
		for k, v := range ansEnv {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		start = time.Now()
		out, err := cmd.CombinedOutput()
		ansibleTime += time.Since(start)
		if err != nil {
			b.Fatalf("ansible-playbook: %v\n%s", err, tail(string(out), 2000))
		}
		checkBenchState(b, state, hosts, plain)
		b.StartTimer()
	}
	b.ReportMetric(daytwoTime.Seconds()/float64(i), "s-daytwo")
	b.ReportMetric(ansibleTime.Seconds()/float64(i), "s-ansible")
	b.ReportMetric(daytwoTime.Seconds()/ansibleTime.Seconds(), "x-ansible")
}

func checkBenchState(b *testing.B, state string, hosts int, version string) {
	b.Helper()
	for _, i := range []int{0, hosts / 2, hosts - 1} {
		got, err := os.ReadFile(filepath.Join(state, fmt.Sprintf("host-%04d", i)))
		if err != nil || strings.TrimSpace(string(got)) != version {
			b.Fatalf("host-%04d holds %q (%v), want %s", i, got, err, version)
		}
	}
}
