package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// ignoringInstance is a tiny ServiceNow that ignores sysparm_query: every
// change_request list answers the same page, whatever the keyset cursor.
// Everything else is an empty result.
func ignoringInstance(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var pages atomic.Int64
	var rows []map[string]string
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("%032x", i)
		rows = append(rows, map[string]string{
			"sys_id": id, "number": fmt.Sprintf("CHG%07d", i), "state": "-5",
			"type": "normal", "active": "true", "sys_mod_count": "0", "sys_updated_on": "2026-05-01 10:00:00",
			"correlation_id": "daytwo:u-" + id[28:],
		})
	}
	page, _ := json.Marshal(map[string]any{"result": rows})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/api/now/table/change_request" && r.Method == http.MethodGet {
			pages.Add(1)
			_, _ = w.Write(page)
			return
		}
		if r.URL.Path == "/api/now/table/cmdb_ci" {
			_, _ = w.Write([]byte(`{"result":[{"sys_id":"` + fmt.Sprintf("%032x", 99) + `","name":"checkout-service"}]}`))
			return
		}
		_, _ = w.Write([]byte(`{"result":[]}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &pages
}

// Defect 11.8: `sync --once` against an instance that ignores the paging
// condition exits with an error naming the table and the cursor instead of
// paging forever.
func TestSyncOnceStopsWhenInstanceIgnoresPaging(t *testing.T) {
	srv, pages := ignoringInstance(t)
	env, dir := writeGatedConfig(t, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, daytwoBin, "sync", "--once")
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("sync --once still running after 60s (%d pages fetched)", pages.Load())
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() == 0 {
		t.Fatalf("sync --once: err %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	for _, want := range []string{"change_request", "does not advance the cursor", "2026-05-01 10:00:00", fmt.Sprintf("%032x", 3)} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if n := pages.Load(); n > 5 {
		t.Errorf("%d pages fetched before stopping", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "d.db")); err != nil {
		t.Errorf("no store: %v", err)
	}
}
