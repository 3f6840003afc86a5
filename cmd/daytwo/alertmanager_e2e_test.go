package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daytwo/daytwo/itsm/snowsim"
	"github.com/daytwo/daytwo/ops"
)

const webhookToken = "s3cret-webhook-token-for-tests"

// startAlertDaemon runs `daytwo sync --watch` with the webhook receiver on
// and returns its address once it is ready.
func startAlertDaemon(t *testing.T) (env []string, listen string) {
	t.Helper()
	sim := startSim(t, snowsim.Options{})
	env, _ = writeGatedConfig(t, sim.URL())
	return startAlertDaemonWith(t, env)
}

// startAlertDaemonWith is startAlertDaemon over the configuration in env.
func startAlertDaemonWith(t *testing.T, env []string) ([]string, string) {
	t.Helper()
	return startDaemonWith(t, env, nil)
}

// startDaemonWith is startAlertDaemonWith with the daemon's stdout going
// to stdout and more flags.
func startDaemonWith(t *testing.T, env []string, stdout io.Writer, flags ...string) ([]string, string) {
	t.Helper()
	env = append(env, "DAYTWO_ALERTMANAGER_TOKEN="+webhookToken)
	listen := freeAddr(t)
	daemon := exec.Command(daytwoBin, append([]string{"sync", "--watch", "--interval", "1s", "--listen", listen}, flags...)...)
	daemon.Env = append(os.Environ(), env...)
	daemon.Stdout = stdout
	var logs strings.Builder
	daemon.Stderr = &logs
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = daemon.Process.Kill(); _ = daemon.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + listen + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon never answered /healthz; logs:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return env, listen
}

func postWebhook(t *testing.T, listen, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+listen+"/alertmanager", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func alertEvents(t *testing.T, env []string) []ops.Event {
	t.Helper()
	r := daytwo(t, env, "audit", "list", "-o", "json")
	if r.code != 0 {
		t.Fatalf("audit list: %+v", r)
	}
	var events []ops.Event
	if err := json.Unmarshal([]byte(r.stdout), &events); err != nil {
		t.Fatalf("audit list: %v\n%s", err, r.stdout)
	}
	var out []ops.Event
	for _, e := range events {
		if strings.HasPrefix(e.Action, "alert.") {
			out = append(out, e)
		}
	}
	return out
}

const firing = `{"version":"4","status":"firing","receiver":"daytwo","externalURL":"http://am.example",
 "alerts":[{"status":"firing","labels":{"alertname":"HighErrorRate","environment":"production","service":"checkout","severity":"page"},
 "annotations":{"summary":"5xx above 5%"},"startsAt":"2026-12-01T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"abc123"}]}`

func TestAlertmanagerWebhook(t *testing.T) {
	env, listen := startAlertDaemon(t)
	tests := []struct {
		name, token, body string
		code              int
		want              string
	}{
		{"no token", "", firing, http.StatusUnauthorized, "missing or wrong bearer token"},
		{"wrong token", "nope", firing, http.StatusUnauthorized, "missing or wrong bearer token"},
		{"not JSON", webhookToken, `{"version":"4",`, http.StatusBadRequest, "body"},
		{"wrong type", webhookToken, `{"version":"4","alerts":"x"}`, http.StatusBadRequest, "field alerts: string where"},
		{"wrong version", webhookToken, `{"version":"3","alerts":[]}`, http.StatusBadRequest, `version: "3"`},
		{"no environment label", webhookToken, strings.Replace(firing, `"environment":"production",`, "", 1), http.StatusBadRequest, "alerts[0].labels.environment: missing"},
		{"bad status", webhookToken, strings.Replace(firing, `"status":"firing","labels"`, `"status":"burning","labels"`, 1), http.StatusBadRequest, `alerts[0].status: "burning"`},
		{"unknown environment", webhookToken, strings.Replace(firing, `"environment":"production"`, `"environment":"prod"`, 1), http.StatusUnprocessableEntity, `no environment named "prod"`},
	}
	for _, tc := range tests {
		code, body := postWebhook(t, listen, tc.token, tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %q, want %d containing %q", tc.name, code, body, tc.code, tc.want)
		}
		if strings.Contains(body, webhookToken) {
			t.Errorf("%s: the answer echoes the token", tc.name)
		}
	}
	if ev := alertEvents(t, env); len(ev) != 0 {
		t.Fatalf("refused requests recorded alerts: %+v", ev)
	}
	if code, body := postWebhook(t, listen, webhookToken, firing); code != http.StatusOK {
		t.Fatalf("valid webhook: %d %s", code, body)
	}
	ev := alertEvents(t, env)
	if len(ev) != 1 || ev[0].Action != "alert.firing" || ev[0].Subject != "HighErrorRate" || ev[0].Environment != "production" ||
		ev[0].Detail["service"] != "checkout" || ev[0].Detail["fingerprint"] != "abc123" {
		t.Fatalf("recorded alerts = %+v", ev)
	}
}

// TestRealAlertmanagerFiresToTheDaemon has a real Alertmanager (Debian's
// prometheus-alertmanager) deliver an alert to the daemon's receiver with
// the bearer token.
func TestRealAlertmanagerFiresToTheDaemon(t *testing.T) {
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		if bin, err = exec.LookPath("alertmanager"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("CI: alertmanager is not installed (apt-get install prometheus-alertmanager)")
			}
			t.Skip("SKIPPED LOUDLY: no alertmanager on PATH; apt-get install -y prometheus-alertmanager to run this test")
		}
	}
	env, listen := startAlertDaemon(t)
	dir := t.TempDir()
	amAddr, clusterAddr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
