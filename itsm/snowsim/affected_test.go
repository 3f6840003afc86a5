package snowsim

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

const idInventory = "d2300000000000000000000000000003"

// vals reads field k of a Change API record ({value, display_value}).
func vals(rec map[string]any, k string) (string, string) {
	f, _ := rec[k].(map[string]any)
	v, _ := f["value"].(string)
	d, _ := f["display_value"].(string)
	return v, d
}

// affectedOf lists the change's affected CIs through the Change API as
// "sys_id=name" pairs.
func (e *env) affectedOf(change string) []string {
	e.t.Helper()
	var out []string
	for _, rec := range e.call("daytwo", "GET", "/api/sn_chg_rest/change/"+change+"/ci?association_type=affected", nil).must(e.t, 200).list(e.t) {
		if task, _ := vals(rec, "task"); task != change {
			e.t.Errorf("row of another task: %v", rec)
		}
		v, d := vals(rec, "ci_item")
		out = append(out, v+"="+d)
	}
	slices.Sort(out)
	return out
}

// The documented POST /change/{id}/ci: 202 with a Waiting worker; the
// rows appear when the worker has run; the worker then says Complete and
// a second POST of the same CI adds nothing and says so.
func TestChangeCIAssociationIsAsynchronous(t *testing.T) {
	clk := newFakeClock()
	e := newEnv(t, Options{Clock: clk.Now, AssociateDelay: time.Minute})
	chg, _ := e.createChange(nil)["sys_id"].(string)
	post := e.call("daytwo", "POST", "/api/sn_chg_rest/change/"+chg+"/ci", map[string]any{
		"association_type": "affected", "cmdb_ci_sys_ids": idPayments + "," + idInventory, "refresh_impacted_services": false,
	}).must(t, http.StatusAccepted).result(t)
	wk := post["worker"].(map[string]any)
	id, _ := wk["sysId"].(string)
	if !isSysID(id) || !strings.HasSuffix(wk["link"].(string), "/api/sn_chg_rest/change/worker/"+id) {
		t.Fatalf("worker = %v", wk)
	}
	if v, d := vals(post, "state"); v != "1" || d != "Waiting" || post["type"] != "affected" {
		t.Fatalf("answer = %v", post)
	}
	if req := post["request"].(string); !strings.Contains(req, `"cmdb_ci_sys_ids":["`+idPayments+`","`+idInventory+`"]`) || !strings.Contains(req, `"task":"`+chg+`"`) {
		t.Fatalf("request = %s", req)
	}
	if got := e.affectedOf(chg); len(got) != 0 {
		t.Fatalf("associated before the worker ran: %v", got)
	}
	clk.Add(time.Minute)
	want := []string{idPayments + "=payments-api", idInventory + "=inventory-db"}
	slices.Sort(want)
	if got := e.affectedOf(chg); !slices.Equal(got, want) {
		t.Fatalf("affected = %v, want %v", got, want)
	}
	done := e.call("daytwo", "GET", "/api/sn_chg_rest/change/worker/"+id, nil).must(t, 200).result(t)
	if v, d := vals(done, "state"); v != "3" || d != "Complete" {
		t.Fatalf("worker after the run = %v", done)
	}

	// Again, as an array, with one CI already there: no second row.
	again := e.call("daytwo", "POST", "/api/sn_chg_rest/change/"+chg+"/ci", map[string]any{
		"association_type": "affected", "cmdb_ci_sys_ids": []string{idPayments, idCheckout},
	}).must(t, http.StatusAccepted).result(t)
	clk.Add(time.Minute)
	id2 := again["worker"].(map[string]any)["sysId"].(string)
	msgs := e.call("daytwo", "GET", "/api/sn_chg_rest/change/worker/"+id2, nil).must(t, 200).result(t)["messages"].(map[string]any)
	if info := msgs["infoMessages"].([]any); len(info) != 1 || !strings.Contains(info[0].(string), idPayments) {
		t.Fatalf("messages = %v", msgs)
	}
	want = append(want, idCheckout+"=checkout-service")
	slices.Sort(want)
	if got := e.affectedOf(chg); !slices.Equal(got, want) {
		t.Fatalf("affected after the retry = %v, want %v", got, want)
	}
	// The same rows through the Table API.
	rows := e.call("daytwo", "GET", "/api/now/table/task_ci?sysparm_query=task="+chg+"^ci_item="+idPayments, nil).must(t, 200).list(t)
	if len(rows) != 1 {
		t.Fatalf("task_ci rows for payments-api: %d, want 1", len(rows))
	}
}

