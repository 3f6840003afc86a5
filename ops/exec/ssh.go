package exec

import (
	"context"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/daytwo/daytwo/ops"
)

// Compile-time checks that SSH is what the engine expects.
var (
	_ ops.Executor   = (*SSH)(nil)
	_ ops.Rollbacker = (*SSH)(nil)
)

// SSH is the SSH executor: it runs the deploy argv on the target through
// the system's OpenSSH client, with host keys verified
// (StrictHostKeyChecking=yes, against known_hosts), no password prompts
// (BatchMode), and one connection per target and run shared by its steps
// (ControlMaster, kept 30s after the last step). Each argument is quoted
// for the remote (POSIX) shell, and the step's values reach the remote
// program as environment variables set by env(1), as for the command
// executor: data, never shell syntax. It is safe for concurrent use.
//
// The system client rather than golang.org/x/crypto/ssh: it honours the
// operators' ssh_config (ProxyJump, certificates, agents), known_hosts
// formats (hashed, @cert-authority, @revoked) and key types exactly as
// their own ssh does, and it is a process like any step, so its process
// group, timeout and DAYTWO_RUN marks (the Reaper) work unchanged.
type SSH struct {
	env        string
	host       tmpl
	user       string
	port       int
	keyFile    string
	knownHosts string
	command    argvTemplate
	rollback   *argvTemplate
	timeout    time.Duration
	extraEnv   []string
	dir        string
	// Program is the ssh client to run (default: found in PATH).
	Program string
	// ControlDir holds the connection sockets (default: a private
	// directory under the temporary directory).
	ControlDir string
}

// NewSSH builds the SSH executor of environment env from spec.SSH (and
// deploy.timeout, deploy.env). Only WithDir applies among the options.
func NewSSH(env string, spec ops.DeploySpec, opts ...Option) (*SSH, error) {
	o := newOptions(opts)
	ss := spec.SSH
	if ss == nil {
		return nil, fmt.Errorf("exec: environment %s: deploy.ssh is not configured", env)
	}
	hostT := ss.Host
	if hostT == "" {
		hostT = "{{ .Target.Name }}"
	}
	host, err := parseTmpl("deploy.ssh.host", hostT)
	if err != nil {
		return nil, fmt.Errorf("exec: environment %s: deploy.ssh.host: %w", env, err)
	}
	if ss.Port < 0 || ss.Port > 65535 {
		return nil, fmt.Errorf("exec: environment %s: deploy.ssh.port %d is not a port", env, ss.Port)
	}
	cmd, err := parseArgv("deploy.ssh.command", ss.Command)
	if err != nil {
		return nil, fmt.Errorf("exec: environment %s: %w", env, err)
	}
	s := &SSH{
		env: env, host: host, user: ss.User, port: ss.Port, keyFile: ss.KeyFile, knownHosts: ss.KnownHosts,
		command: cmd, timeout: spec.Timeout, dir: o.dir, Program: "ssh",
	}
	if len(ss.Rollback) > 0 {
		rb, err := parseArgv("deploy.ssh.rollback", ss.Rollback)
		if err != nil {
			return nil, fmt.Errorf("exec: environment %s: %w", env, err)
		}
		s.rollback = &rb
	}
	if s.timeout <= 0 {
		s.timeout = DefaultStepTimeout
	}
	if s.extraEnv, err = parseExtraEnv("deploy.env", spec.Env); err != nil {
		return nil, fmt.Errorf("exec: environment %s: %w", env, err)
	}
	for _, kv := range s.extraEnv {
		if k, _, _ := strings.Cut(kv, "="); !shellName(k) {
			return nil, fmt.Errorf("exec: environment %s: deploy.env: %q cannot be set on the remote side: use letters, digits and _", env, k)
		}
	}
	return s, nil
}