route:
  receiver: daytwo
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: daytwo
    webhook_configs:
      - url: http://%s/alertmanager
        send_resolved: true
        http_config:
          authorization: {type: Bearer, credentials: %s}
`, listen, webhookToken)), 0o600); err != nil {
		t.Fatal(err)
	}
	am := exec.Command(bin, "--config.file", cfg, "--storage.path", filepath.Join(dir, "data"),
		"--web.listen-address", amAddr, "--cluster.listen-address", clusterAddr)
	var amLogs bytes.Buffer
	am.Stdout, am.Stderr = &amLogs, &amLogs
	if err := am.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = am.Process.Kill(); _ = am.Wait() })
	alert := `[{"labels":{"alertname":"HighErrorRate","environment":"production","service":"checkout"},"annotations":{"summary":"from a real alertmanager"}}]`
	deadline := time.Now().Add(60 * time.Second)
	posted := false
	for {
		if !posted {
			resp, err := http.Post("http://"+amAddr+"/api/v2/alerts", "application/json", strings.NewReader(alert))
			if err == nil {
				resp.Body.Close()
				posted = resp.StatusCode == http.StatusOK
			}
		}
		if posted {
			if ev := alertEvents(t, env); len(ev) > 0 {
				if ev[0].Action != "alert.firing" || ev[0].Environment != "production" || !strings.HasPrefix(fmt.Sprint(ev[0].Detail["source"]), "http://") {
					t.Fatalf("alert recorded as %+v", ev[0])
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alert reached the daemon (posted=%v); alertmanager logs:\n%s", posted, amLogs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestAlertOutsideARunOpensOneIncident: with alertmanager.open_incidents, a
// firing alert for a gated environment no run holds opens an incident
// caused by the change of the release it runs; Alertmanager repeating the
// same alert finds that incident instead of opening another.
func TestAlertOutsideARunOpensOneIncident(t *testing.T) {
	w := newEngineWorld(t, "0s")
	f, err := os.OpenFile(w.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("alertmanager: {open_incidents: true}\n")
	f.Close()
	p := w.propose(t, "production", "1.1.0")
	w.approve(t, p.Change)
	if r := daytwo(t, w.env, "sync", "--once"); r.code != 0 {
		t.Fatalf("sync: %+v", r)
	}
	if r := daytwo(t, w.env, "run", p.ID, "--wait", "60s"); r.code != 0 {
		t.Fatalf("run production: %+v", r)
	}
	env, listen := startAlertDaemonWith(t, w.env)
	chg := w.simRecords(t, "change_request", "number="+p.Change)
	if len(chg) != 1 {
		t.Fatalf("change %s: %d records", p.Change, len(chg))
	}
	incidents := func() []map[string]any {
		return w.simRecords(t, "incident", "correlation_idSTARTSWITHdaytwo:"+p.ID+":alert:")
	}
	for round := range 2 {
		if code, body := postWebhook(t, listen, webhookToken, firing); code != http.StatusOK {
			t.Fatalf("webhook (round %d): %d %s", round, code, body)
		}
		waitFor(t, "the incident of the alert", 60*time.Second, func() bool {
			if len(incidents()) == 0 {
				return false
			}
			r := daytwo(t, env, "outbox", "list", "-o", "json")
			return r.code == 0 && strings.TrimSpace(r.stdout) == "[]"
		})
	}
	inc := incidents()
	if len(inc) != 1 {
		t.Fatalf("%d incidents for one alert notified twice", len(inc))
	}
	if inc[0]["caused_by"] != chg[0]["sys_id"] || !strings.Contains(fmt.Sprint(inc[0]["short_description"]), "HighErrorRate") ||
		!strings.Contains(fmt.Sprint(inc[0]["description"]), "5xx above 5%") {
		t.Fatalf("incident = %v; want it caused by %s, naming the alert and its summary", inc[0], chg[0]["sys_id"])
	}
	if ev := alertEvents(t, env); len(ev) != 2 {
		t.Fatalf("%d alert events, want the two notifications", len(ev))
	}
}