// Unknown CIs are named in the worker's messages (the others are
// associated); a list of unknown CIs only ends the worker in Error; an
// unknown change is 404; bad bodies are 400.
func TestChangeCIAssociationRefusals(t *testing.T) {
	e := newEnv(t, Options{AssociateDelay: -1})
	chg, _ := e.createChange(nil)["sys_id"].(string)
	const ghost = "0123456789abcdef0123456789abcdef"
	mixed := e.call("daytwo", "POST", "/api/sn_chg_rest/change/"+chg+"/ci", map[string]any{
		"association_type": "affected", "cmdb_ci_sys_ids": ghost + "," + idPayments,
	}).must(t, http.StatusAccepted).result(t)
	msgs := mixed["messages"].(map[string]any)
	if v, _ := vals(mixed, "state"); v != "3" || len(msgs["warningMessages"].([]any)) != 1 || !strings.Contains(msgs["warningMessages"].([]any)[0].(string), ghost) {
		t.Fatalf("mixed = %v", mixed)
	}
	if got := e.affectedOf(chg); !slices.Equal(got, []string{idPayments + "=payments-api"}) {
		t.Fatalf("affected = %v", got)
	}
	bad := e.call("daytwo", "POST", "/api/sn_chg_rest/change/"+chg+"/ci", map[string]any{
		"association_type": "affected", "cmdb_ci_sys_ids": []string{ghost},
	}).must(t, http.StatusAccepted).result(t)
	if v, d := vals(bad, "state"); v != "4" || d != "Error" || !strings.Contains(bad["messages"].(map[string]any)["errorMessages"].([]any)[0].(string), ghost) {
		t.Fatalf("only unknown CIs = %v", bad)
	}
	e.call("daytwo", "POST", "/api/sn_chg_rest/change/"+ghost+"/ci", map[string]any{"association_type": "affected", "cmdb_ci_sys_ids": idPayments}).must(t, 404)
	e.call("daytwo", "GET", "/api/sn_chg_rest/change/"+ghost+"/ci?association_type=affected", nil).must(t, 404)
	e.call("daytwo", "POST", "/api/sn_chg_rest/change/"+chg+"/ci", map[string]any{"association_type": "sideways", "cmdb_ci_sys_ids": idPayments}).must(t, 400)
	e.call("daytwo", "POST", "/api/sn_chg_rest/change/"+chg+"/ci", map[string]any{"association_type": "affected"}).must(t, 400)
	e.call("daytwo", "GET", "/api/sn_chg_rest/change/"+chg+"/ci", nil).must(t, 400) // association_type is required
	e.call("auditor", "POST", "/api/sn_chg_rest/change/"+chg+"/ci", map[string]any{"association_type": "affected", "cmdb_ci_sys_ids": idCheckout}).must(t, 403)

	// Impacted services are their own list.
	e.call("daytwo", "POST", "/api/sn_chg_rest/change/"+chg+"/ci", map[string]any{"association_type": "impacted", "cmdb_ci_sys_ids": idCheckout}).must(t, 202)
	imp := e.call("daytwo", "GET", "/api/sn_chg_rest/change/"+chg+"/ci?association_type=impacted", nil).must(t, 200).list(t)
	if len(imp) != 1 {
		t.Fatalf("impacted = %v", imp)
	}
	if v, d := vals(imp[0], "cmdb_ci_service"); v != idCheckout || d != "checkout-service" {
		t.Fatalf("impacted = %v", imp)
	}
	if got := e.affectedOf(chg); !slices.Equal(got, []string{idPayments + "=payments-api"}) {
		t.Fatalf("affected after impacted = %v", got)
	}

	// Deleting the change takes its rows along.
	e.call("admin", "DELETE", "/api/now/table/change_request/"+chg, nil).must(t, 204)
	if rows := e.call("daytwo", "GET", "/api/now/table/task_ci?sysparm_query=task="+chg, nil).must(t, 200).list(t); len(rows) != 0 {
		t.Fatalf("task_ci rows of a deleted change: %v", rows)
	}
}

// task_ci through the Table API, and an older instance without the Change
// API endpoint: 400 "does not represent any resource" there.
func TestTaskCITableAndOlderInstance(t *testing.T) {
	e := newEnv(t, Options{NoChangeCIEndpoint: true})
	chg, _ := e.createChange(nil)["sys_id"].(string)
	res := e.call("daytwo", "POST", "/api/sn_chg_rest/change/"+chg+"/ci", map[string]any{"association_type": "affected", "cmdb_ci_sys_ids": idPayments}).must(t, 400)
	if msg, _ := res.errorOf(t); msg != "Requested URI does not represent any resource" {
		t.Fatalf("older instance answered %s", res.body)
	}
	e.call("daytwo", "GET", "/api/sn_chg_rest/change/"+chg+"/ci?association_type=affected", nil).must(t, 400)
	row := e.call("daytwo", "POST", "/api/now/table/task_ci?sysparm_display_value=all", map[string]any{"task": chg, "ci_item": idPayments}).must(t, 201).result(t)
	if ci := row["ci_item"].(map[string]any); ci["value"] != idPayments || ci["display_value"] != "payments-api" {
		t.Fatalf("task_ci row = %v", row)
	}
	for _, k := range []string{"sys_id", "sys_created_on", "sys_updated_on"} {
		if row[k].(map[string]any)["value"] == "" {
			t.Errorf("task_ci row has no %s: %v", k, row)
		}
	}
	list := e.call("daytwo", "GET", "/api/now/table/task_ci?sysparm_query=task="+chg+"&ci_item="+idPayments, nil).must(t, 200).list(t)
	if len(list) != 1 {
		t.Fatalf("task_ci by task and ci_item: %v", list)
	}
	e.call("auditor", "POST", "/api/now/table/task_ci", map[string]any{"task": chg, "ci_item": idCheckout}).must(t, 403)
}