// Deploy runs the deploy argv on req.Target over SSH.
func (s *SSH) Deploy(ctx context.Context, req ops.StepRequest, log ops.LogSink) error {
	if err := validateStep(s.env, req); err != nil {
		return fmt.Errorf("exec: deploy to %s: %w", req.Target.Name, err)
	}
	if err := s.run(ctx, s.command, req, log); err != nil {
		return fmt.Errorf("exec: deploy %s to %s over ssh: %w", req.Version, req.Target.Name, err)
	}
	return nil
}

// Rollback runs the rollback argv (or the deploy argv with the previous
// release) on req.Target; req is the forward request, as for Command.
func (s *SSH) Rollback(ctx context.Context, req ops.StepRequest, log ops.LogSink) error {
	if req.PreviousVersion == "" {
		return fmt.Errorf("exec: roll back %s: %w", req.Target.Name, errNoPrevious)
	}
	back := req
	back.Version, back.PreviousVersion = req.PreviousVersion, req.Version
	back.Config, back.PreviousConfig = req.PreviousConfig, req.Config
	back.Rollback = true
	if err := validateStep(s.env, back); err != nil {
		return fmt.Errorf("exec: roll back %s: %w", req.Target.Name, err)
	}
	argv := s.command
	if s.rollback != nil {
		argv = *s.rollback
	}
	if err := s.run(ctx, argv, back, log); err != nil {
		return fmt.Errorf("exec: roll back %s to %s over ssh: %w", req.Target.Name, back.Version, err)
	}
	return nil
}

func validateStep(env string, req ops.StepRequest) error {
	c := Command{env: env}
	return c.validate(req)
}

func (s *SSH) run(ctx context.Context, argvT argvTemplate, req ops.StepRequest, log ops.LogSink) error {
	d := newData(s.env, req)
	argv, err := argvT.render(d)
	if err != nil {
		return err
	}
	if strings.Contains(argv[0], "=") {
		return fmt.Errorf("%s[0]: %q: a remote program name cannot hold '='", argvT.key, argv[0])
	}
	host, err := s.host.render(d)
	if err != nil {
		return fmt.Errorf("deploy.ssh.host: %w", err)
	}
	if host == "" || strings.HasPrefix(host, "-") || strings.ContainsFunc(host, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
		return fmt.Errorf("deploy.ssh.host: %q is not a host name", host)
	}
	vars, err := remoteVars(s.extraEnv, d)
	if err != nil {
		return err
	}
	remote := make([]string, 0, 1+len(vars)+len(argv))
	remote = append(remote, "env")
	for _, kv := range vars {
		remote = append(remote, shellQuote(kv))
	}
	for _, a := range argv {
		remote = append(remote, shellQuote(a))
	}
	ctl, err := s.controlPath(req)
	if err != nil {
		return err
	}
	prog := s.Program
	if p, err := osexec.LookPath(prog); err == nil {
		prog = p
	}
	sshArgv := []string{
		prog,
		"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "ControlMaster=auto", "-o", "ControlPath=" + ctl, "-o", "ControlPersist=30s",
	}
	if s.knownHosts != "" {
		sshArgv = append(sshArgv, "-o", "UserKnownHostsFile="+s.knownHosts, "-o", "GlobalKnownHostsFile=/dev/null")
	}
	if s.keyFile != "" {
		sshArgv = append(sshArgv, "-i", s.keyFile, "-o", "IdentitiesOnly=yes")
	}
	if s.port > 0 {
		sshArgv = append(sshArgv, "-p", strconv.Itoa(s.port))
	}
	if s.user != "" {
		sshArgv = append(sshArgv, "-l", s.user)
	}
	sshArgv = append(sshArgv, "-T", "--", host, strings.Join(remote, " "))

	env := make([]string, 0, 64)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) {
			env = append(env, kv)
		}
	}
	sl := newStepLog(log, req.Target.Name)
	sl.emit("daytwo", fmt.Sprintf("run over ssh on %s: %s", host, quoteArgv(argv)))
	p := proc{argv: sshArgv, env: env, dir: s.dir, timeout: s.timeout, log: sl}
	err = p.forStep(req).run(ctx)
	var xe *ExitError
	if errors.As(err, &xe) && xe.Code == 255 {
		return s.sshError(host, xe)
	}
	return err
}

