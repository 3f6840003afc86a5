package tui

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/store"
)

// mirror1MSize is how many changes BenchmarkConsoleFilter1M mirrors.
const mirror1MSize = 1_000_000

// BenchmarkConsoleFilter1M is BenchmarkChangesFilter over 1M mirrored
// changes shaped like a real mirror's (issue 14: last keystroke → results
// drawn p99 ≤ 150 ms; keystroke → frame p99 ≤ 16 ms): random sys_ids,
// short descriptions of 30–60 characters naming one of 1,280 CIs, a
// raw_json of ~1.3 KB. The searches are a common word ("upgrade", ~14% of
// the changes), a CI prefix (~0.6%), one change number and nothing.
//
// Filling 1M changes takes minutes, so the file is filled once per
// process (the store's bulk write path, UpsertChanges in transactions of
// 10,000) and copied for each run; DAYTWO_BENCH_1M_DB=<path> keeps it
// there across processes (built when missing). The measurement starts
// after the copy: the console opens the file, warms its index and the
// searches run as in BenchmarkChangesFilter. Not in `make bench`.
func BenchmarkConsoleFilter1M(b *testing.B) {
	seed := mirror1MFile(b)
	f := newFixture(b, fixtureOptions{offline: true, seedDB: seed})
	n := mirror1MSize
	benchChangesFilter(b, f, []string{"upgrade", "payments-prod", "CHG0912345", "nothing like it"}, func(i int) []ops.Change {
		// the daemon mirrors new versions of five changes, newest of all
		page := make([]ops.Change, 0, 5)
		for j := range 5 {
			k := int(mix64(uint64(i*5+j)+1<<40) % uint64(n))
			page = append(page, realisticChange(k, 10+i, mirror1MUpdated(n+i*5+j)))
		}
		return page
	})
}

var mirror1M struct {
	once sync.Once
	path string
	dir  string // made for the file (not DAYTWO_BENCH_1M_DB's): removed by TestMain
	err  error
}

// TestMain removes the 1M-change file BenchmarkConsoleFilter1M filled
// (2.4 GB), unless DAYTWO_BENCH_1M_DB keeps it.
func TestMain(m *testing.M) {
	code := m.Run()
	if mirror1M.dir != "" {
		os.RemoveAll(mirror1M.dir)
	}
	os.Exit(code)
}

// mirror1MFile returns the path of a store file holding the 1M changes,
// filling it on the first call of the process (or reusing
// DAYTWO_BENCH_1M_DB).
func mirror1MFile(b *testing.B) string {
	b.Helper()
	mirror1M.once.Do(func() {
		path := os.Getenv("DAYTWO_BENCH_1M_DB")
		if path == "" {
			dir, err := os.MkdirTemp("", "daytwo-bench-1m-")
			if err != nil {
				mirror1M.err = err
				return
			}
			mirror1M.dir, path = dir, filepath.Join(dir, "mirror.db")
		} else if _, err := os.Stat(path); err == nil {
			mirror1M.path = path
			return
		}
		start := time.Now()
		if err := fillMirror1M(path); err != nil {
			mirror1M.err = err
			return
		}
		fmt.Fprintf(os.Stderr, "filled %d changes into %s in %s\n", mirror1MSize, path, time.Since(start).Round(time.Second))
		mirror1M.path = path
	})
	if mirror1M.err != nil {
		b.Fatal(mirror1M.err)
	}
	return mirror1M.path
}

