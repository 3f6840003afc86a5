package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// unitSettings reads a systemd unit's Key=Value lines (repeated keys in
// order).
func unitSettings(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "[") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("%s: not Key=Value: %q", path, l)
		}
		out[k] = append(out[k], v)
	}
	return out
}

// TestSystemdUnit checks contrib/systemd/daytwo.service: the settings
// the daemon relies on, `systemd-analyze verify` (when installed), and
// that its command lines parse with the real binary: ExecStartPre's
// config check passes on the example configuration, ExecStart's sync
// --watch takes its flags.
func TestSystemdUnit(t *testing.T) {
	unit := filepath.Join("..", "..", "contrib", "systemd", "daytwo.service")
	s := unitSettings(t, unit)
	want := map[string]string{
		"ExecStart": "/usr/local/bin/daytwo sync --watch", "Restart": "on-failure", "NoNewPrivileges": "yes",
		"DynamicUser": "yes", "User": "daytwo", "StateDirectory": "daytwo", "ExecReload": "/bin/kill -HUP $MAINPID",
	}
	for k, v := range want {
		if len(s[k]) != 1 || s[k][0] != v {
			t.Errorf("%s: %s=%q, want %q", unit, k, s[k], v)
		}
	}
	env := s["Environment"]
	if !strings.Contains(strings.Join(env, " "), "DAYTWO_CONFIG=/etc/daytwo/daytwo.yaml") {
		t.Errorf("%s: the configuration is not read from /etc/daytwo: %q", unit, env)
	}
	if !strings.Contains(strings.Join(env, " "), "DAYTWO_DB=/var/lib/daytwo/") {
		t.Errorf("%s: the database is not in the StateDirectory: %q", unit, env)
	}

	// The command lines, run with the real binary; /etc/daytwo and
	// /var/lib/daytwo are the example configuration and a temporary dir.
	state := t.TempDir()
	run := func(line string, extra ...string) result {
		f := strings.Fields(line)
		if f[0] != "/usr/local/bin/daytwo" {
			t.Fatalf("%s runs %s", unit, f[0])
		}
		var cmdEnv []string
		for _, e := range env {
			e = strings.Replace(e, "/etc/daytwo/daytwo.yaml", fixture(t, "config", "daytwo.example.yaml"), 1)
			e = strings.Replace(e, "/var/lib/daytwo", state, 1)
			cmdEnv = append(cmdEnv, e)
		}
		return daytwo(t, cmdEnv, append(f[1:], extra...)...)
	}
	if r := run(s["ExecStartPre"][0]); r.code != 0 || !strings.Contains(r.stdout, "ok") {
		t.Fatalf("ExecStartPre %q: %+v", s["ExecStartPre"][0], r)
	}
	if r := run(s["ExecStart"][0], "--help"); r.code != 0 || !strings.Contains(r.stdout, "--watch") {
		t.Fatalf("ExecStart %q --help: %+v", s["ExecStart"][0], r)
	}
	if r := run(s["ExecStart"][0], "--once", "--help"); r.code != 0 {
		t.Fatalf("ExecStart flags: %+v", r)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is needed to verify the unit (.ci/run installs systemd)")
		}
		t.Skip("SKIPPED: systemd-analyze is not installed: the unit was not verified by systemd")
	}
	// verify checks that the binary exists: point the copy at the real one.
	b, _ := os.ReadFile(unit)
	abs, _ := filepath.Abs(daytwoBin)
	copyPath := filepath.Join(t.TempDir(), "daytwo.service")
	if err := os.WriteFile(copyPath, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/daytwo", abs)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}
}

// TestDockerfileBuildLine runs the Dockerfile's build stage command with
// the same flags here and checks the binary is static and stamped; the
// image itself needs a Docker daemon (not in this test).
func TestDockerfileBuildLine(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, want := range []string{"AS build", "COPY --from=build", "USER 10001", `CMD ["sync", "--watch"]`} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile has no %q", want)
		}
	}
	m := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 go build .*) -o /out/daytwo \./cmd/daytwo$`).FindStringSubmatch(df)
	if m == nil {
		t.Fatal("Dockerfile: no `RUN CGO_ENABLED=0 go build ... -o /out/daytwo ./cmd/daytwo` line")
	}
	bin := filepath.Join(t.TempDir(), "daytwo")
	line := strings.NewReplacer("${VERSION}", "v0.0.0-docker", "${COMMIT}", "c0ffee", "${DATE}", "2026-12-01T00:00:00Z").Replace(m[1])
	sh := exec.Command("sh", "-c", line+" -o "+bin+" ./cmd/daytwo")
	sh.Dir = filepath.Join("..", "..")
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the Dockerfile's binary is dynamically linked (it has an ELF interpreter)")
		}
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.Contains(string(out), "v0.0.0-docker") || !strings.Contains(string(out), "c0ffee") {
		t.Fatalf("version: %v\n%s", err, out)
	}
}
