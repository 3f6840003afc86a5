package exec

import (
	"bufio"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// sshServer is a real sshd on a loopback port, accepting one user key.
type sshServer struct {
	Dir        string
	Port       int
	KeyFile    string // the client's private key
	KnownHosts string // the server's host key, as known_hosts
	HostKeyPub string
}

// startSSHD starts sshd -D -e on a free loopback port with a generated host
// key and user key; it is stopped at the end of the test.
func startSSHD(t testing.TB) *sshServer {
	t.Helper()
	sshd := needBinary(t, "sshd", "openssh-server")
	keygen := needBinary(t, "ssh-keygen", "openssh-client")
	needBinary(t, "ssh", "openssh-client")
	if os.Getuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("sshd tests must run as root under CI (sshd changes to the logged-in user)")
		}
		t.Skip("SKIPPED: sshd must run as root to let a user log in; run the tests as root")
	}
	// sshd insists on a root-owned, not group/world-writable path to its
	// files: a fresh directory under /tmp rather than t.TempDir's tree
	// (which may be under a writable TMPDIR).
	dir, err := os.MkdirTemp("/tmp", "daytwo-sshd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &sshServer{Dir: dir, KeyFile: filepath.Join(dir, "id_ed25519"), KnownHosts: filepath.Join(dir, "known_hosts")}
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := osexec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run(keygen, "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "host_ed25519"))
	run(keygen, "-q", "-t", "ed25519", "-N", "", "-f", s.KeyFile)
	pub, err := os.ReadFile(s.KeyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "authorized_keys"), string(pub))
	hostPub, err := os.ReadFile(filepath.Join(dir, "host_ed25519.pub"))
	if err != nil {
		t.Fatal(err)
	}
	s.HostKeyPub = strings.TrimSpace(string(hostPub))

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	writeFile(t, s.KnownHosts, fmt.Sprintf("[127.0.0.1]:%d %s\n", s.Port, s.HostKeyPub))
	cfg := filepath.Join(dir, "sshd_config")
	writeFile(t, cfg, fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s/host_ed25519
PidFile %s/sshd.pid
AuthorizedKeysFile %s/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
MaxStartups 100
MaxSessions 100
`, s.Port, dir, dir, dir))
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // privilege separation directory
		t.Fatal(err)
	}
	cmd := osexec.Command(sshd, "-D", "-e", "-f", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan struct{})
	var logMu strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			logMu.WriteString(sc.Text() + "\n")
			if !once && strings.Contains(sc.Text(), "Server listening") {
				once = true
				close(listening)
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	select {
	case <-listening:
	case <-time.After(30 * time.Second):
		t.Fatalf("sshd did not start listening within 30s")
	}
	return s
}

// spec is the SSH deploy spec of target hosts reached on s.
func (s *sshServer) spec(command ...string) ops.DeploySpec {
	return ops.DeploySpec{Timeout: time.Minute, SSH: &ops.SSHSpec{
		Host: "127.0.0.1", User: "root", Port: s.Port,
		KeyFile: s.KeyFile, KnownHosts: s.KnownHosts, Command: command,
	}}
}

func TestSSHDeployQuotesArgumentsAndPassesValuesAsData(t *testing.T) {
	srv := startSSHD(t)
	out := filepath.Join(srv.Dir, "out")
	// A value full of shell syntax must arrive as one argument, verbatim.
	x, err := NewSSH("staging", srv.spec("sh", "-c", `printf '%s|' "$@" > "$0"; printf '%s|' "$DAYTWO_VERSION" "$DAYTWO_TARGET" "$DAYTWO_CFG_LOG_LEVEL" "$DAYTWO_RUN" >> "$0"`,
		out, "{{ .Config.log_level }}", "a b", "it's", "$(touch "+srv.Dir+"/pwned)", ";", "{{ .Target.Name }}"))
	if err != nil {
		t.Fatal(err)
	}
	x.ControlDir = filepath.Join(srv.Dir, "ctl")
	if err := os.Mkdir(x.ControlDir, 0o700); err != nil {
		t.Fatal(err)
	}
	req := stepReq()
	req.Config["log_level"] = "warn; rm -rf /"
	req.RunID, req.Epoch = "r-ssh", 1
	var pid int
	req.OnStart = func(p int) error { pid = p; return nil }
	var rec recorder
	if err := x.Deploy(t.Context(), req, rec.sink); err != nil {
		t.Fatalf("deploy: %v\n%v", err, rec.all())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := "warn; rm -rf /|a b|it's|$(touch " + srv.Dir + "/pwned)|;|stg-1|1.2.3|stg-1|warn; rm -rf /|r-ssh|"
	if string(b) != want {
		t.Errorf("remote saw %q\nwant      %q", b, want)
	}
	if _, err := os.Stat(filepath.Join(srv.Dir, "pwned")); err == nil {
		t.Error("a value was run as shell syntax on the remote side")
	}
	if pid == 0 {
		t.Error("OnStart was not called")
	}

	// The second step of the run reuses the connection: its master socket
	// is there, and a second deploy still works.
	socks, _ := filepath.Glob(filepath.Join(x.ControlDir, "r-ssh.1.*"))
	if len(socks) != 1 {
		t.Errorf("connection sockets = %v, want one master for the run", socks)
	}
	req.Target.Name = "stg-2"
	if err := x.Deploy(t.Context(), req, rec.sink); err != nil {
		t.Fatalf("second deploy: %v", err)
	}
	if b, _ := os.ReadFile(out); !strings.Contains(string(b), "|stg-2|") {
		t.Errorf("second deploy wrote %q", b)
	}
	// End the master: ssh -O exit on the socket.
	_ = osexec.Command("ssh", "-o", "ControlPath="+socks[0], "-O", "exit", "127.0.0.1").Run()
}

func TestSSHHostKeyMismatchFailsClearly(t *testing.T) {
	srv := startSSHD(t)
	// known_hosts holds another key for the server's address.
	other := filepath.Join(srv.Dir, "other")
	if out, err := osexec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	pub, err := os.ReadFile(other + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, srv.KnownHosts, fmt.Sprintf("[127.0.0.1]:%d %s\n", srv.Port, strings.TrimSpace(string(pub))))
	marker := filepath.Join(srv.Dir, "ran")
	x, err := NewSSH("staging", srv.spec("touch", marker))
	if err != nil {
		t.Fatal(err)
	}
	x.ControlDir = filepath.Join(srv.Dir, "ctl")
	_ = os.Mkdir(x.ControlDir, 0o700)
	err = x.Deploy(t.Context(), stepReq(), nil)
	if err == nil || !strings.Contains(err.Error(), "host key verification failed for 127.0.0.1: its key does NOT match") {
		t.Fatalf("deploy with a mismatched host key: %v", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran although the host key did not match")
	}

	// An unknown host (empty known_hosts) is refused too: no TOFU.
	writeFile(t, srv.KnownHosts, "")
	err = x.Deploy(t.Context(), stepReq(), nil)
	if err == nil || !strings.Contains(err.Error(), "no matching key in "+srv.KnownHosts) {
		t.Fatalf("deploy to an unknown host: %v", err)
	}
}

func TestShellQuote(t *testing.T) {
	for _, s := range []string{"", "a", "it's", `'"$x\`, "a\nb"} {
		out, err := osexec.Command("sh", "-c", "printf %s "+shellQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("shellQuote(%q) read back as %q (%v)", s, out, err)
		}
	}
}
