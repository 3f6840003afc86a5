package main

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// attackerEvent is the hashed form of an audit event, as store/audit.go
// documents it: an attacker with the file can compute it.
type attackerEvent struct {
	Seq          int64           `json:"seq"`
	Time         string          `json:"ts"`
	Actor        string          `json:"actor"`
	Action       string          `json:"action"`
	Subject      string          `json:"subject"`
	Environment  string          `json:"environment"`
	UpdateID     string          `json:"update_id"`
	ChangeNumber string          `json:"change_number"`
	Result       string          `json:"result"`
	Detail       json.RawMessage `json:"detail"`
	PrevHash     string          `json:"prev_hash"`
}

// rewriteAndRehash changes the actor of event seq and recomputes every
// hash after it, leaving the MACs as they were (the attacker lacks the key).
func rewriteAndRehash(t *testing.T, db *sql.DB, seq int64) {
	t.Helper()
	rows, err := db.Query(`SELECT seq, ts, actor, action, subject, environment, update_id, change_number, result, detail_json FROM audit_events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var evs []attackerEvent
	for rows.Next() {
		var e attackerEvent
		var detail string
		if err := rows.Scan(&e.Seq, &e.Time, &e.Actor, &e.Action, &e.Subject, &e.Environment, &e.UpdateID, &e.ChangeNumber, &e.Result, &detail); err != nil {
			t.Fatal(err)
		}
		e.Detail = json.RawMessage(detail)
		if detail == "" {
			e.Detail = json.RawMessage("null")
		}
		evs = append(evs, e)
	}
	rows.Close()
	prev := strings.Repeat("0", 64)
	for _, e := range evs {
		if e.Seq == seq {
			e.Actor = "mallory"
		}
		e.PrevHash = prev
		b, _ := json.Marshal(e)
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])
		if _, err := db.Exec(`UPDATE audit_events SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?`, e.Actor, prev, h, e.Seq); err != nil {
			t.Fatal(err)
		}
		prev = h
	}
}

// TestAuditAnchorsAndKeyDetectTampering: a gated run's close writes the
// chain head into the change's work notes and the anchor file; a chain
// that is then truncated, emptied, or rewritten and rehashed passes the
// chain check alone (the defect) but fails `audit verify` with the anchors
// (--against-servicenow, the anchor file) or the key.
func TestAuditAnchorsAndKeyDetectTampering(t *testing.T) {
	w := newEngineWorld(t, "0s")
	anchorFile := filepath.Join(w.dir, "anchors.jsonl")
	f, err := os.OpenFile(w.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("audit: {anchor_file: anchors.jsonl}\n")
	f.Close()
	const key = "e2e-audit-key-0123456789abcdef"
	keyed := append([]string{"DAYTWO_AUDIT_KEY=" + key}, w.env...)

	p := proposeWith(t, keyed, "production", "1.1.0")
	w.approve(t, p.Change)
	daytwo(t, keyed, "sync", "--once")
	if r := daytwo(t, keyed, "run", p.ID); r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	daytwo(t, keyed, "sync", "--once")
	notes := w.simRecords(t, "sys_journal_field", url.QueryEscape("element=work_notes^valueSTARTSWITHdaytwo audit anchor:"))
	if len(notes) != 1 {
		t.Fatalf("want one anchor work note on %s, got %v", p.Change, notes)
	}
	r := daytwo(t, keyed, "audit", "verify", "--against-servicenow")
	if r.code != 0 || !strings.Contains(r.stdout, "audit chain ok") || !strings.Contains(r.stdout, "anchors: 2 compared") ||
		!strings.Contains(r.stdout, "keyed (HMAC-SHA256) from event 1") || !strings.Contains(r.stdout, "MACs checked") {
		t.Fatalf("verify of an untouched chain: %+v", r)
	}
	if strings.Contains(r.stdout+r.stderr, key) {
		t.Fatal("the audit key is echoed")
	}
	// Without the key, a process may read but not write a keyed chain.
	if r := daytwo(t, w.env, "audit", "verify"); r.code != 0 || !strings.Contains(r.stdout, "MACs NOT checked") {
		t.Fatalf("verify without the key: %+v", r)
	}
	if r := daytwo(t, w.env, "propose", "staging", "1.1.0"); r.code == 0 || !strings.Contains(r.stderr, "DAYTWO_AUDIT_KEY") || strings.Contains(r.stderr, key) {
		t.Fatalf("a keyless write to a keyed chain: %+v", r)
	}

	// A pristine copy of the database for each attack.
	src, err := sql.Open("sqlite", "file:"+filepath.Join(w.dir, "d.db"))
	if err != nil {
		t.Fatal(err)
	}
	pristine := filepath.Join(w.dir, "pristine.db")
	if _, err := src.Exec(`VACUUM INTO ?`, pristine); err != nil {
		t.Fatal(err)
	}
	src.Close()
	attack := func(t *testing.T, name string, how func(db *sql.DB)) []string {
		path := filepath.Join(t.TempDir(), name+".db")
		b, err := os.ReadFile(pristine)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("sqlite", "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		how(db)
		db.Close()
		return []string{"DAYTWO_DB=" + path}
	}
	exec := func(db *sql.DB, stmts ...string) {
		for _, s := range stmts {
			if _, err := db.Exec(s); err != nil {
				t.Fatal(err)
			}
		}
	}

	tests := map[string]struct {
		how  func(db *sql.DB)
		want string
	}{
		"truncated": {func(db *sql.DB) {
			exec(db, `DELETE FROM audit_events WHERE seq > 3`, `UPDATE sqlite_sequence SET seq = 3 WHERE name = 'audit_events'`)
		}, "events were cut off the end"},
		"emptied": {func(db *sql.DB) {
			exec(db, `DELETE FROM audit_events`, `DELETE FROM sqlite_sequence WHERE name = 'audit_events'`)
		}, "the audit log was emptied"},
		"rewritten and rehashed": {func(db *sql.DB) { rewriteAndRehash(t, db, 2) }, "the chain was rewritten"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			db := attack(t, strings.ReplaceAll(name, " ", "-"), tc.how)
			noKey := append(append([]string{}, w.env...), db...)
			// The chain alone (no key, no anchors) passes: the defect.
			if r := daytwo(t, noKey, "audit", "verify", "--anchor-file="); r.code != 0 {
				t.Fatalf("the chain alone already fails: %+v", r)
			}
			// The work note on the change catches it.
			r := daytwo(t, noKey, "audit", "verify", "--anchor-file=", "--against-servicenow")
			if r.code != 1 || !strings.Contains(r.stdout, "BROKEN") || !strings.Contains(r.stdout, "the work note of "+p.Change) || !strings.Contains(r.stdout, tc.want) {
				t.Fatalf("--against-servicenow: %+v", r)
			}
			// So does the anchor file.
			r = daytwo(t, noKey, "audit", "verify", "-o", "json")
			if r.code != 1 || !strings.Contains(r.stdout, "anchor file "+anchorFile) || !strings.Contains(r.stdout, tc.want) {
				t.Fatalf("anchor file: %+v", r)
			}
		})
	}
	t.Run("rehash with the key", func(t *testing.T) {
		db := attack(t, "rehash-key", func(db *sql.DB) { rewriteAndRehash(t, db, 2) })
		r := daytwo(t, append(append([]string{}, keyed...), db...), "audit", "verify", "--anchor-file=")
		if r.code != 1 || !strings.Contains(r.stdout, "BROKEN at event 2: MAC does not match") {
			t.Fatalf("rehash verified with the key: %+v", r)
		}
	})
}

func proposeWith(t *testing.T, env []string, envName, version string) proposeResult {
	t.Helper()
	r := daytwo(t, env, "propose", envName, version, "-o", "json")
	var p proposeResult
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || r.code != 0 || p.Change == "" {
		t.Fatalf("propose %s %s: %+v (%v)", envName, version, r, err)
	}
	return p
}
