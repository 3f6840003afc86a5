package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daytwo/daytwo/itsm/snowsim"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeGatedConfig(t *testing.T, instance string) (env []string, dir string) {
	t.Helper()
	dir = t.TempDir()
	cfg := filepath.Join(dir, "daytwo.yaml")
	if err := os.WriteFile(cfg, []byte(`
store: {path: d.db}
servicenow:
  instance: `+instance+`
  auth: {username: daytwo}
  assignment_group: Platform Ops
  timeout: 2s
environments:
  - name: production
    requires_change: true
    change: {cmdb_ci: checkout-service}
    targets: [{name: prd-1}]
    deploy: {command: ["true"]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"DAYTWO_CONFIG=" + cfg, "DAYTWO_SN_PASSWORD=daytwo"}, dir
}

func TestOfflineProposalQueuesAndIsDeliveredLater(t *testing.T) {
	addr := freeAddr(t) // nothing listens here yet: ServiceNow is down
	env, _ := writeGatedConfig(t, "http://"+addr)

	r := daytwo(t, env, "propose", "production", "2.0.0", "--wait", "3s", "-o", "json")
	if r.code != 0 {
		t.Fatalf("offline propose: %+v", r)
	}
	var p proposeResult
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatal(err)
	}
	if p.Change != "" || p.Queued != 3 || p.State != "proposed" {
		t.Fatalf("offline proposal = %+v; want 3 queued writes (create, request approval, conflict check) and no change yet", p)
	}
	r = daytwo(t, env, "outbox", "list", "-o", "json")
	if r.code != 0 || strings.Count(r.stdout, `"state": "pending"`) != 3 || !strings.Contains(r.stdout, "connection refused") {
		t.Fatalf("outbox while offline: %+v", r)
	}
	if r = daytwo(t, env, "change", "list"); r.code != 0 {
		t.Fatalf("change list must work offline from the mirror: %+v", r)
	}

	// ServiceNow comes back on the same address; a later process delivers.
	sim, err := snowsim.Listen(context.Background(), addr, snowsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	r = daytwo(t, env, "outbox", "retry")
	if r.code != 0 || !strings.Contains(r.stdout, "delivered 3") {
		t.Fatalf("retry after recovery: %+v", r)
	}
	r = daytwo(t, env, "change", "list", "--mine", "-o", "json")
	var rows []changeRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 1 || rows[0].CorrelationID != "daytwo:"+p.ID || rows[0].State != "Assess" {
		t.Fatalf("after delivery: %+v (%v)", rows, err)
	}
	if got := simCorrelationIDs(t, sim.URL(), "daytwo:"); len(got) != 1 {
		t.Fatalf("simulator holds %d changes, want exactly 1", len(got))
	}
}

func TestDaemonServesMetricsAndStopsOnSIGTERM(t *testing.T) {
	sim := startSim(t, snowsim.Options{})
	env, _ := writeGatedConfig(t, sim.URL())
	listen := freeAddr(t)
	daemon := exec.Command(daytwoBin, "sync", "--watch", "--interval", "1s", "--listen", listen)
	daemon.Env = append(os.Environ(), env...)
	var logs strings.Builder
	daemon.Stderr = &logs
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + listen + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, _ := get("/readyz")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			daemon.Process.Kill()
			t.Fatalf("daemon never ready; logs:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body := get("/healthz"); code != http.StatusOK || !strings.Contains(body, "ok") {
		t.Fatalf("healthz: %d %s", code, body)
	}
	_, metrics := get("/metrics")
	for _, want := range []string{
		`daytwo_sync_cycles_total{result="ok"}`, `daytwo_servicenow_requests_total{method="GET",status="200"}`,
		`daytwo_outbox_items{state="pending"} 0`, "daytwo_servicenow_up 1", "daytwo_sync_cycle_duration_seconds_bucket",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if err := daemon.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- daemon.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("daemon exit on SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		daemon.Process.Kill()
		t.Fatal("daemon ignored SIGTERM")
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("daemon log line is not JSON: %q", line)
		}
	}
	if !strings.Contains(logs.String(), `"msg":"daemon stopping;`) {
		t.Fatalf("no graceful stop logged:\n%s", logs.String())
	}
}