// fillMirror1M writes the 1M changes into a new store file at path
// (through path+".part", renamed once complete).
func fillMirror1M(path string) error {
	ctx := context.Background()
	part := path + ".part"
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(part + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	db, err := store.Open(ctx, part, store.Options{})
	if err != nil {
		return err
	}
	const batch = 10_000
	for i := 0; i < mirror1MSize; i += batch {
		chs := make([]ops.Change, 0, batch)
		for k := i; k < i+batch && k < mirror1MSize; k++ {
			chs = append(chs, realisticChange(k, 1+int(mix64(uint64(k))%5), mirror1MUpdated(k)))
		}
		if _, err := db.UpsertChanges(ctx, chs); err != nil {
			db.Close()
			return err
		}
	}
	if err := db.Close(); err != nil {
		return err
	}
	for _, suffix := range []string{"-wal", ""} {
		if err := os.Rename(part+suffix, path+suffix); err != nil && !(suffix != "" && errors.Is(err, fs.ErrNotExist)) {
			return err
		}
	}
	return nil
}

// mirror1MUpdated is the sys_updated_on of the k-th write: one every 30 s
// (1M span about a year).
func mirror1MUpdated(k int) time.Time {
	return epoch.Add(-mirror1MSize * 30 * time.Second).Add(time.Duration(k) * 30 * time.Second)
}

// mix64 is splitmix64's finalizer: a fixed, well-spread hash of i.
func mix64(i uint64) uint64 {
	i += 0x9e3779b97f4a7c15
	i = (i ^ i>>30) * 0xbf58476d1ce4e5b9
	i = (i ^ i>>27) * 0x94d049bb133111eb
	return i ^ i>>31
}

var (
	benchServices = []string{
		"checkout", "payments", "web", "search", "auth", "billing", "inventory", "ledger", "notify", "gateway",
		"catalog", "profile", "orders", "shipping", "reports", "kafka", "postgres", "redis", "nginx", "vault",
		"ldap", "dns", "mail", "cdn", "metrics", "logging", "backup", "storage", "queue", "scheduler",
		"identity", "pricing", "reviews", "cart", "fraud", "tax", "invoice", "media", "chat", "wiki",
	}
	benchStages = []string{"dev", "staging", "prod", "dr"}
	benchProse  = strings.Repeat("Implementation plan: drain the node from the load balancer, apply the change, run the smoke tests "+
		"and the health checks, return the node to service and watch the error rate for fifteen minutes before the next one. "+
		"Backout plan: redeploy the previous version from the artifact store. ", 4)
)

// realisticChange is the k-th change of a mirror of a large instance, at
// version mod, last updated at updated. Its fields, and so its
// search_text, depend on k only.
func realisticChange(k, mod int, updated time.Time) ops.Change {
	h := mix64(uint64(k))
	svc, stage := benchServices[h%uint64(len(benchServices))], benchStages[(h>>8)%4]
	ci := fmt.Sprintf("%s-%s-%02d", svc, stage, (h>>16)%8)
	a, v, p := (h>>24)%5+1, (h>>32)%30, (h>>40)%20
	var desc string
	switch (h >> 48) % 7 {
	case 0:
		desc = fmt.Sprintf("Upgrade %s to %d.%d.%d in %s", svc, a, v, p, stage)
	case 1:
		desc = fmt.Sprintf("Patch %s hosts for CVE-2026-%05d", ci, (h>>20)%30000)
	case 2:
		desc = fmt.Sprintf("Rotate TLS certificates on %s", ci)
	case 3:
		desc = fmt.Sprintf("Scale %s %s from %d to %d replicas", svc, stage, a+1, a+2+p%6)
	case 4:
		desc = fmt.Sprintf("Roll back %s to %d.%d.%d after failed health checks", svc, a, v, p)
	case 5:
		desc = fmt.Sprintf("Database maintenance on %s: vacuum and reindex", ci)
	default:
		desc = fmt.Sprintf("Firewall rule update for %s (ticket INC%07d)", svc, (h>>12)%10_000_000)
	}
	sysID := fmt.Sprintf("%016x%016x", mix64(h), mix64(h^0x5bd1e995))
	number := fmt.Sprintf("CHG%07d", k)
	active := k%10 == 0
	state, stateCode, closeCode := ops.ChangeClosed, "3", "successful"
	if active {
		state, stateCode, closeCode = ops.ChangeScheduled, "-2", ""
	}
	start := updated.Add(-2 * time.Hour)
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }
	raw := fmt.Sprintf(`{"sys_id":%q,"number":%q,"short_description":%q,"description":%q,"state":%q,"type":"normal",`+
		`"approval":"approved","risk":"4","impact":"3","priority":"4","urgency":"3","active":"%t","correlation_id":"",`+
		`"assignment_group":"%016x%016x","cmdb_ci":"%016x%016x","requested_by":"%016x%016x","opened_by":"%016x%016x",`+
		`"start_date":%q,"end_date":%q,"close_code":%q,"close_notes":"","phase":"","on_hold":"false","conflict_status":"No Conflict",`+
		`"category":"Software","reason":"","sys_created_on":%q,"sys_updated_on":%q,"sys_mod_count":"%d"}`,
		sysID, number, desc, benchProse[:600+int(h>>52)%300], stateCode, active,
		h>>1, h>>2, mix64(h>>16), h>>3, h>>4, h>>5, h>>6, h>>7,
		ts(start), ts(start.Add(4*time.Hour)), closeCode, ts(start.Add(-72*time.Hour)), ts(updated), mod)
	return ops.Change{
		SysID: sysID, Number: number, Type: "normal", State: state, Approval: "approved", Risk: "low",
		ShortDescription: desc, CmdbCI: ci, AssignmentGroup: "Platform Ops", RequestedBy: "daytwo Integration",
		RequestedByID: fmt.Sprintf("%016x%016x", h>>4, h>>5), StartDate: start, EndDate: start.Add(4 * time.Hour),
		Active: active, CloseCode: closeCode, SysUpdatedOn: updated, SysModCount: mod, Raw: []byte(raw),
	}
}
