package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// idleWorld is `daytwo sync --once` run as a process (the binary built in
// TestMain) against the simulator, through a recording proxy that keeps
// every request's path and query, so the same requests can be replayed by
// a floor that imports nothing of daytwo.
type idleWorld struct {
	dir, cfg string
	env      []string
	mu       sync.Mutex
	log      []string // request URIs since the last take
	proxy    *httptest.Server
	sim      string
}

func newIdleWorld(tb testing.TB, sim string, cis []string) *idleWorld {
	tb.Helper()
	w := &idleWorld{dir: tb.TempDir(), sim: sim}
	target, err := url.Parse(sim)
	if err != nil {
		tb.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	w.proxy = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		w.log = append(w.log, r.Method+" "+r.URL.RequestURI())
		w.mu.Unlock()
		rp.ServeHTTP(rw, r)
	}))
	tb.Cleanup(w.proxy.Close)
	w.cfg = filepath.Join(w.dir, "daytwo.yaml")
	w.writeConfig(tb, cis)
	w.env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "DAYTWO_ACTOR=bench",
		"DAYTWO_CONFIG=" + w.cfg, "DAYTWO_SN_PASSWORD=daytwo",
	}
	return w
}

// writeConfig configures one gated environment per CI, mirror_ci_changes
// on, the instance behind the recording proxy.
func (w *idleWorld) writeConfig(tb testing.TB, cis []string) {
	tb.Helper()
	var envs strings.Builder
	for _, ci := range cis {
		fmt.Fprintf(&envs, `
  - name: env-%s
    requires_change: true
    change: {type: normal, cmdb_ci: %s}
    targets: [{name: %s-1}]
    deploy: {command: ["true"]}`, ci, ci, ci)
	}
	cfg := fmt.Sprintf(`
store: {path: %s}
servicenow:
  instance: %s
  auth: {username: daytwo}
  assignment_group: Platform Ops
  mirror_ci_changes: true
environments:%s
`, filepath.Join(w.dir, "d.db"), w.proxy.URL, envs.String())
	if err := os.WriteFile(w.cfg, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// syncOnce runs `daytwo sync --once` and returns its wall time and the
// requests it made.
func (w *idleWorld) syncOnce(tb testing.TB) (time.Duration, []string) {
	tb.Helper()
	w.take()
	cmd := exec.Command(daytwoBin, "sync", "--once")
	cmd.Dir, cmd.Env = w.dir, w.env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		tb.Fatalf("daytwo sync --once: %v\n%s", err, out)
	}
	return took, w.take()
}

func (w *idleWorld) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.log
	w.log = nil
	return l
}

func countTable(reqs []string, table string) int {
	n := 0
	for _, r := range reqs {
		if strings.Contains(r, "/api/now/table/"+table+"?") || strings.HasSuffix(r, "/api/now/table/"+table) {
			n++
		}
	}
	return n
}

// An idle `sync --once` as a process looks up no CI: their sys_ids are
// cached in the store (issue 14). Renaming a configured CI looks up that
// one CI, once; the others stay cached.
func TestIdleSyncOnceLooksUpNoCI(t *testing.T) {
	sim := newBenchSim(t, 50)
	cis := append([]string(nil), benchCIs[:4]...)
	w := newIdleWorld(t, sim.URL(), cis)
	_, first := w.syncOnce(t)
	if n := countTable(first, "cmdb_ci"); n != len(cis) {
		t.Fatalf("first sync looked up %d CIs, want %d:\n%s", n, len(cis), strings.Join(first, "\n"))
	}
	_, idle := w.syncOnce(t)
	if n := countTable(idle, "cmdb_ci"); n != 0 {
		t.Fatalf("idle sync looked up %d CIs, want 0 (cached):\n%s", n, strings.Join(idle, "\n"))
	}
	if len(idle) != 3 {
		t.Errorf("idle sync made %d requests, want 3 (changes, approvals, deletions):\n%s", len(idle), strings.Join(idle, "\n"))
	}
	// The first environment's CI is renamed in the config: that CI only is
	// looked up, once.
	cis[0] = benchCIs[4]
	w.writeConfig(t, cis)
	for run := range 2 {
		_, after := w.syncOnce(t)
		var looked []string
		for _, r := range after {
			if strings.Contains(r, "/table/cmdb_ci") {
				u, _ := url.Parse(strings.TrimPrefix(r, "GET "))
				looked = append(looked, u.Query().Get("sysparm_query"))
			}
		}
		want := 1 - run
		if len(looked) != want || (want == 1 && !strings.Contains(looked[0], benchCIs[4])) {
			t.Fatalf("run %d after renaming one CI looked up %q, want %d look-up(s) of %s", run+1, looked, want, benchCIs[4])
		}
	}
}

// BenchmarkIdleSyncOnce: an idle `daytwo sync --once`, the whole process,
// against the floor — curl making the same requests (replayed from the
// recording proxy, one curl process, as an operator's script would), in
// the same iteration (target ≤ 2×).
func BenchmarkIdleSyncOnce(b *testing.B) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		b.Skip("curl is not installed: the floor needs it")
	}
	sim := newBenchSim(b, 1000)
	w := newIdleWorld(b, sim.URL(), benchCIs)
	w.syncOnce(b) // mirror everything, cache the CIs
	w.syncOnce(b)
	var ours, floor, direct, ratio, ratioDirect []float64
	reqs := 0
	for b.Loop() {
		took, sent := w.syncOnce(b)
		reqs = len(sent)
		replay := func(base string) time.Duration {
			args := []string{"-s", "-S", "--fail", "-u", "daytwo:daytwo", "-H", "Accept: application/json"}
			for i, r := range sent {
				method, uri, _ := strings.Cut(r, " ")
				if method != http.MethodGet {
					b.Fatalf("idle sync sent %s", r)
				}
				if i > 0 {
					args = append(args, "--next", "-s", "-S", "--fail", "-u", "daytwo:daytwo", "-H", "Accept: application/json")
				}
				args = append(args, "-o", os.DevNull, base+uri)
			}
			cmd := exec.CommandContext(context.Background(), curl, args...)
			start := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("curl: %v\n%s", err, out)
			}
			return time.Since(start)
		}
		// The floor goes the way daytwo went, through the recording
		// proxy (an extra hop that is the benchmark's, not daytwo's);
		// the replay straight to the simulator, as the figure was taken
		// until perf3, is reported beside it.
		c := replay(w.proxy.URL)
		d := replay(w.sim)
		w.take()
		ours, floor, direct = append(ours, took.Seconds()*1000), append(floor, c.Seconds()*1000), append(direct, d.Seconds()*1000)
		ratio, ratioDirect = append(ratio, took.Seconds()/c.Seconds()), append(ratioDirect, took.Seconds()/d.Seconds())
	}
	med := func(v []float64) float64 {
		s := append([]float64(nil), v...)
		sort.Float64s(s)
		return s[len(s)/2]
	}
	b.ReportMetric(med(ours), "ms/sync")
	b.ReportMetric(med(floor), "floor-ms")
	b.ReportMetric(med(ratio), "x-floor")
	b.ReportMetric(med(direct), "direct-floor-ms")
	b.ReportMetric(med(ratioDirect), "x-direct-floor")
	b.ReportMetric(float64(reqs), "requests")
}
