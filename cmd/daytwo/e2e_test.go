package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// These tests drive the real binary, as a user would.

var daytwoBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "daytwo-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	daytwoBin = filepath.Join(dir, "daytwo")
	build := exec.Command("go", "build", "-o", daytwoBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building daytwo:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// daytwo runs the binary in a fresh directory with only the given
// environment (plus PATH and HOME), so the developer's own DAYTWO_* never
// leak in.
func daytwo(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(daytwoBin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "DAYTWO_ACTOR=e2e"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	code := 0
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{stdout.String(), stderr.String(), code}
}

func fixture(t *testing.T, parts ...string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(file), "..", "..", "fixtures"}, parts...)...)
}

func exampleEnv(t *testing.T) ([]string, string) {
	db := filepath.Join(t.TempDir(), "daytwo.db")
	return []string{"DAYTWO_CONFIG=" + fixture(t, "config", "daytwo.example.yaml"), "DAYTWO_DB=" + db}, db
}

func TestConfigCheck(t *testing.T) {
	r := daytwo(t, nil, "config", "check", fixture(t, "config", "daytwo.example.yaml"))
	if r.code != 0 || !strings.Contains(r.stdout, "ok (2 environments, 2 freezes, 2 policies)") {
		t.Fatalf("example: %+v", r)
	}
	r = daytwo(t, nil, "config", "check", fixture(t, "config", "broken.yaml"))
	if r.code != 2 {
		t.Fatalf("broken: exit %d, want 2\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"broken.yaml", "17 problems", "sync.intervall: unknown key", "environments[1].promote_from", "policies[0].expr", "servicenow.timeout"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr+r.stdout, "hunter2") {
		t.Error("the secret written in the broken file is echoed")
	}
	r = daytwo(t, nil, "config", "check", "-o", "json", fixture(t, "config", "broken.yaml"))
	var res configCheckResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 2 || res.OK || len(res.Problems) != 17 {
		t.Fatalf("json: %+v (%v)", r, err)
	}
	r = daytwo(t, nil, "config", "check", "/nonexistent.yaml")
	if r.code != 2 || !strings.Contains(r.stderr, "/nonexistent.yaml") {
		t.Fatalf("missing file: %+v", r)
	}
}

func TestEnvListJSON(t *testing.T) {
	env, _ := exampleEnv(t)
	r := daytwo(t, env, "env", "list", "-o", "json")
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	var rows []envRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Name != "staging" || rows[1].Name != "production" || !rows[1].RequiresChange ||
		rows[1].PromoteFrom != "staging" || len(rows[1].Targets) != 3 || rows[1].ChangeType != "normal" {
		t.Fatalf("rows = %+v", rows)
	}
	r = daytwo(t, env, "env", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "production  production  normal change") {
		t.Fatalf("table: %+v", r)
	}
}

func TestEnvShowAndDiff(t *testing.T) {
	env, _ := exampleEnv(t)
	r := daytwo(t, env, "env", "show", "production")
	if r.code != 0 || !strings.Contains(r.stdout, "normal change, CI checkout-service") || !strings.Contains(r.stdout, "No release recorded yet.") {
		t.Fatalf("show: %+v", r)
	}
	r = daytwo(t, env, "env", "show", "prod")
	if r.code != 2 || !strings.Contains(r.stderr, `no environment named "prod" (configured: staging, production)`) {
		t.Fatalf("unknown env: %+v", r)
	}
	r = daytwo(t, env, "env", "diff", "staging", "production", "-o", "json")
	var diff []envDiffRow
	if err := json.Unmarshal([]byte(r.stdout), &diff); err != nil || r.code != 0 {
		t.Fatalf("diff: %+v %v", r, err)
	}
	want := []envDiffRow{{"config.feature_x", "on", "off"}, {"config.log_level", "info", "warn"}}
	if fmt.Sprint(diff) != fmt.Sprint(want) {
		t.Fatalf("diff = %v, want %v", diff, want)
	}
}

func TestAuditVerifyDetectsHandEdit(t *testing.T) {
	env, dbPath := exampleEnv(t)
	// A read creates no database: a proposal does.
	if r := daytwo(t, env, "propose", "staging", "1.4.2"); r.code != 0 {
		t.Fatalf("%+v", r)
	}
	r := daytwo(t, env, "audit", "verify")
	if r.code != 0 || !strings.Contains(r.stdout, "audit chain ok: 3 events") {
		t.Fatalf("verify clean chain: %+v", r)
	}
	r = daytwo(t, env, "audit", "list", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"action": "environment.configured"`) || !strings.Contains(r.stdout, `"actor": "e2e"`) {
		t.Fatalf("audit list: %+v", r)
	}

	// Edit a row by hand, as someone with sqlite3 would.
	db, err := sql.Open("sqlite", "file:"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_events SET actor = 'mallory' WHERE seq = 1`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	r = daytwo(t, env, "audit", "verify")
	if r.code != 1 || !strings.Contains(r.stdout, "audit chain BROKEN at event 1: content does not match its hash") {
		t.Fatalf("verify tampered chain: %+v", r)
	}
	r = daytwo(t, env, "audit", "export")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 3 || !strings.HasPrefix(r.stdout, `{"seq":1,`) {
		t.Fatalf("export: %+v", r)
	}
}

func TestExitCodes(t *testing.T) {
	env, _ := exampleEnv(t)
	tests := map[string]struct {
		args []string
		code int
		msg  string
	}{
		"unknown command":          {[]string{"bogus"}, 2, `unknown command "bogus"`},
		"unknown flag":             {[]string{"env", "list", "--bogus"}, 2, "unknown flag: --bogus"},
		"bad output":               {[]string{"env", "list", "-o", "xml"}, 2, `--output "xml"`},
		"missing argument":         {[]string{"env", "diff", "staging"}, 2, "want 2 argument(s) (A B)"},
		"bad log level":            {[]string{"--log-level", "loud", "status"}, 2, `--log-level "loud"`},
		"unknown update":           {[]string{"run", "u-1"}, 1, `no update or change "u-1"`},
		"gated needs a password":   {[]string{"propose", "production", "1.2.3"}, 2, "servicenow.auth.password: is required"},
		"bad version":              {[]string{"propose", "staging", "1.2.3;rm"}, 2, "version \"1.2.3;rm\""},
		"sync needs a mode":        {[]string{"sync"}, 2, "exactly one of --once or --watch"},
		"sync needs a password":    {[]string{"sync", "--once"}, 2, "servicenow.auth.password: is required"},
		"console needs a terminal": {nil, 2, "the console needs a terminal"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := daytwo(t, env, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
				t.Fatalf("daytwo %v = exit %d, stderr %q; want exit %d with %q", tc.args, r.code, r.stderr, tc.code, tc.msg)
			}
		})
	}
}

func TestConfigShowRedactsSecrets(t *testing.T) {
	env, _ := exampleEnv(t)
	env = append(env, "DAYTWO_SN_PASSWORD=s3cr3t-pa55", "DAYTWO_SN_INSTANCE=http://127.0.0.1:8089")
	for _, out := range []string{"table", "json"} {
		r := daytwo(t, env, "config", "show", "-o", out)
		if r.code != 0 {
			t.Fatalf("%+v", r)
		}
		if strings.Contains(r.stdout+r.stderr, "s3cr3t-pa55") {
			t.Fatalf("config show -o %s leaks the password:\n%s", out, r.stdout)
		}
		if !strings.Contains(r.stdout, "[redacted] from DAYTWO_SN_PASSWORD") || !strings.Contains(r.stdout, "http://127.0.0.1:8089") {
			t.Fatalf("config show -o %s:\n%s", out, r.stdout)
		}
	}
}

func TestNewerSchemaIsAClearError(t *testing.T) {
	env, dbPath := exampleEnv(t)
	if r := daytwo(t, env, "propose", "staging", "1.4.2"); r.code != 0 {
		t.Fatalf("%+v", r)
	}
	db, err := sql.Open("sqlite", "file:"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_migrations VALUES (99, 'future', 'x')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	r := daytwo(t, env, "status")
	if r.code != 1 || !strings.Contains(r.stderr, "schema version 99") || !strings.Contains(r.stderr, "upgrade daytwo") {
		t.Fatalf("%+v", r)
	}
}

func TestStatusJSON(t *testing.T) {
	env, dbPath := exampleEnv(t)
	r := daytwo(t, env, "status", "-o", "json")
	var rep statusReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 {
		t.Fatalf("%+v %v", r, err)
	}
	if rep.Store.Environments != 2 || rep.Store.Path != dbPath || rep.Store.AuditEvents != 2 {
		t.Fatalf("status = %+v", rep)
	}
	r = daytwo(t, nil, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "daytwo ") {
		t.Fatalf("version: %+v", r)
	}
}
