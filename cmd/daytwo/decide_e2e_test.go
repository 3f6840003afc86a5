package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daytwo/daytwo/fixtures/demofleet"
	"github.com/daytwo/daytwo/itsm/snowsim"
	"github.com/daytwo/daytwo/ops"
)

// decideWorld is a simulator and a config with one gated environment whose
// normal, moderate-risk changes need two stages of approval (Platform Ops,
// then CAB Approval), four eyes on.
type decideWorld struct {
	sim *snowsim.Server
	env []string // the integration user only (daytwo)
	dir string
}

func newDecideWorld(t *testing.T) *decideWorld {
	t.Helper()
	w := &decideWorld{sim: startSim(t, snowsim.Options{}), dir: t.TempDir()}
	cfg := filepath.Join(w.dir, "daytwo.yaml")
	if err := os.WriteFile(cfg, []byte(`
store: {path: d.db}
servicenow:
  instance: `+w.sim.URL()+`
  auth: {username: daytwo}
  assignment_group: Platform Ops
  timeout: 2s
  four_eyes: true
environments:
  - name: production
    requires_change: true
    change: {type: normal, cmdb_ci: checkout-service, risk: moderate, check_conflicts: false}
    targets: [{name: prd-1}]
    deploy: {command: ["true"]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	w.env = []string{"DAYTWO_CONFIG=" + cfg, "DAYTWO_SN_PASSWORD=daytwo"}
	return w
}

// as is the environment of a process that also holds user's credentials
// as its approver.
func (w *decideWorld) as(user string) []string {
	return append(append([]string{}, w.env...), "DAYTWO_SN_APPROVER_USER="+user, "DAYTWO_SN_APPROVER_PASSWORD="+user)
}

// raise proposes production 2.0.0 and mirrors its change (in Assess).
func (w *decideWorld) raise(t *testing.T) (number, sysID string) {
	t.Helper()
	r := daytwo(t, w.env, "propose", "production", "2.0.0", "-o", "json")
	var p proposeResult
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || r.code != 0 || p.Change == "" {
		t.Fatalf("propose: %+v (%v)", r, err)
	}
	if r := daytwo(t, w.env, "sync", "--once"); r.code != 0 {
		t.Fatalf("sync: %+v", r)
	}
	rows := w.records(t, "change_request", "number="+p.Change)
	if len(rows) != 1 || rows[0]["state"] != "-4" {
		t.Fatalf("change %s in the simulator: %v; want one in Assess", p.Change, rows)
	}
	return p.Change, rows[0]["sys_id"]
}

func (w *decideWorld) records(t *testing.T, table, query string) []map[string]string {
	t.Helper()
	r := curl(t, "GET", w.sim.URL()+"/api/now/table/"+table+"?sysparm_exclude_reference_link=true&sysparm_query="+query+
		"&sysparm_fields=sys_id,number,state,approval,approver.user_name,sys_updated_by", "admin", nil)
	var out []map[string]string
	for _, row := range r.body["result"].([]any) {
		m := map[string]string{}
		for k, v := range row.(map[string]any) {
			m[k] = fmt.Sprint(v)
		}
		out = append(out, m)
	}
	return out
}

// approved returns, per user, how many approval rows of the change they
// approved.
func (w *decideWorld) approved(t *testing.T, sysID string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, a := range w.records(t, "sysapproval_approver", "sysapproval="+sysID+"^state=approved") {
		out[a["approver.user_name"]]++
	}
	return out
}

func outboxItems(t *testing.T, env []string) []ops.OutboxItem {
	t.Helper()
	r := daytwo(t, env, "outbox", "list", "--all", "-o", "json")
	var items []ops.OutboxItem
	if err := json.Unmarshal([]byte(r.stdout), &items); err != nil || r.code != 0 {
		t.Fatalf("outbox list: %+v (%v)", r, err)
	}
	return items
}

func auditActions(t *testing.T, env []string) string {
	t.Helper()
	r := daytwo(t, env, "audit", "list", "--limit", "0")
	if r.code != 0 {
		t.Fatalf("audit list: %+v", r)
	}
	return r.stdout
}

// TestQueuedDecisionIsDeliveredOnlyAsItsMaker: ops.lead approves while
// ServiceNow is down; a later plain `sync --once` (integration user only)
// must not send it as the requester, and says why; a process holding
// ops.lead's credentials then delivers it as ops.lead (issue 11, defect 5).
func TestQueuedDecisionIsDeliveredOnlyAsItsMaker(t *testing.T) {
	w := newDecideWorld(t)
	number, sysID := w.raise(t)

	w.sim.Sim().SetFaults(snowsim.Faults{Drop: snowsim.Rule{Every: 1}}) // ServiceNow is down
	r := daytwo(t, w.as("ops.lead"), "change", "approve", number, "--comment", "reviewed", "--wait", "1s")
	if r.code != 0 || !strings.Contains(r.stdout, "decision queued") || !strings.Contains(r.stdout, "It will be delivered") {
		t.Fatalf("approve while ServiceNow is down: %+v", r)
	}
	w.sim.Sim().SetFaults(snowsim.Faults{}) // back

	// A daemon-like process with only the integration user, once the
	// decision's retry falls due.
	var decision ops.OutboxItem
	waitFor(t, "the queued decision to be tried again", 30*time.Second, func() bool {
		r = daytwo(t, w.env, "sync", "--once")
		for _, it := range outboxItems(t, w.env) {
			if it.Kind == ops.OutboxDecide {
				decision = it
			}
		}
		return decision.State != ops.OutboxPending
	})
	if got := w.approved(t, sysID); len(got) > 0 {
		t.Fatalf("the decision was sent by a process without ops.lead's credentials: approvals %v (sync: %+v)", got, r)
	}
	if decision.State != ops.OutboxFailed || !strings.Contains(decision.LastError, "made as ops.lead") ||
		!strings.Contains(decision.LastError, "no credentials for ops.lead") {
		t.Fatalf("undeliverable decision = %+v; want failed, naming ops.lead and the missing credentials", decision)
	}
	if r := daytwo(t, w.env, "outbox", "list"); !strings.Contains(r.stdout, "no credentials for ops.lead") {
		t.Fatalf("outbox list does not show why the decision was refused:\n%s", r.stdout)
	}
	if a := auditActions(t, w.env); !strings.Contains(a, "change.decision_refused") {
		t.Fatalf("no audit event for the refused decision:\n%s", a)
	}

	// The approver's own process delivers it, as ops.lead.
	r = daytwo(t, w.as("ops.lead"), "outbox", "retry", fmt.Sprint(decision.ID))
	if r.code != 0 || !strings.Contains(r.stdout, "delivered 1") {
		t.Fatalf("retry with ops.lead's credentials: %+v", r)
	}
	got := w.approved(t, sysID)
	if got["ops.lead"] != 1 || len(got) != 1 {
		t.Fatalf("approvals after delivery = %v; want ops.lead approved, daytwo not", got)
	}
	for _, a := range w.records(t, "sysapproval_approver", "sysapproval="+sysID+"^state=approved") {
		if a["sys_updated_by"] != "ops.lead" {
			t.Fatalf("approval row updated by %s, want ops.lead", a["sys_updated_by"])
		}
	}
}

// TestManualApprovalStoryWithTheDemoConfig: the demo's configuration (as
// `daytwo demo --manual-approval` writes it) decides as ops.lead, who holds
// a pending approval in both stages of a production change: two `change
// approve` take it from Assess through Authorize to Scheduled (issue 12,
// section 2, bullet 1).
func TestManualApprovalStoryWithTheDemoConfig(t *testing.T) {
	sim := startSim(t, snowsim.Options{})
	dir := t.TempDir()
	pw, apw := filepath.Join(dir, "sn-password"), filepath.Join(dir, "approver-password")
	for path, secret := range map[string]string{pw: "daytwo", apw: "ops.lead"} {
		if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ports := map[string]int{}
	for i, tg := range demofleet.DemoTargets(nil) {
		ports[tg.Name] = 29000 + i // nothing runs: this story stops before the rollout
	}
	yaml, err := demofleet.DemoConfig(demofleet.DemoParams{
		DaytwoBin: daytwoBin, StateDir: filepath.Join(dir, "fleet"),
		DBPath: filepath.Join(dir, "daytwo.db"), Instance: sim.URL(), Ports: ports, PasswordFile: pw, ApproverPasswordFile: apw,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "daytwo.yaml")
	if err := os.WriteFile(cfg, yaml, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"DAYTWO_CONFIG=" + cfg}
	r := daytwo(t, env, "propose", "production", "1.1.0", "-o", "json")
	var p proposeResult
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || p.Change == "" {
		t.Fatalf("propose: %+v (%v)", r, err)
	}
	for stage, want := range []string{"Authorize", "Scheduled"} {
		if r := daytwo(t, env, "sync", "--once"); r.code != 0 {
			t.Fatalf("sync: %+v", r)
		}
		r := daytwo(t, env, "change", "approve", p.Change, "--comment", "ok")
		if r.code != 0 || !strings.Contains(r.stdout, p.Change+" approved: now "+want) {
			t.Fatalf("stage %d: approve as the demo's approver: %+v; want now %s", stage+1, r, want)
		}
	}
	r = daytwo(t, env, "update", "show", p.ID, "-o", "json")
	if !strings.Contains(r.stdout, `"state": "approved"`) {
		if r2 := daytwo(t, env, "sync", "--once"); r2.code != 0 {
			t.Fatalf("sync: %+v", r2)
		}
		if r = daytwo(t, env, "update", "show", p.ID, "-o", "json"); !strings.Contains(r.stdout, `"state": "approved"`) {
			t.Fatalf("update after both stages: %+v", r)
		}
	}
}

// TestApproveWithoutPendingApprovalSaysWhoHoldsIt: the configured approver
// holds no pending approval on the change; the refusal comes at once, in
// words (who holds the pending approvals, as whom daytwo acted), nothing is
// queued, and no "It will be delivered" is claimed.
func TestApproveWithoutPendingApprovalSaysWhoHoldsIt(t *testing.T) {
	w := newDecideWorld(t)
	number, _ := w.raise(t)
	r := daytwo(t, w.as("cab.manager"), "change", "approve", number, "--comment", "ok")
	if r.code != exitBlocked || strings.Contains(r.stdout, "will be delivered") {
		t.Fatalf("approve as cab.manager in the Platform Ops stage: %+v; want exit %d, no delivery promise", r, exitBlocked)
	}
	for _, want := range []string{"daytwo acted as cab.manager, who holds no pending approval on " + number, "pending: group Platform Ops (daytwo (requester), ops.lead)"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("refusal lacks %q:\n%s", want, r.stderr)
		}
	}
	for _, it := range outboxItems(t, w.env) {
		if it.Kind == ops.OutboxDecide {
			t.Fatalf("a refused decision was queued: %+v", it)
		}
	}
}

// item returns the outbox item with id.
func item(t *testing.T, env []string, id int64) ops.OutboxItem {
	t.Helper()
	for _, it := range outboxItems(t, env) {
		if it.ID == id {
			return it
		}
	}
	t.Fatalf("no outbox item #%d", id)
	return ops.OutboxItem{}
}

// decisions returns the ids of the decision items, oldest first.
func decisions(t *testing.T, env []string) []int64 {
	t.Helper()
	var ids []int64
	for _, it := range outboxItems(t, env) {
		if it.Kind == ops.OutboxDecide {
			ids = append(ids, it.ID)
		}
	}
	return ids
}

// TestRefusedDecisionNeverBlocksTheNextOne: a refused decision does not
// hold back a later decision on the same change, whether the later one was
// queued before or after the refusal; the CLI never promises delivery
// behind a refused item; delivered and superseded items cannot be
// discarded (issue 12, section 2, bullet 2).
func TestRefusedDecisionNeverBlocksTheNextOne(t *testing.T) {
	w := newDecideWorld(t)
	number, sysID := w.raise(t)

	// Offline, two decisions queue on the change: cab.manager's (who holds
	// no approval in this stage) and then ops.lead's.
	w.sim.Sim().SetFaults(snowsim.Faults{Drop: snowsim.Rule{Every: 1}})
	for _, user := range []string{"cab.manager", "ops.lead"} {
		if r := daytwo(t, w.as(user), "change", "approve", number, "--comment", "ok", "--wait", "1s"); r.code != 0 {
			t.Fatalf("offline approve as %s: %+v", user, r)
		}
	}
	w.sim.Sim().SetFaults(snowsim.Faults{})
	ids := decisions(t, w.env)
	if len(ids) != 2 {
		t.Fatalf("decisions queued: %v, want 2", ids)
	}
	first, second := ids[0], ids[1]
	// ops.lead's daemon: cab.manager's decision is refused (no credentials
	// here), and ops.lead's goes out behind it in the same pass.
	waitFor(t, "both decisions to be tried", 30*time.Second, func() bool {
		daytwo(t, w.as("ops.lead"), "sync", "--once")
		return item(t, w.env, second).State != ops.OutboxPending
	})
	if it := item(t, w.env, first); it.State != ops.OutboxSuperseded || !strings.Contains(it.LastError, "no credentials for cab.manager") {
		t.Fatalf("first decision = %s %q; want superseded, with why it was refused", it.State, it.LastError)
	}
	if it := item(t, w.env, second); it.State != ops.OutboxDelivered {
		t.Fatalf("second decision = %s %q; want delivered", it.State, it.LastError)
	}
	if got := w.approved(t, sysID); got["ops.lead"] != 1 {
		t.Fatalf("approvals %v; want ops.lead's", got)
	}

	// Stage two (CAB Approval). auditor's decision, queued offline, is
	// refused at delivery in words.
	if r := daytwo(t, w.env, "sync", "--once"); r.code != 0 {
		t.Fatalf("sync: %+v", r)
	}
	w.sim.Sim().SetFaults(snowsim.Faults{Drop: snowsim.Rule{Every: 1}})
	if r := daytwo(t, w.as("auditor"), "change", "approve", number, "--comment", "ok", "--wait", "0"); r.code != 0 {
		t.Fatalf("offline approve as auditor: %+v", r)
	}
	w.sim.Sim().SetFaults(snowsim.Faults{})
	ids = decisions(t, w.env)
	third := ids[len(ids)-1]
	r := daytwo(t, w.as("auditor"), "outbox", "retry", fmt.Sprint(third))
	if r.code == 0 || !strings.Contains(r.stdout, "refused 1") {
		t.Fatalf("auditor's decision: %+v; want refused", r)
	}
	it := item(t, w.env, third)
	for _, want := range []string{"acted as auditor, who holds no pending approval", "group CAB Approval (cab.manager, ops.lead)"} {
		if !strings.Contains(it.LastError, want) {
			t.Errorf("refusal lacks %q: %s", want, it.LastError)
		}
	}
	if r := daytwo(t, w.env, "outbox", "discard", fmt.Sprint(second)); r.code == 0 || !strings.Contains(r.stderr, "was delivered") {
		t.Fatalf("discarding a delivered item: %+v; want refused", r)
	}

	// ops.lead decides again: the refused decision is superseded, the new
	// one is delivered, and nothing claims a delivery that cannot happen.
	r = daytwo(t, w.as("ops.lead"), "change", "approve", number, "--comment", "CAB ok")
	if r.code != 0 || !strings.Contains(r.stdout, number+" approved: now Scheduled") {
		t.Fatalf("approve behind a refused decision: %+v", r)
	}
	if it := item(t, w.env, third); it.State != ops.OutboxSuperseded {
		t.Fatalf("refused decision = %s; want superseded", it.State)
	}
	if r := daytwo(t, w.env, "outbox", "discard", fmt.Sprint(third)); r.code == 0 || !strings.Contains(r.stderr, "already superseded") {
		t.Fatalf("discarding a superseded item: %+v; want refused", r)
	}
	if a := auditActions(t, w.env); !strings.Contains(a, "outbox.superseded") {
		t.Fatalf("no audit event for the superseded decisions:\n%s", a)
	}
}

// TestOutboxDiscard: an undeliverable decision is given up with `outbox
// discard`, audited; `outbox retry` does not bring it back.
func TestOutboxDiscard(t *testing.T) {
	w := newDecideWorld(t)
	number, sysID := w.raise(t)
	w.sim.Sim().SetFaults(snowsim.Faults{Drop: snowsim.Rule{Every: 1}})
	if r := daytwo(t, w.as("ops.lead"), "change", "approve", number, "--wait", "0"); r.code != 0 {
		t.Fatalf("offline approve: %+v", r)
	}
	w.sim.Sim().SetFaults(snowsim.Faults{})
	id := decisions(t, w.env)[0]
	if r := daytwo(t, w.env, "outbox", "retry"); r.code == 0 {
		t.Fatalf("delivery without ops.lead's credentials: %+v; want refused", r)
	}
	if r := daytwo(t, w.env, "--read-only", "outbox", "discard", fmt.Sprint(id)); r.code != exitReadOnly || !strings.Contains(r.stderr, "read-only") {
		t.Fatalf("discard in read-only mode: %+v; want refused", r)
	}
	r := daytwo(t, w.env, "outbox", "discard", fmt.Sprint(id), "--reason", "approved in ServiceNow by hand")
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("discarded #%d", id)) {
		t.Fatalf("discard: %+v", r)
	}
	if it := item(t, w.env, id); it.State != ops.OutboxDiscarded {
		t.Fatalf("discarded item = %s", it.State)
	}
	if r := daytwo(t, w.as("ops.lead"), "outbox", "retry"); r.code != 0 || !strings.Contains(r.stdout, "requeued 0") {
		t.Fatalf("retry after discard: %+v; want nothing requeued", r)
	}
	if got := w.approved(t, sysID); len(got) != 0 {
		t.Fatalf("a discarded decision was sent: %v", got)
	}
	if a := auditActions(t, w.env); !strings.Contains(a, "outbox.discarded") {
		t.Fatalf("no audit event for the discard:\n%s", a)
	}
}

// TestDeadProcessClaimIsShownAndReleased: a `sync --once` killed -9 while
// sending a write leaves its claim; `outbox list` names the holder and says
// it is gone, and the next delivery takes the item at once instead of
// waiting out the claim (issue 11, defect 12).
func TestDeadProcessClaimIsShownAndReleased(t *testing.T) {
	w := newDecideWorld(t)
	number, sysID := w.raise(t)
	if r := daytwo(t, w.as("ops.lead"), "change", "approve", number, "--wait", "0"); r.code != 0 {
		t.Fatalf("approve: %+v", r)
	}
	id := decisions(t, w.env)[0]

	w.sim.Sim().SetFaults(snowsim.Faults{Latency: time.Minute}) // every call hangs
	sync := exec.Command(daytwoBin, "sync", "--once")
	sync.Dir = t.TempDir()
	sync.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, w.as("ops.lead")...)
	if err := sync.Start(); err != nil {
		t.Fatal(err)
	}
	holder := fmt.Sprintf(":%d", sync.Process.Pid)
	waitFor(t, "the sync to claim the decision", 20*time.Second, func() bool {
		return strings.Contains(item(t, w.env, id).ClaimedBy, holder)
	})
	r := daytwo(t, w.env, "outbox", "list")
	if !strings.Contains(r.stdout, holder) || strings.Contains(r.stdout, "process gone") {
		t.Fatalf("outbox list while the claim is live:\n%s", r.stdout)
	}
	_ = sync.Process.Kill()
	_ = sync.Wait()

	r = daytwo(t, w.env, "outbox", "list")
	if !strings.Contains(r.stdout, holder+" (process gone") {
		t.Fatalf("outbox list does not show the dead holder:\n%s", r.stdout)
	}
	w.sim.Sim().SetFaults(snowsim.Faults{})
	if r := daytwo(t, w.as("ops.lead"), "sync", "--once"); r.code != 0 {
		t.Fatalf("sync after the kill: %+v", r)
	}
	if it := item(t, w.env, id); it.State != ops.OutboxDelivered {
		t.Fatalf("decision after the holder died = %s (claimed by %s until %s); want delivered at once", it.State, it.ClaimedBy, it.ClaimedUntil)
	}
	if got := w.approved(t, sysID); got["ops.lead"] != 1 {
		t.Fatalf("approvals %v; want ops.lead's", got)
	}
}

// TestFourEyesRecheckedAtDelivery: a decision queued by the requester while
// four eyes was off is not sent by a process that enforces four eyes.
func TestFourEyesRecheckedAtDelivery(t *testing.T) {
	w := newDecideWorld(t)
	number, sysID := w.raise(t)
	cfg := strings.TrimPrefix(w.env[0], "DAYTWO_CONFIG=")
	body, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lax := strings.Replace(string(body), "four_eyes: true", "four_eyes: false", 1)
	if err := os.WriteFile(cfg, []byte(lax), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := daytwo(t, w.env, "change", "approve", number, "--wait", "0"); r.code != 0 {
		t.Fatalf("approve as the integration user with four eyes off: %+v", r)
	}
	if err := os.WriteFile(cfg, body, 0o600); err != nil {
		t.Fatal(err)
	}
	daytwo(t, w.env, "sync", "--once")
	id := decisions(t, w.env)[0]
	if it := item(t, w.env, id); it.State != ops.OutboxFailed || !strings.Contains(it.LastError, "four eyes") || !strings.Contains(it.LastError, "not sent") {
		t.Fatalf("requester's decision delivered under four eyes = %s %q; want refused", it.State, it.LastError)
	}
	if got := w.approved(t, sysID); len(got) != 0 {
		t.Fatalf("approvals %v; want none", got)
	}
}

// TestDemoManualApprovalHeadless: `daytwo demo --manual-approval` with the
// scripted story: nothing approves but daytwo itself, deciding each stage
// as the demo's configured approver through the console's Decide.
func TestDemoManualApprovalHeadless(t *testing.T) {
	if testing.Short() {
		t.Skip("the whole demo story: ~20 s")
	}
	r := daytwo(t, nil, "demo", "--headless", "--manual-approval")
	if r.code != 0 || !strings.Contains(r.stdout, "stage 2 approved") || !strings.Contains(r.stdout, "demo story passed") {
		t.Fatalf("demo --headless --manual-approval: %+v", r)
	}
}

// TestApproveBehindARefusedWriteSaysWhatBlocksIt: when a write ahead of a
// decision on the same change was refused (here one put there by hand, as
// any other component's write keyed by the change would be), `change
// approve` says what blocks it and exits 3 instead of promising delivery.
func TestApproveBehindARefusedWriteSaysWhatBlocksIt(t *testing.T) {
	w := newDecideWorld(t)
	number, _ := w.raise(t)
	db, err := sql.Open("sqlite", filepath.Join(w.dir, "d.db"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`INSERT INTO outbox (ordering_key, kind, payload_json, state, attempts, next_attempt_at, last_error, created_at)
		VALUES (?, 'change.work_note', '{}', 'failed', 1, '2026-01-01T00:00:00.000000000Z', 'Invalid update: note too long', '2026-01-01T00:00:00.000000000Z')`, number)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := daytwo(t, w.as("ops.lead"), "change", "approve", number, "--wait", "2s")
	if r.code != exitBlocked || strings.Contains(r.stdout, "will be delivered") ||
		!strings.Contains(r.stderr, "will not be delivered") || !strings.Contains(r.stderr, "note too long") || !strings.Contains(r.stderr, "outbox discard") {
		t.Fatalf("approve behind a refused write: %+v; want exit 3 naming the refused item", r)
	}
	if r := daytwo(t, w.env, "outbox", "list"); !strings.Contains(r.stdout, "held back by #") {
		t.Fatalf("outbox list does not show the decision held back:\n%s", r.stdout)
	}
}
