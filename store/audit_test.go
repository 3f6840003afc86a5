package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

func appendEvents(t *testing.T, db *DB, n int) {
	t.Helper()
	for i := range n {
		_, err := db.AppendEvent(context.Background(), ops.Event{
			Actor: "alice", Action: "update.proposed", Subject: fmt.Sprintf("u%d", i), Environment: "production",
			UpdateID: fmt.Sprintf("u%d", i), Result: "ok", Detail: map[string]any{"version": "1.4.2", "n": i},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestAuditChainVerifies(t *testing.T) {
	db := openTest(t)
	appendEvents(t, db, 5)
	res, err := db.VerifyAudit(context.Background())
	if err != nil || !res.OK || res.Events != 5 || res.HeadHash == "" {
		t.Fatalf("verify = %+v, %v", res, err)
	}
	evs, err := db.ListEvents(context.Background(), ops.EventFilter{Limit: 2})
	if err != nil || len(evs) != 2 || evs[0].Seq != 4 || evs[1].Seq != 5 || evs[1].PrevHash != evs[0].Hash {
		t.Fatalf("list = %+v, %v", evs, err)
	}
	if evs[1].Detail["version"] != "1.4.2" {
		t.Fatalf("detail = %v", evs[1].Detail)
	}
}

func TestAuditTamperingIsDetected(t *testing.T) {
	tests := map[string]struct {
		sql    string
		badSeq int64
	}{
		"edited actor":      {`UPDATE audit_events SET actor = 'mallory' WHERE seq = 3`, 3},
		"edited result":     {`UPDATE audit_events SET result = 'ok ' WHERE seq = 2`, 2},
		"edited detail":     {`UPDATE audit_events SET detail_json = replace(detail_json, '1.4.2', '1.4.3') WHERE seq = 4`, 4},
		"edited timestamp":  {`UPDATE audit_events SET ts = replace(ts, '10:00', '11:00') WHERE seq = 1`, 1},
		"deleted row":       {`DELETE FROM audit_events WHERE seq = 3`, 4},
		"rehashed row":      {`UPDATE audit_events SET actor = 'mallory', hash = 'ff' WHERE seq = 2`, 2},
		"relinked next row": {`UPDATE audit_events SET prev_hash = (SELECT hash FROM audit_events WHERE seq = 1) WHERE seq = 3`, 3},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			db := openTest(t)
			appendEvents(t, db, 5)
			if _, err := db.sql.Exec(tc.sql); err != nil {
				t.Fatal(err)
			}
			res, err := db.VerifyAudit(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res.OK || res.BadSeq != tc.badSeq || res.Problem == "" {
				t.Fatalf("verify after %s = %+v; want failure at seq %d", name, res, tc.badSeq)
			}
		})
	}
}

func TestAuditEventCommitsWithItsTransaction(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	_ = db.WithTx(ctx, func(tx *Tx) error {
		if _, err := tx.AppendEvent(ctx, ops.Event{Actor: "a", Action: "x"}); err != nil {
			t.Fatal(err)
		}
		return fmt.Errorf("abort")
	})
	res, err := db.VerifyAudit(ctx)
	if err != nil || !res.OK || res.Events != 0 {
		t.Fatalf("after rollback: %+v, %v", res, err)
	}
}

func openKeyed(t *testing.T, path string, key string, anchorFile string) *DB {
	t.Helper()
	clock := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	opts := Options{Clock: func() time.Time { return clock }, AnchorFile: anchorFile}
	if key != "" {
		opts.AuditKey = []byte(key)
	}
	db, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// rehashFrom edits event seq with edit, then recomputes every hash from
// there on, as someone with write access to the file but not the key would.
func rehashFrom(t *testing.T, db *DB, seq int64, edit func(c *canonicalEvent)) {
	t.Helper()
	rows, err := db.sql.Query(`SELECT seq, ts, actor, action, subject, environment, update_id, change_number, result, detail_json, prev_hash, hash, mac FROM audit_events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var all []canonicalEvent
	for rows.Next() {
		_, c, err := scanEvent(rows)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, c)
	}
	rows.Close()
	prev := genesisHash
	for _, c := range all {
		if c.Seq == seq {
			edit(&c)
		}
		c.PrevHash = prev
		h, err := eventHash(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.sql.Exec(`UPDATE audit_events SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?`, c.Actor, c.PrevHash, h, c.Seq); err != nil {
			t.Fatal(err)
		}
		prev = h
	}
}

func TestAuditRehashIsDetectedOnlyWithTheKey(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "d.db")
	db := openKeyed(t, path, "0123456789abcdef-secret", "")
	appendEvents(t, db, 5)
	res, err := db.VerifyAudit(ctx)
	if err != nil || !res.OK || res.Events != 6 || res.KeyedFrom != 1 || !res.MACsChecked {
		t.Fatalf("keyed chain: %+v, %v", res, err)
	}
	rehashFrom(t, db, 3, func(c *canonicalEvent) { c.Actor = "mallory" })
	if res, _ := db.VerifyAudit(ctx); res.OK || res.BadSeq != 3 || !strings.Contains(res.Problem, "without the audit key") {
		t.Fatalf("rehashed chain verified with the key: %+v", res)
	}
	db.Close()
	// Without the key the rehash goes unseen (what the key is for), and
	// verify says the MACs were not checked.
	nokey := openKeyed(t, path, "", "")
	res, err = nokey.VerifyAudit(ctx)
	if err != nil || !res.OK || res.MACsChecked || len(res.Notes) == 0 || !strings.Contains(res.Notes[0], "not checked") {
		t.Fatalf("without the key: %+v, %v", res, err)
	}
}

func TestAuditKeyStartsOnAnExistingChain(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "d.db")
	db := openKeyed(t, path, "", "")
	appendEvents(t, db, 3)
	db.Close()
	db = openKeyed(t, path, "0123456789abcdef-secret", "")
	appendEvents(t, db, 2)
	res, err := db.VerifyAudit(ctx)
	if err != nil || !res.OK || res.Events != 6 || res.KeyedFrom != 4 || res.ChainKeyID != res.KeyID {
		t.Fatalf("verify: %+v, %v", res, err)
	}
	evs, _ := db.ListEvents(ctx, ops.EventFilter{})
	if evs[3].Action != ActionAuditKeyed || evs[3].MAC == "" || evs[2].MAC != "" {
		t.Fatalf("events: %+v", evs)
	}
	// Events before the key are covered by the MACs after them.
	rehashFrom(t, db, 2, func(c *canonicalEvent) { c.Actor = "mallory" })
	if res, _ := db.VerifyAudit(ctx); res.OK || res.BadSeq != 4 {
		t.Fatalf("rehash before the key start: %+v", res)
	}
}

func TestAuditKeyedChainRefusesKeylessAndOtherKeyWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "d.db")
	db := openKeyed(t, path, "0123456789abcdef-secret", "")
	appendEvents(t, db, 1)
	db.Close()
	for name, key := range map[string]string{"no key": "", "other key": "another-key-0123456789"} {
		db := openKeyed(t, path, key, "")
		_, err := db.AppendEvent(ctx, ops.Event{Actor: "a", Action: "x"})
		if !errors.Is(err, ErrAuditKey) || strings.Contains(err.Error(), "secret") {
			t.Fatalf("%s: append = %v", name, err)
		}
		db.Close()
	}
	db = openKeyed(t, path, "0123456789abcdef-secret", "")
	// A stripped MAC is seen even without checking MACs.
	if _, err := db.sql.Exec(`UPDATE audit_events SET mac = '' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	if res, _ := db.VerifyAudit(ctx); res.OK || res.BadSeq != 2 || !strings.Contains(res.Problem, "no MAC") {
		t.Fatalf("stripped MAC: %+v", res)
	}
}

func TestAuditAnchorsDetectTruncationEmptyingAndRewrite(t *testing.T) {
	ctx := context.Background()
	tests := map[string]struct {
		attack func(t *testing.T, db *DB)
		want   string
	}{
		"truncated": {func(t *testing.T, db *DB) {
			db.sql.Exec(`DELETE FROM audit_events WHERE seq > 2`)
			db.sql.Exec(`UPDATE sqlite_sequence SET seq = 2 WHERE name = 'audit_events'`)
		}, "cut off the end"},
		"emptied": {func(t *testing.T, db *DB) {
			db.sql.Exec(`DELETE FROM audit_events`)
			db.sql.Exec(`DELETE FROM sqlite_sequence WHERE name = 'audit_events'`)
		}, "emptied"},
		"rewritten": {func(t *testing.T, db *DB) {
			rehashFrom(t, db, 1, func(c *canonicalEvent) { c.Actor = "mallory" })
		}, "rewritten"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "anchors.jsonl")
			db := openKeyed(t, filepath.Join(dir, "d.db"), "", file)
			appendEvents(t, db, 4)
			err := db.WithTx(ctx, func(tx *Tx) error {
				_, err := tx.AuditAnchor(ctx, ops.AuditAnchor{Change: "CHG1"})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			anchors, err := ReadAnchorFile(file)
			if err != nil || len(anchors) != 1 || anchors[0].Seq != 4 {
				t.Fatalf("anchor file: %+v, %v", anchors, err)
			}
			if res, err := db.VerifyAuditAnchors(ctx, anchors); err != nil || !res.OK || res.AnchorsChecked != 1 {
				t.Fatalf("before the attack: %+v, %v", res, err)
			}
			tc.attack(t, db)
			// Without the anchor the attack passes (the defect)...
			if res, _ := db.VerifyAudit(ctx); !res.OK {
				t.Fatalf("chain alone already fails: %+v", res)
			}
			// ...with it, it does not.
			res, err := db.VerifyAuditAnchors(ctx, anchors)
			if err != nil || res.OK || len(res.AnchorProblems) != 1 || !strings.Contains(res.Problem, tc.want) || !strings.Contains(res.Problem, "anchor file") {
				t.Fatalf("after %s: %+v, %v", name, res, err)
			}
		})
	}
}

func TestAuditAnchorFileSkipsRolledBackTransactions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "anchors.jsonl")
	db := openKeyed(t, filepath.Join(dir, "d.db"), "", file)
	appendEvents(t, db, 2)
	_ = db.WithTx(ctx, func(tx *Tx) error {
		if _, err := tx.AppendEvent(ctx, ops.Event{Actor: "a", Action: "x"}); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.AuditAnchor(ctx, ops.AuditAnchor{}); err != nil {
			t.Fatal(err)
		}
		return errors.New("abort")
	})
	if _, err := ReadAnchorFile(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a rolled-back anchor reached the file: %v", err)
	}
}

func TestAuditCutTailIsDetectedByTheCounter(t *testing.T) {
	db := openTest(t)
	appendEvents(t, db, 5)
	if _, err := db.sql.Exec(`DELETE FROM audit_events WHERE seq > 3`); err != nil {
		t.Fatal(err)
	}
	if res, _ := db.VerifyAudit(context.Background()); res.OK || res.BadSeq != 4 || !strings.Contains(res.Problem, "cut off the end") {
		t.Fatalf("cut tail: %+v", res)
	}
}
