package snowsim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"
)

// ansibleClient speaks like the servicenow.itsm collection's
// module_utils/client.py + table.py: Basic auth, Accept/Content-Type JSON,
// sysparm_exclude_reference_link=true, offset paging with sysparm_limit=1000
// stopping on X-Total-Count, and an attachment list after each record read.
type ansibleClient struct {
	t    *testing.T
	base string
}

func (c ansibleClient) request(method, path string, query url.Values, payload map[string]any) (int, http.Header, map[string]any) {
	c.t.Helper()
	var body io.Reader
	if payload != nil {
		data, _ := json.Marshal(payload)
		body = jsonReader(data)
	}
	u := c.base + "/" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, _ := http.NewRequest(method, u, body)
	req.SetBasicAuth("daytwo", "daytwo")
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	if res.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
			c.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return res.StatusCode, res.Header, m
}

// listRecords is table.py's list_records: offset paging until X-Total-Count.
func (c ansibleClient) listRecords(table string, query url.Values) []map[string]any {
	c.t.Helper()
	var out []map[string]any
	offset := 0
	for {
		q := url.Values{"sysparm_exclude_reference_link": {"true"}, "sysparm_limit": {"1000"}, "sysparm_offset": {strconv.Itoa(offset)}}
		for k, v := range query {
			q[k] = v
		}
		status, h, m := c.request("GET", "api/now/table/"+table, q, nil)
		if status != 200 {
			c.t.Fatalf("list %s: %d %v", table, status, m)
		}
		for _, r := range m["result"].([]any) {
			out = append(out, r.(map[string]any))
		}
		total, err := strconv.Atoi(h.Get("X-Total-Count"))
		if err != nil {
			c.t.Fatalf("no X-Total-Count")
		}
		offset += 1000
		if offset >= total {
			return out
		}
	}
}

func (c ansibleClient) attachments(table, id string) []any {
	c.t.Helper()
	status, _, m := c.request("GET", "api/now/attachment", url.Values{"sysparm_query": {"table_name=" + table + "^table_sys_id=" + id}}, nil)
	if status != 200 {
		c.t.Fatalf("attachment list: %d %v", status, m)
	}
	return m["result"].([]any)
}

func TestAnsibleCollectionReplay(t *testing.T) {
	e := newEnv(t, Options{})
	if err := e.sim.GenerateChanges(2500, GenerateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := ansibleClient{t: t, base: e.url}

	// change_request module, state=new: look up by number (absent), then create.
	if got := c.listRecords("change_request", url.Values{"number": {"CHG9999999"}}); len(got) != 0 {
		t.Fatalf("lookup = %v", got)
	}
	status, _, m := c.request("POST", "api/now/table/change_request", url.Values{"sysparm_exclude_reference_link": {"true"}},
		map[string]any{
			"type": "normal", "state": "-5", "short_description": "ansible", "assignment_group": idPlatformOps,
			"impact": "2", "urgency": "2", "risk": "4", "chg_model": "normal",
		})
	if status != 201 {
		t.Fatalf("create = %d %v", status, m)
	}
	rec := m["result"].(map[string]any)
	id, number := rec["sys_id"].(string), rec["number"].(string)
	if rec["assignment_group"] != idPlatformOps || rec["priority"] != "4" { // change priority is not derived
		t.Fatalf("created = %v", rec)
	}
	if len(c.attachments("change_request", id)) != 0 {
		t.Fatal("attachments on a fresh change")
	}

	// state=assess: read, then PATCH with the numeric string.
	got := c.listRecords("change_request", url.Values{"number": {number}})
	if len(got) != 1 {
		t.Fatalf("read back %d", len(got))
	}
	c.attachments("change_request", id)
	status, _, m = c.request("PATCH", "api/now/table/change_request/"+id, url.Values{"sysparm_exclude_reference_link": {"true"}}, map[string]any{"state": "-4"})
	if status != 200 || m["result"].(map[string]any)["state"] != "-4" {
		t.Fatalf("patch = %d %v", status, m)
	}
	// state=scheduled straight away is refused by the state model (ANS-257/278).
	status, _, _ = c.request("PATCH", "api/now/table/change_request/"+id, nil, map[string]any{"state": "-2"})
	if status != http.StatusForbidden {
		t.Fatalf("skip to scheduled = %d", status)
	}

	// incident module.
	status, _, m = c.request("POST", "api/now/table/incident", url.Values{"sysparm_exclude_reference_link": {"true"}},
		map[string]any{"state": "1", "caller_id": "daytwo", "short_description": "rollout failed", "impact": "1", "urgency": "1"})
	if status != 201 {
		t.Fatalf("incident = %d %v", status, m)
	}
	inc := m["result"].(map[string]any)
	if inc["number"] != "INC0000001" || inc["priority"] != "1" {
		t.Fatalf("incident = %v", inc)
	}
	c.attachments("incident", inc["sys_id"].(string))

	// change_request_info module: page through everything.
	all := c.listRecords("change_request", nil)
	seen := map[string]bool{}
	for _, r := range all {
		seen[r["sys_id"].(string)] = true
	}
	if len(all) != 2501 || len(seen) != 2501 {
		t.Fatalf("paged %d rows, %d unique; want 2501", len(all), len(seen))
	}

	// configuration_item_info: look a CI up by name.
	cis := c.listRecords("cmdb_ci", url.Values{"sysparm_query": {"name=checkout-service"}, "sysparm_fields": {"sys_id,name,sys_class_name"}})
	if len(cis) != 1 || cis[0]["sys_id"] != idCheckout || len(cis[0]) != 3 {
		t.Fatalf("ci lookup = %v", cis)
	}
}
