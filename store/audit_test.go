package store

import (
	"context"
	"fmt"
	"testing"

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
