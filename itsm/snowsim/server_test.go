package snowsim

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
)

func TestListen(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := Listen(ctx, "127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL = %s", srv.URL())
	}
	e := &env{t: t, sim: srv.Sim(), url: srv.URL()}
	e.createChange(nil)

	// Concurrent writers and readers (run with -race).
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := e.createChange(nil)["sys_id"].(string)
			e.patchChange(id, map[string]any{"state": "-4"}).must(t, 200)
			e.call("daytwo", "GET", "/api/now/table/change_request?sysparm_display_value=all", nil).must(t, 200)
			if i%2 == 0 {
				e.call("", "GET", "/__admin/state", nil).must(t, 200)
			}
		}()
	}
	wg.Wait()
	cancel() // cancelling the context stops the server
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(srv.URL() + "/api/now/table/cmdb_ci"); err == nil {
		t.Fatal("server still answering after Close")
	}
	if _, err := Listen(context.Background(), "256.0.0.1:0", Options{}); err == nil {
		t.Fatal("bad address accepted")
	}
}
