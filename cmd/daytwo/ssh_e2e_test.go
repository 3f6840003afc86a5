package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daytwo/daytwo/itsm/snowsim"
	"github.com/daytwo/daytwo/ops"
)

// testSSHD is a real sshd on a free loopback port: generated host key and
// user key, its own sshd_config, run as root with -D -e.
type testSSHD struct {
	dir, keyFile, knownHosts string
	port                     int
}

func startTestSSHD(t *testing.T) *testSSHD {
	t.Helper()
	needTool(t, "sshd", "openssh-server")
	needTool(t, "ssh", "openssh-client")
	sshd, _ := exec.LookPath("sshd")
	if os.Getuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the sshd tests must run as root under CI")
		}
		t.Skip("SKIPPED: sshd must run as root to let a user log in; run the tests as root")
	}
	dir, err := os.MkdirTemp("/tmp", "daytwo-sshd-") // sshd wants a root-owned path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &testSSHD{dir: dir, keyFile: filepath.Join(dir, "id_ed25519"), knownHosts: filepath.Join(dir, "known_hosts")}
	for _, k := range []string{"host_ed25519", "id_ed25519"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	pub, _ := os.ReadFile(s.keyFile + ".pub")
	writeTestFile(t, filepath.Join(dir, "authorized_keys"), string(pub))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	s.trust(t, filepath.Join(dir, "host_ed25519.pub"))
	cfg := filepath.Join(dir, "sshd_config")
	writeTestFile(t, cfg, fmt.Sprintf("Port %d\nListenAddress 127.0.0.1\nHostKey %s/host_ed25519\nPidFile %s/sshd.pid\nAuthorizedKeysFile %s/authorized_keys\n"+
		"PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nMaxStartups 100\nMaxSessions 100\n",
		s.port, dir, dir, dir))
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		done := false
		for sc.Scan() {
			if !done && strings.Contains(sc.Text(), "Server listening") {
				done = true
				close(listening)
			}
		}
	}()
	select {
	case <-listening:
	case <-time.After(30 * time.Second):
		t.Fatal("sshd did not start listening within 30s")
	}
	return s
}

// trust writes known_hosts with the public host key in pubFile.
func (s *testSSHD) trust(t *testing.T, pubFile string) {
	t.Helper()
	pub, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, s.knownHosts, fmt.Sprintf("[127.0.0.1]:%d %s\n", s.port, strings.TrimSpace(string(pub))))
}

// TestSSHDeployThroughTheBinary deploys over SSH to two targets behind one
// real sshd, then fails clearly (and runs nothing) once the host key no
// longer matches known_hosts; config check refuses a key others can read.
func TestSSHDeployThroughTheBinary(t *testing.T) {
	srv := startTestSSHD(t)
	w := &safetyWorld{engineWorld: &engineWorld{dir: t.TempDir()}}
	w.sim = startSim(t, snowsim.Options{})
	state := filepath.Join(srv.dir, "state")
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`
store: {path: d.db}
servicenow:
  instance: %s
  auth: {username: daytwo}
  assignment_group: Platform Ops
environments:
  - name: edge
    targets:
      - {name: edge-a, vars: {addr: 127.0.0.1}}
      - {name: edge-b, vars: {addr: 127.0.0.1}}
    deploy:
      ssh:
        host: "{{ .Target.Vars.addr }}"
        user: root
        port: %d
        key_file: %s
        known_hosts: %s
        command: [sh, -c, 'printf "%%s %%s\n" "$DAYTWO_VERSION" "$1" > "$0/$DAYTWO_TARGET"', %s, "{{ .Config.motd }}"]
      timeout: 30s
    version_probe: {command: [cat, "%s/{{ .Target.Name }}"]}
    strategy: {batch_size: 1}
    config: {motd: "it's $(not) run"}
`, w.sim.URL(), srv.port, srv.keyFile, srv.knownHosts, state, state)
	w.cfgPath = filepath.Join(w.dir, "daytwo.yaml")
	writeTestFile(t, w.cfgPath, cfg)
	w.env = []string{"DAYTWO_CONFIG=" + w.cfgPath, "DAYTWO_SN_PASSWORD=daytwo"}
	if r := daytwo(t, w.env, "config", "check"); r.code != 0 {
		t.Fatalf("config check: %+v", r)
	}

	p := w.propose(t, "edge", "2.0.0")
	if r := daytwo(t, w.env, "run", p.ID); r.code != 0 {
		t.Fatalf("run over ssh: %+v", r)
	}
	for _, n := range []string{"edge-a", "edge-b"} {
		b, err := os.ReadFile(filepath.Join(state, n))
		if got := strings.TrimSpace(string(b)); err != nil || got != "2.0.0 it's $(not) run" {
			t.Errorf("%s holds %q (%v)", n, got, err)
		}
	}

	// The host is "reinstalled": known_hosts now holds another key.
	other := filepath.Join(srv.dir, "other_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	srv.trust(t, other+".pub")
	p = w.propose(t, "edge", "3.0.0")
	r := daytwo(t, w.env, "run", p.ID)
	if r.code == 0 {
		t.Fatalf("the run succeeded with a mismatched host key: %+v", r)
	}
	runs, err := w.open(t).Runs(context.Background(), p.ID)
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs %v %v", runs, err)
	}
	steps, err := w.open(t).Steps(context.Background(), runs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range steps {
		if s.Step == ops.StepDeploy && s.Target == "edge-a" {
			found = true
			if s.State != ops.StepFailed || !strings.Contains(s.Detail, "host key verification failed for 127.0.0.1: its key does NOT match the one in "+srv.knownHosts) {
				t.Errorf("edge-a's deploy: %s %q", s.State, s.Detail)
			}
		}
	}
	if !found {
		t.Errorf("no deploy step for edge-a: %+v", steps)
	}
	for _, n := range []string{"edge-a", "edge-b"} {
		if b, _ := os.ReadFile(filepath.Join(state, n)); !strings.HasPrefix(string(b), "2.0.0 ") {
			t.Errorf("%s holds %q after a refused connection", n, b)
		}
	}

	// A private key others can read is a configuration error.
	if err := os.Chmod(srv.keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	r = daytwo(t, w.env, "config", "check")
	if r.code != 2 || !strings.Contains(r.stderr+r.stdout, "environments[0].deploy.ssh.key_file") || !strings.Contains(r.stderr+r.stdout, "readable by others") {
		t.Errorf("config check with a world-readable key: %+v", r)
	}
}
