package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daytwo/daytwo/itsm"
	"github.com/daytwo/daytwo/itsm/snowsim"
)

// The mirror benchmarks (issue 14) run every party in its own process, so
// each one's CPU time and peak RSS are its own (getrusage of the child):
//
//   - the simulator (role "sim"), holding the generated changes;
//   - the floor (role "floor"): floorMirror, a minimal net/http +
//     encoding/json loop that imports nothing of daytwo;
//   - daytwo's mirror (role "mirror"): ops.Service.SyncOnce into a fresh
//     SQLite file, the daemon's own cycle.
//
// The test binary re-executes itself for the roles; init runs before
// TestMain, so a role process does not build the daytwo binary.

const benchRoleEnv = "DAYTWO_BENCH_ROLE"

func init() {
	role := os.Getenv(benchRoleEnv)
	if role == "" {
		return
	}
	// DAYTWO_BENCH_PROFILE=<dir> writes each role's CPU profile there.
	if dir := os.Getenv("DAYTWO_BENCH_PROFILE"); dir != "" {
		f, err := os.Create(filepath.Join(dir, role+".pprof"))
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	err := runBenchRole(role)
	pprof.StopCPUProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, role+":", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// roleResult is what a floor or mirror process prints as its last line.
type roleResult struct {
	Rows     int     `json:"rows"`
	Requests int     `json:"requests"`
	Seconds  float64 `json:"seconds"`
}

func runBenchRole(role string) error {
	ctx := context.Background()
	n, _ := strconv.Atoi(os.Getenv("DAYTWO_BENCH_N"))
	base := os.Getenv("DAYTWO_BENCH_URL")
	switch role {
	case "sim":
		srv, err := snowsim.Listen(ctx, "127.0.0.1:0", snowsim.Options{})
		if err != nil {
			return err
		}
		defer srv.Close()
		if n > 0 {
			if err := srv.Sim().GenerateChanges(n, snowsim.GenerateOptions{}); err != nil {
				return err
			}
		}
		fmt.Println(srv.URL())
		_, _ = io.Copy(io.Discard, os.Stdin) // until the benchmark closes our stdin
		return nil
	case "floor":
		start := time.Now()
		rows, reqs, err := floorMirror(base, "daytwo", "daytwo", os.Getenv("DAYTWO_BENCH_QUERY"),
			os.Getenv("DAYTWO_BENCH_FIELDS"), 1000)
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(roleResult{Rows: rows, Requests: reqs, Seconds: time.Since(start).Seconds()})
	case "mirror":
		m, err := openBenchMirror(base, os.Getenv("DAYTWO_BENCH_DIR"))
		if err != nil {
			return err
		}
		defer m.db.Close()
		start := time.Now()
		rep, err := m.svc.SyncOnce(ctx)
		if err != nil {
			return err
		}
		if rep.Upserted != n {
			return fmt.Errorf("mirrored %d changes, want %d (report %+v)", rep.Upserted, n, rep)
		}
		return json.NewEncoder(os.Stdout).Encode(roleResult{Rows: rep.Upserted, Requests: rep.Requests, Seconds: time.Since(start).Seconds()})
	case "mirror-pg":
		return runPGMirrorRole(ctx, n, base, os.Getenv("DAYTWO_BENCH_PG_URL"), os.Getenv("DAYTWO_BENCH_PG_PASSWORD"))
	}
	return fmt.Errorf("unknown role %q", role)
}

// floorRow is one change_request row as the Table API sends it in value
// mode: every field a string (the fields of itsm.ChangeFields).
type floorRow struct {
	SysID               string `json:"sys_id"`
	Number              string `json:"number"`
	Type                string `json:"type"`
	State               string `json:"state"`
	Approval            string `json:"approval"`
	Risk                string `json:"risk"`
	Impact              string `json:"impact"`
	Priority            string `json:"priority"`
	ShortDescription    string `json:"short_description"`
	Description         string `json:"description"`
	AssignmentGroup     string `json:"assignment_group"`
	AssignmentGroupName string `json:"assignment_group.name"`
	CmdbCI              string `json:"cmdb_ci"`
	CmdbCIName          string `json:"cmdb_ci.name"`
	RequestedBy         string `json:"requested_by"`
	RequestedByName     string `json:"requested_by.name"`
	StartDate           string `json:"start_date"`
	EndDate             string `json:"end_date"`
	WorkStart           string `json:"work_start"`
	WorkEnd             string `json:"work_end"`
	CloseCode           string `json:"close_code"`
	CloseNotes          string `json:"close_notes"`
	CorrelationID       string `json:"correlation_id"`
	Active              string `json:"active"`
	OnHold              string `json:"on_hold"`
	ConflictStatus      string `json:"conflict_status"`
	SysCreatedOn        string `json:"sys_created_on"`
	SysUpdatedOn        string `json:"sys_updated_on"`
	SysModCount         string `json:"sys_mod_count"`
}

// floorMirror is the floor: the simplest program that reads the same rows
// the mirror reads, with the same requests — the same extra query, fields
// and page size, keyset paging on (sys_updated_on, sys_id) below a frozen
// bound (finish the boundary second, then move on; stop on an empty
// page), sysparm_no_count — decoding each page with encoding/json into
// typed rows and dropping them. It uses net/http and encoding/json only.
func floorMirror(base, user, pass, query, fields string, limit int) (rows, requests int, err error) {
	until := time.Now().UTC().Add(-10 * time.Second).Truncate(time.Second).Format("2006-01-02 15:04:05")
	client := &http.Client{Timeout: 60 * time.Second}
	get := func(q string) ([]floorRow, error) {
		v := url.Values{}
		v.Set("sysparm_query", q)
		v.Set("sysparm_fields", fields)
		v.Set("sysparm_limit", strconv.Itoa(limit))
		v.Set("sysparm_display_value", "false")
		v.Set("sysparm_exclude_reference_link", "true")
		v.Set("sysparm_suppress_pagination_header", "true")
		v.Set("sysparm_no_count", "true")
		req, err := http.NewRequest(http.MethodGet, base+"/api/now/table/change_request?"+v.Encode(), nil)
		if err != nil {
			return nil, err
		}
		req.SetBasicAuth(user, pass)
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		requests++
		if resp.StatusCode == http.StatusNotFound {
			return nil, nil
		}
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			return nil, fmt.Errorf("GET %s: %s: %s", q, resp.Status, b)
		}
		var body struct {
			Result []floorRow `json:"result"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return nil, err
		}
		return body.Result, nil
	}
	var curTS, curID string
	boundary := false
	for {
		var q string
		if boundary {
			q = query + "^sys_updated_on=" + curTS + "^sys_id>" + curID + "^ORDERBYsys_id"
		} else {
			lower := ""
			if curTS != "" {
				lower = "^sys_updated_on>" + curTS
			}
			q = query + lower + "^sys_updated_on<" + until + "^ORDERBYsys_updated_on^ORDERBYsys_id"
		}
		page, err := get(q)
		if err != nil {
			return rows, requests, err
		}
		if len(page) == 0 {
			if boundary {
				boundary = false
				continue
			}
			return rows, requests, nil
		}
		rows += len(page)
		last := page[len(page)-1]
		curTS, curID = last.SysUpdatedOn, last.SysID
		boundary = true
	}
}

// benchSimProcess starts the simulator in its own process with n
// generated changes and returns its URL.
func benchSimProcess(tb testing.TB, n int) string {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchRoleEnv+"=sim", "DAYTWO_BENCH_N="+strconv.Itoa(n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("simulator process: %v", err)
	}
	return strings.TrimSpace(line)
}

// roleRun is one floor or mirror process: its result, CPU time and peak RSS.
type roleRun struct {
	roleResult
	cpu    time.Duration
	maxRSS int64 // bytes
}

func (r roleRun) rate() float64 { return float64(r.Rows) / r.Seconds }

func runRole(tb testing.TB, role string, env ...string) roleRun {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), benchRoleEnv+"="+role), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("%s process: %v\n%s", role, err, stderr.String())
	}
	var rr roleRun
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rr.roleResult); err != nil {
		tb.Fatalf("%s process output %q: %v", role, out, err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	rr.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	rr.maxRSS = ru.Maxrss * 1024
	return rr
}

// benchMirrorVsFloor runs, in each iteration, the floor and daytwo's
// mirror against one simulator process holding n changes, and reports
// their rates, CPU and peak RSS. Ratios are per iteration, so load from
// other work on the machine falls on both.
func benchMirrorVsFloor(b *testing.B, n int, clientLoop bool) {
	url := benchSimProcess(b, n)
	client, _ := newBenchClient(b, url)
	query := mirrorQuery(b, client)
	fields := strings.Join(itsm.ChangeFields(), ",")
	common := []string{"DAYTWO_BENCH_URL=" + url, "DAYTWO_BENCH_N=" + strconv.Itoa(n)}
	var floor, mirror []roleRun
	var loopRate float64
	iter := 0
	for b.Loop() {
		iter++
		f := runRole(b, "floor", append(common, "DAYTWO_BENCH_QUERY="+query, "DAYTWO_BENCH_FIELDS="+fields)...)
		if f.Rows != n {
			b.Fatalf("floor read %d rows, want %d", f.Rows, n)
		}
		m := runRole(b, "mirror", append(common, "DAYTWO_BENCH_DIR="+filepath.Join(b.TempDir(), fmt.Sprint(iter)))...)
		floor, mirror = append(floor, f), append(mirror, m)
		if clientLoop {
			// daytwo's own client loop, in this process: the same pages
			// through itsm.Client.SyncChanges, decoded and dropped.
			start := time.Now()
			rows := 0
			if _, err := client.SyncChanges(context.Background(), itsm.SyncRequest{Query: query, Fields: itsm.ChangeFields()},
				func(page []itsm.Change, _ itsm.Watermark) error { rows += len(page); return nil }); err != nil {
				b.Fatal(err)
			}
			if rows != n {
				b.Fatalf("client loop read %d rows, want %d", rows, n)
			}
			loopRate += float64(rows) / time.Since(start).Seconds()
		}
	}
	var fr, mr, fcpu, mcpu, vs, cpuX float64
	var frss, mrss int64
	for i := range floor {
		fr += floor[i].rate()
		mr += mirror[i].rate()
		vs += mirror[i].rate() / floor[i].rate()
		cpuX += mirror[i].cpu.Seconds() / floor[i].cpu.Seconds()
		fcpu += floor[i].cpu.Seconds()
		mcpu += mirror[i].cpu.Seconds()
		frss = max(frss, floor[i].maxRSS)
		mrss = max(mrss, mirror[i].maxRSS)
	}
	k := float64(len(floor))
	b.ReportMetric(mr/k, "records/s")
	b.ReportMetric(fr/k, "floor-records/s")
	b.ReportMetric(vs/k, "vs-floor")
	b.ReportMetric(mcpu/k, "cpu-s")
	b.ReportMetric(fcpu/k, "floor-cpu-s")
	b.ReportMetric(cpuX/k, "cpu-x-floor")
	b.ReportMetric(float64(mrss)/(1<<20), "MiB-peak-rss")
	b.ReportMetric(float64(frss)/(1<<20), "floor-MiB-peak-rss")
	b.ReportMetric(float64(mirror[0].Requests), "requests")
	b.ReportMetric(float64(floor[0].Requests), "floor-requests")
	if clientLoop {
		b.ReportMetric(loopRate/k, "client-loop-records/s")
	}
}

// BenchmarkMirror100k: daytwo's mirror of 100k changes against the floor
// (records/s ≥ 0.8× the floor's, client CPU ≤ 1.5×), with daytwo's own
// client loop reported beside them (client-loop-records/s).
func BenchmarkMirror100k(b *testing.B) { benchMirrorVsFloor(b, 100_000, true) }

// BenchmarkMirror1M is the same over 1M changes (records/s at 1M ≥ 0.8×
// at 100k, peak RSS ≤ 64 MiB).
func BenchmarkMirror1M(b *testing.B) { benchMirrorVsFloor(b, 1_000_000, false) }
