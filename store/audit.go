package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/daytwo/daytwo/ops"
)

// genesisHash is the previous hash of the first event.
var genesisHash = strings.Repeat("0", 64)

// canonicalEvent fixes the field order and encoding that an event's hash
// covers. Changing it breaks every existing chain: don't.
type canonicalEvent struct {
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

func eventHash(c canonicalEvent) (string, error) {
	if len(c.Detail) == 0 {
		c.Detail = json.RawMessage("null")
	}
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// AppendEvent appends ev to the audit chain in its own transaction and
// returns it with Seq, Time and hashes filled in.
func (db *DB) AppendEvent(ctx context.Context, ev ops.Event) (ops.Event, error) {
	var out ops.Event
	err := db.WithTx(ctx, func(tx *Tx) error {
		var err error
		out, err = tx.AppendEvent(ctx, ev)
		return err
	})
	return out, err
}

// AppendEvent appends ev to the audit chain inside tx, so that the event
// commits together with the state change it records.
func (tx *Tx) AppendEvent(ctx context.Context, ev ops.Event) (ops.Event, error) {
	var (
		lastSeq  int64
		lastHash string
	)
	err := tx.tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`).Scan(&lastSeq, &lastHash)
	switch {
	case err == sql.ErrNoRows:
		lastHash = genesisHash
	case err != nil:
		return ev, fmt.Errorf("store: read audit head: %w", err)
	}
	detail := ""
	if len(ev.Detail) > 0 {
		b, err := json.Marshal(ev.Detail) // maps marshal with sorted keys: canonical
		if err != nil {
			return ev, fmt.Errorf("store: audit detail: %w", err)
		}
		detail = string(b)
	}
	if ev.Time.IsZero() {
		ev.Time = tx.now
	}
	ev.Time = ev.Time.UTC()
	ev.Seq = lastSeq + 1
	ev.PrevHash = lastHash
	c := canonicalEvent{
		Seq: ev.Seq, Time: formatTime(ev.Time), Actor: ev.Actor, Action: ev.Action, Subject: ev.Subject,
		Environment: ev.Environment, UpdateID: ev.UpdateID, ChangeNumber: ev.ChangeNumber, Result: ev.Result,
		Detail: json.RawMessage(detail), PrevHash: ev.PrevHash,
	}
	if ev.Hash, err = eventHash(c); err != nil {
		return ev, fmt.Errorf("store: audit hash: %w", err)
	}
	_, err = tx.tx.ExecContext(ctx, `INSERT INTO audit_events
		(seq, ts, actor, action, subject, environment, update_id, change_number, result, detail_json, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ev.Seq, c.Time, ev.Actor, ev.Action, ev.Subject, ev.Environment, ev.UpdateID, ev.ChangeNumber,
		ev.Result, detail, ev.PrevHash, ev.Hash)
	if err != nil {
		return ev, fmt.Errorf("store: append audit event: %w", mapErr(err))
	}
	return ev, nil
}

// ListEvents returns audit events in chain order.
func (db *DB) ListEvents(ctx context.Context, f ops.EventFilter) ([]ops.Event, error) {
	q := `SELECT seq, ts, actor, action, subject, environment, update_id, change_number, result, detail_json, prev_hash, hash
		FROM audit_events WHERE seq > ?`
	args := []any{f.AfterSeq}
	if f.Environment != "" {
		q += ` AND environment = ?`
		args = append(args, f.Environment)
	}
	if f.UpdateID != "" {
		q += ` AND update_id = ?`
		args = append(args, f.UpdateID)
	}
	if f.Limit > 0 {
		q = `SELECT * FROM (` + q + ` ORDER BY seq DESC LIMIT ?) ORDER BY seq`
		args = append(args, f.Limit)
	} else {
		q += ` ORDER BY seq`
	}
	rows, err := db.sql.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list audit events: %w", err)
	}
	defer rows.Close()
	var out []ops.Event
	for rows.Next() {
		ev, _, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}

func scanEvent(rows *sql.Rows) (ops.Event, canonicalEvent, error) {
	var (
		ev     ops.Event
		c      canonicalEvent
		detail string
	)
	if err := rows.Scan(&c.Seq, &c.Time, &c.Actor, &c.Action, &c.Subject, &c.Environment, &c.UpdateID,
		&c.ChangeNumber, &c.Result, &detail, &c.PrevHash, &ev.Hash); err != nil {
		return ev, c, fmt.Errorf("store: scan audit event: %w", err)
	}
	c.Detail = json.RawMessage(detail)
	ev.Seq, ev.Actor, ev.Action, ev.Subject = c.Seq, c.Actor, c.Action, c.Subject
	ev.Environment, ev.UpdateID, ev.ChangeNumber, ev.Result, ev.PrevHash = c.Environment, c.UpdateID, c.ChangeNumber, c.Result, c.PrevHash
	ev.Time, _ = parseTime(c.Time) // a mangled time is caught by Verify's hash check
	if detail != "" {
		_ = json.Unmarshal([]byte(detail), &ev.Detail) // likewise
	}
	return ev, c, nil
}

// VerifyAudit walks the whole chain and reports the first event whose
// sequence, link to its predecessor or own hash does not match. Editing any
// column of any row, deleting a row in the middle or reordering rows is
// detected. (Cutting rows off the end of the chain leaves a valid shorter
// chain; export the head hash to detect that.)
func (db *DB) VerifyAudit(ctx context.Context) (ops.AuditVerification, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT seq, ts, actor, action, subject, environment, update_id, change_number, result, detail_json, prev_hash, hash
		FROM audit_events ORDER BY seq`)
	if err != nil {
		return ops.AuditVerification{}, fmt.Errorf("store: verify audit: %w", err)
	}
	defer rows.Close()
	res := ops.AuditVerification{OK: true}
	prevHash, prevSeq := genesisHash, int64(0)
	for rows.Next() {
		ev, c, err := scanEvent(rows)
		if err != nil {
			return res, err
		}
		res.Events++
		fail := func(problem string) {
			res.OK, res.BadSeq, res.Problem = false, ev.Seq, problem
		}
		switch want, hashErr := eventHash(c); {
		case ev.Seq != prevSeq+1:
			fail(fmt.Sprintf("sequence jumps from %d to %d: events were deleted", prevSeq, ev.Seq))
		case c.PrevHash != prevHash:
			fail("previous-hash link does not match the event before it")
		case hashErr != nil:
			fail("event cannot be encoded: " + hashErr.Error())
		case want != ev.Hash:
			fail("content does not match its hash: the event was edited")
		}
		if !res.OK {
			return res, nil
		}
		prevHash, prevSeq = ev.Hash, ev.Seq
		res.HeadHash = ev.Hash
	}
	return res, rows.Err()
}
