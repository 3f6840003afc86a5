package itsm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// An instance that ignores sysparm_query answers every page with the same
// rows: the keyset cursor never advances. The mirror stops with an error
// naming the table and the cursor instead of looping forever.
func TestSyncStopsWhenInstanceIgnoresPagingCondition(t *testing.T) {
	env := newEnv(t, func(c *Config) { c.PageSize = 3 })
	var rows []map[string]string
	for i := 1; i <= 3; i++ {
		rows = append(rows, tableChange(sid(i), fmt.Sprintf("CHG%07d", i), StateNew, "normal", nil))
	}
	env.f.handle("GET /api/now/table/change_request", respond(200, resultJSON(rows)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pages := 0
	_, err := env.c.SyncChanges(ctx, SyncRequest{Until: untilT()}, func([]Change, Watermark) error {
		pages++
		return nil
	})
	if ctx.Err() != nil {
		t.Fatalf("the mirror was still paging after 10s (%d pages)", pages)
	}
	if !errors.Is(err, ErrPagingIgnored) {
		t.Fatalf("err = %v, want ErrPagingIgnored", err)
	}
	for _, want := range []string{"change_request", "does not advance the cursor", "2026-05-01 10:00:00", sid(3)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if n := env.f.count("GET", "/api/now/table/change_request"); n != 2 || pages != 1 {
		t.Errorf("requests = %d, pages = %d; want 2 requests (the second one repeats the first page), 1 page", n, pages)
	}
}

// A page with more rows than sysparm_limit is refused before it is stored.
func TestSyncRefusesPageLargerThanLimit(t *testing.T) {
	env := newEnv(t, func(c *Config) { c.PageSize = 10 })
	var rows []map[string]string
	for i := 1; i <= 50; i++ {
		rows = append(rows, tableChange(sid(i), fmt.Sprintf("CHG%07d", i), StateNew, "normal", nil))
	}
	env.f.handle("GET /api/now/table/change_request", respond(200, resultJSON(rows)))
	stored := 0
	_, err := env.c.SyncChanges(context.Background(), SyncRequest{Until: untilT()}, func(p []Change, _ Watermark) error {
		stored += len(p)
		return nil
	})
	if !errors.Is(err, ErrPagingIgnored) || !strings.Contains(err.Error(), "50 rows for sysparm_limit=10") {
		t.Fatalf("err = %v", err)
	}
	if stored != 0 {
		t.Fatalf("%d rows stored from a refused page", stored)
	}
}

// endless streams a JSON page whose one field never ends: 100 MB at the
// rate the client reads it. It reports how much the client read.
type endless struct {
	sent chan int64
}

func (e endless) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(200)
	n, _ := io.WriteString(w, `{"result":[{"sys_id":"`+sid(1)+`","sys_updated_on":"2026-05-01 10:00:00","description":"`)
	chunk := []byte(strings.Repeat("x", 64<<10))
	total := int64(n)
	for total < 100<<20 {
		m, err := w.Write(chunk)
		total += int64(m)
		if err != nil {
			break
		}
	}
	if total >= 100<<20 {
		_, _ = io.WriteString(w, `"}]}`)
	}
	e.sent <- total
}

// A 100 MB field is refused once the answer passes the limit derived from
// page_size (here 100 rows: at least 8 MiB), not read into memory whole.
func TestAnswerLargerThanLimitIsRefused(t *testing.T) {
	env := newEnv(t, func(c *Config) { c.PageSize = 100 })
	e := endless{sent: make(chan int64, 1)}
	env.f.handle("GET /api/now/table/change_request", e.ServeHTTP)
	_, err := env.c.SyncChanges(context.Background(), SyncRequest{Until: untilT()}, func([]Change, Watermark) error {
		t.Error("a page was decoded")
		return nil
	})
	if !errors.Is(err, ErrResponseTooLarge) {
		t.Fatalf("err = %v, want ErrResponseTooLarge", err)
	}
	for _, want := range []string{"change_request", "larger than 8 MiB", "sysparm_limit=100", "oversized field"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if n := env.f.count("GET", "/api/now/table/change_request"); n != 1 {
		t.Errorf("%d requests; an oversized answer must not be retried", n)
	}
	sent := <-e.sent
	if sent >= 100<<20 {
		t.Errorf("the client read all %d bytes", sent)
	}
	t.Logf("the server wrote %.1f MiB of a 100 MiB answer before the client refused it", float64(sent)/(1<<20))
}

// The limit grows with the rows asked for: a large legitimate page passes.
func TestBodyLimitDerivesFromPageSize(t *testing.T) {
	for _, tc := range []struct {
		limit string
		want  int
	}{{"", minBodyLimit}, {"1", minBodyLimit}, {"1000", 1000 * bodyBytesPerRow}, {"10000", 10000 * bodyBytesPerRow}} {
		req := request{query: map[string][]string{}}
		if tc.limit != "" {
			req.query.Set("sysparm_limit", tc.limit)
		}
		if got := bodyLimit(req); got != tc.want {
			t.Errorf("sysparm_limit=%q: limit %d, want %d", tc.limit, got, tc.want)
		}
	}
}
