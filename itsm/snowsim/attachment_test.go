package snowsim

import (
	"net/http"
	"strings"
	"testing"
)

func TestAttachments(t *testing.T) {
	e := newEnv(t, Options{})
	id := e.createChange(nil)["sys_id"].(string)
	up := e.call("daytwo", "POST", "/api/now/attachment/file?table_name=change_request&table_sys_id="+id+"&file_name=rollout.log",
		"line 1\nline 2\n", "Content-Type", "text/plain").must(t, http.StatusCreated)
	meta := up.result(t)
	aid := meta["sys_id"].(string)
	if meta["size_bytes"] != "14" || meta["content_type"] != "text/plain" || meta["table_sys_id"] != id ||
		!strings.HasSuffix(up.header.Get("Location"), "/api/now/attachment/"+aid) || !strings.HasSuffix(meta["download_link"].(string), aid+"/file") {
		t.Fatalf("upload = %v %v", up.header, meta)
	}
	list := e.call("daytwo", "GET", "/api/now/attachment?table_name=change_request&table_sys_id="+id, nil).must(t, 200).list(t)
	if len(list) != 1 || list[0]["file_name"] != "rollout.log" {
		t.Fatalf("list = %v", list)
	}
	list = e.call("daytwo", "GET", "/api/now/attachment?sysparm_query=table_name=change_request^table_sys_id="+id, nil).must(t, 200).list(t)
	if len(list) != 1 {
		t.Fatalf("list by query = %v", list)
	}
	e.call("daytwo", "GET", "/api/now/attachment/"+aid, nil).must(t, 200)
	file := e.call("daytwo", "GET", "/api/now/attachment/"+aid+"/file", nil, "Accept", "*/*").must(t, 200)
	if string(file.body) != "line 1\nline 2\n" || file.header.Get("Content-Type") != "text/plain" {
		t.Fatalf("file = %q %v", file.body, file.header)
	}
	tests := map[string]struct {
		user, path, ct string
		status         int
	}{
		"missing target":  {"daytwo", "/api/now/attachment/file?table_name=change_request&table_sys_id=" + strings.Repeat("0", 32) + "&file_name=x", "text/plain", 404},
		"missing param":   {"daytwo", "/api/now/attachment/file?table_name=change_request&file_name=x", "text/plain", 400},
		"missing type":    {"daytwo", "/api/now/attachment/file?table_name=change_request&table_sys_id=" + id + "&file_name=x", "", 400},
		"read-only write": {"auditor", "/api/now/attachment/file?table_name=change_request&table_sys_id=" + id + "&file_name=x", "text/plain", 403},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e.call(tc.user, "POST", tc.path, "x", "Content-Type", tc.ct).must(t, tc.status).errorOf(t)
		})
	}
	e.call("daytwo", "DELETE", "/api/now/attachment/"+aid, nil).must(t, http.StatusNoContent)
	e.call("daytwo", "GET", "/api/now/attachment/"+aid, nil).must(t, http.StatusNotFound)
}