// sshError explains an exit code 255: ssh's own failures, host key
// verification first.
func (s *SSH) sshError(host string, xe *ExitError) error {
	stderr := strings.Join(xe.Stderr, "\n")
	kh := s.knownHosts
	if kh == "" {
		kh = "~/.ssh/known_hosts"
	}
	switch {
	case strings.Contains(stderr, "REMOTE HOST IDENTIFICATION HAS CHANGED") || strings.Contains(stderr, "Host key for") && strings.Contains(stderr, "has changed"):
		return fmt.Errorf("host key verification failed for %s: its key does NOT match the one in %s (the host was reinstalled, or someone is intercepting the connection); refusing to connect: %w", host, kh, xe)
	case strings.Contains(stderr, "Host key verification failed"):
		return fmt.Errorf("host key verification failed for %s: no matching key in %s; refusing to connect: %w", host, kh, xe)
	case strings.Contains(stderr, "Permission denied"):
		return fmt.Errorf("ssh to %s: authentication refused: %w", host, xe)
	}
	return fmt.Errorf("ssh to %s failed, or the remote command exited with 255: %w", host, xe)
}

// controlPath returns the socket of the connection a step shares with the
// other steps of its run and epoch on the same host (%C: ssh's hash of
// host, port and user). A new epoch gets new connections: recovery stops
// the old epoch's programs, its connection masters included.
func (s *SSH) controlPath(req ops.StepRequest) (string, error) {
	dir := s.ControlDir
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "daytwo-ssh-"+strconv.Itoa(os.Getuid()))
		if len(dir) > 40 { // unix socket paths are short (108 bytes)
			dir = "/tmp/daytwo-ssh-" + strconv.Itoa(os.Getuid())
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("ssh connection directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", fmt.Errorf("ssh connection directory: %w", err)
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("ssh connection directory %s must be a directory only its owner can use (mode 0700)", dir)
	}
	run := req.RunID
	if run == "" {
		run = "p" + strconv.Itoa(os.Getpid())
	}
	return filepath.Join(dir, fmt.Sprintf("%s.%d.%%C", run, req.Epoch)), nil
}

// remoteVars lists the variables set for the remote program: deploy.env,
// then the DAYTWO_* values of the step (see the package comment).
func remoteVars(extra []string, d *TemplateData) ([]string, error) {
	vars := append([]string(nil), extra...)
	vars = append(vars,
		"DAYTWO_ENV="+d.Env,
		"DAYTWO_SERVICE="+d.Service,
		"DAYTWO_TARGET="+d.Target.Name,
		"DAYTWO_VERSION="+d.Version,
		"DAYTWO_PREVIOUS_VERSION="+d.PreviousVersion,
		"DAYTWO_CHANGE="+d.Change,
		"DAYTWO_ROLLBACK="+strconv.FormatBool(d.Rollback),
	)
	if d.step.RunID != "" {
		vars = append(vars, RunEnvVar+"="+d.step.RunID, EpochEnvVar+"="+strconv.FormatInt(d.step.Epoch, 10))
	}
	vars, err := appendPrefixed(vars, "DAYTWO_TARGET_", "target var", d.Target.Vars)
	if err != nil {
		return nil, err
	}
	return appendPrefixed(vars, "DAYTWO_CFG_", "config key", d.Config)
}

// shellQuote quotes s as one word for a POSIX shell: inside single quotes
// nothing is special, and a single quote is written '\”.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func shellName(k string) bool {
	if k == "" || (k[0] >= '0' && k[0] <= '9') {
		return false
	}
	for _, c := range k {
		if (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
