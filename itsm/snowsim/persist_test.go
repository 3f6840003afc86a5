package snowsim

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snow.json")
	srv, err := Listen(context.Background(), "127.0.0.1:0", Options{StatePath: path})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, sim: srv.Sim(), url: srv.URL()}
	chg := e.createChange(map[string]any{"work_notes": "persist me"})
	e.call("daytwo", "POST", "/api/now/attachment/file?table_name=change_request&table_sys_id="+chg["sys_id"].(string)+"&file_name=a.txt",
		"hello", "Content-Type", "text/plain").must(t, 201)
	e.call("daytwo", "POST", "/api/now/table/task_ci", map[string]any{"task": chg["sys_id"], "ci_item": idPayments}).must(t, 201)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("state file: %v", err)
	}
	matches, _ := filepath.Glob(path + ".tmp-*")
	if len(matches) != 0 {
		t.Fatalf("temp files left: %v", matches)
	}

	srv2, err := Listen(context.Background(), "127.0.0.1:0", Options{StatePath: path})
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	e2 := &env{t: t, sim: srv2.Sim(), url: srv2.URL()}
	if ci := e2.affectedOf(chg["sys_id"].(string)); len(ci) != 1 || ci[0] != idPayments+"=payments-api" {
		t.Fatalf("reloaded affected CIs = %v", ci)
	}
	got := e2.getChange(chg["sys_id"].(string))
	if got["number"] != "CHG0000001" {
		t.Fatalf("reloaded change = %v", got)
	}
	if n := e2.createChange(nil)["number"]; n != "CHG0000002" {
		t.Fatalf("number after reload = %v", n)
	}
	files := e2.call("daytwo", "GET", "/api/now/attachment?table_sys_id="+chg["sys_id"].(string), nil).must(t, 200).list(t)
	if len(files) != 1 {
		t.Fatalf("attachments after reload = %v", files)
	}
	e2.call("daytwo", "GET", "/api/now/attachment/"+files[0]["sys_id"].(string)+"/file", nil).must(t, 200)
	e2.call("daytwo", "GET", "/api/now/table/sys_journal_field?element_id="+chg["sys_id"].(string), nil).must(t, 200)
	oauthOK := e2.call("cab.manager", "GET", "/api/now/table/sys_user", nil).status
	if oauthOK != 200 {
		t.Fatalf("passwords lost on reload: %d", oauthOK)
	}
}

func TestCustomSeed(t *testing.T) {
	seed := fstest.MapFS{
		"sys_user.json": {Data: []byte(`[{"user_name":"solo","user_password":"pw","name":"Solo","roles":"admin"}]`)},
	}
	sim, err := New(Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	if users := sim.SeedUsers(); len(users) != 1 || users[0].UserName != "solo" {
		t.Fatalf("users = %v", users)
	}
	bad := fstest.MapFS{"cmdb_ci.json": {Data: []byte(`[{"nmae":"typo"}]`)}}
	if _, err := New(Options{Seed: bad}); err == nil {
		t.Fatal("unknown seed field accepted")
	}
}
