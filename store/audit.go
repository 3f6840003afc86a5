package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
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

// auditHead is the newest event of the chain.
type auditHead struct {
	seq       int64
	hash, mac string
}

func (tx *Tx) auditHead(ctx context.Context) (auditHead, error) {
	var h auditHead
	err := tx.tx.QueryRowContext(ctx, `SELECT seq, hash, mac FROM audit_events ORDER BY seq DESC LIMIT 1`).Scan(&h.seq, &h.hash, &h.mac)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return auditHead{hash: genesisHash}, nil
	case err != nil:
		return h, fmt.Errorf("store: read audit head: %w", mapErr(err))
	}
	return h, nil
}

// AppendEvent appends ev to the audit chain inside tx, so that the event
// commits together with the state change it records.
//
// With an audit key, every event carries a MAC. The first keyed event of a
// chain is preceded by an "audit.keyed" marker naming the key (by its id),
// so that verify can say from which event on the chain is keyed. A keyed
// chain stays keyed: a process without the key, or with another key, may
// not append to it (the whole transaction fails), because an unkeyed event
// after keyed ones is indistinguishable from a stripped MAC.
func (tx *Tx) AppendEvent(ctx context.Context, ev ops.Event) (ops.Event, error) {
	head, err := tx.auditHead(ctx)
	if err != nil {
		return ev, err
	}
	key := tx.db.auditKey
	switch {
	case head.mac != "" && key == nil:
		return ev, fmt.Errorf("store: %w", tx.db.keyedChainError(ctx, tx.tx, ""))
	case head.mac != "" && !hmac.Equal([]byte(head.mac), []byte(eventMAC(key, head.hash))):
		return ev, fmt.Errorf("store: %w", tx.db.keyedChainError(ctx, tx.tx, keyID(key)))
	case head.mac == "" && key != nil:
		marker := ops.Event{
			Actor: "daytwo", Action: ActionAuditKeyed, Result: "ok",
			Detail: map[string]any{"key_id": keyID(key), "unkeyed_events": head.seq},
		}
		if marker, err = tx.appendAfter(ctx, marker, head); err != nil {
			return ev, err
		}
		head = auditHead{seq: marker.Seq, hash: marker.Hash}
	}
	return tx.appendAfter(ctx, ev, head)
}

// ActionAuditKeyed is the marker event written when a chain is first
// appended to with an audit key.
const ActionAuditKeyed = "audit.keyed"

// ErrAuditKey reports an append refused because the chain is keyed and
// this process lacks its key (or holds another one).
var ErrAuditKey = errors.New("the audit chain is keyed")

func (db *DB) keyedChainError(ctx context.Context, q querier, have string) error {
	var from int64
	var detail string
	_ = q.QueryRowContext(ctx, `SELECT seq, detail_json FROM audit_events WHERE action = ? ORDER BY seq DESC LIMIT 1`, ActionAuditKeyed).Scan(&from, &detail)
	var d struct {
		KeyID string `json:"key_id"`
	}
	_ = json.Unmarshal([]byte(detail), &d)
	if have == "" {
		return fmt.Errorf("%w (HMAC from event %d, key id %s) and this process has no audit key: set DAYTWO_AUDIT_KEY or audit.key_file to write to %s",
			ErrAuditKey, from, orUnknown(d.KeyID), db.path)
	}
	return fmt.Errorf("%w with another key (HMAC from event %d, key id %s; this process's key id is %s): the head event's MAC does not verify, so nothing is appended",
		ErrAuditKey, from, orUnknown(d.KeyID), have)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// querier runs a query on the DB or a transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (tx *Tx) appendAfter(ctx context.Context, ev ops.Event, head auditHead) (ops.Event, error) {
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
	ev.Seq = head.seq + 1
	ev.PrevHash = head.hash
	c := canonicalEvent{
		Seq: ev.Seq, Time: formatTime(ev.Time), Actor: ev.Actor, Action: ev.Action, Subject: ev.Subject,
		Environment: ev.Environment, UpdateID: ev.UpdateID, ChangeNumber: ev.ChangeNumber, Result: ev.Result,
		Detail: json.RawMessage(detail), PrevHash: ev.PrevHash,
	}
	var err error
	if ev.Hash, err = eventHash(c); err != nil {
		return ev, fmt.Errorf("store: audit hash: %w", err)
	}
	mac := ""
	if tx.db.auditKey != nil {
		mac = eventMAC(tx.db.auditKey, ev.Hash)
	}
	_, err = tx.tx.ExecContext(ctx, `INSERT INTO audit_events
		(seq, ts, actor, action, subject, environment, update_id, change_number, result, detail_json, prev_hash, hash, mac)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ev.Seq, c.Time, ev.Actor, ev.Action, ev.Subject, ev.Environment, ev.UpdateID, ev.ChangeNumber,
		ev.Result, detail, ev.PrevHash, ev.Hash, mac)
	if err != nil {
		return ev, fmt.Errorf("store: append audit event: %w", mapErr(err))
	}
	return ev, nil
}

// eventMAC keys an event's hash. The hash covers the event's content and
// its predecessor's hash, so a valid MAC on event N vouches for events 1..N:
// rewriting any of them and rehashing breaks N's MAC unless the key is known.
func eventMAC(key []byte, hash string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("daytwo-audit-v1\n" + hash))
	return hex.EncodeToString(m.Sum(nil))
}

// keyID names a key without revealing it: the first 8 bytes of an HMAC of a
// fixed label.
func keyID(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("daytwo-audit-key-id"))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// ListEvents returns audit events in chain order.
func (db *DB) ListEvents(ctx context.Context, f ops.EventFilter) ([]ops.Event, error) {
	q := `SELECT seq, ts, actor, action, subject, environment, update_id, change_number, result, detail_json, prev_hash, hash, mac
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
		&c.ChangeNumber, &c.Result, &detail, &c.PrevHash, &ev.Hash, &ev.MAC); err != nil {
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

// VerifyAudit is VerifyAuditAnchors without anchors.
func (db *DB) VerifyAudit(ctx context.Context) (ops.AuditVerification, error) {
	return db.VerifyAuditAnchors(ctx, nil)
}

// VerifyAuditAnchors walks the whole chain and reports the first event
// whose sequence, link to its predecessor, own hash or MAC does not match,
// then compares the chain with anchors (heads recorded outside the
// database).
//
// What each check detects:
//   - hashes and links: editing any column of any row, deleting a row in
//     the middle, reordering rows — unless the attacker rehashes every
//     event after the edit;
//   - with the audit key: a rewrite-and-rehash of any event up to the last
//     keyed one (each MAC covers every event before it through the hash
//     links), a stripped MAC, an unkeyed event inserted after key start;
//   - the table's AUTOINCREMENT counter: rows cut off the end with DELETE
//     (the counter remembers the highest sequence ever written, unless the
//     attacker edits sqlite_sequence too);
//   - anchors: cutting events off the end or emptying the table (the chain
//     ends before an anchored sequence), and any rewrite up to an anchored
//     sequence (its hash differs), key or not.
//
// Not detected: events appended after the last anchor and cut off again by
// someone who also resets sqlite_sequence; a rewrite of the whole chain by
// someone holding the key, when no anchor is checked.
func (db *DB) VerifyAuditAnchors(ctx context.Context, anchors []ops.AuditAnchor) (ops.AuditVerification, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT seq, ts, actor, action, subject, environment, update_id, change_number, result, detail_json, prev_hash, hash, mac
		FROM audit_events ORDER BY seq`)
	if err != nil {
		return ops.AuditVerification{}, fmt.Errorf("store: verify audit: %w", mapErr(err))
	}
	defer rows.Close()
	res := ops.AuditVerification{OK: true, MACsChecked: db.auditKey != nil}
	if db.auditKey != nil {
		res.KeyID = keyID(db.auditKey)
	}
	anchored := map[int64]string{}
	for _, a := range anchors {
		anchored[a.Seq] = ""
	}
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
		want, hashErr := eventHash(c)
		switch {
		case ev.Seq != prevSeq+1:
			fail(fmt.Sprintf("sequence jumps from %d to %d: events were deleted", prevSeq, ev.Seq))
		case c.PrevHash != prevHash:
			fail("previous-hash link does not match the event before it")
		case hashErr != nil:
			fail("event cannot be encoded: " + hashErr.Error())
		case want != ev.Hash:
			fail("content does not match its hash: the event was edited")
		case ev.MAC == "" && res.KeyedFrom != 0:
			fail(fmt.Sprintf("event carries no MAC although the chain is keyed from event %d: its MAC was stripped or it was written without the key", res.KeyedFrom))
		case ev.MAC != "" && res.KeyedFrom == 0 && ev.Action != ActionAuditKeyed:
			fail("the first keyed event is not an audit.keyed marker: the chain was rewritten")
		}
		if res.OK && ev.MAC != "" {
			if res.KeyedFrom == 0 {
				res.KeyedFrom = ev.Seq
				if id, _ := ev.Detail["key_id"].(string); id != "" {
					res.ChainKeyID = id
				}
			}
			if db.auditKey != nil && !hmac.Equal([]byte(ev.MAC), []byte(eventMAC(db.auditKey, ev.Hash))) {
				if res.ChainKeyID != "" && res.ChainKeyID != res.KeyID {
					fail(fmt.Sprintf("MAC does not match: the chain is keyed with key id %s, this process holds key id %s", res.ChainKeyID, res.KeyID))
				} else {
					fail("MAC does not match: the event was rewritten (and rehashed) without the audit key")
				}
			}
		}
		if !res.OK {
			return res, nil
		}
		if _, ok := anchored[ev.Seq]; ok {
			anchored[ev.Seq] = ev.Hash
		}
		prevHash, prevSeq = ev.Hash, ev.Seq
		res.HeadHash, res.HeadSeq = ev.Hash, ev.Seq
	}
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("store: verify audit: %w", mapErr(err))
	}
	var written int64
	err = db.sql.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'audit_events'`).Scan(&written)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return res, fmt.Errorf("store: verify audit: %w", mapErr(err))
	}
	if written > res.HeadSeq {
		res.OK, res.BadSeq = false, res.HeadSeq+1
		res.Problem = fmt.Sprintf("the chain ends at event %d but events up to %d were written: events were cut off the end", res.HeadSeq, written)
	}
	switch {
	case res.KeyedFrom == 0 && db.auditKey != nil:
		res.Notes = append(res.Notes, "no event carries a MAC yet: the chain is not keyed")
	case res.KeyedFrom > 0 && db.auditKey == nil:
		res.Notes = append(res.Notes, fmt.Sprintf("events from %d on carry MACs that were not checked (no audit key: set DAYTWO_AUDIT_KEY or audit.key_file)", res.KeyedFrom))
	case res.KeyedFrom > 1:
		res.Notes = append(res.Notes, fmt.Sprintf("events 1..%d predate the key; they are covered by the MACs after them", res.KeyedFrom-1))
	}
	for _, a := range anchors {
		res.AnchorsChecked++
		if a.Seq > res.LastAnchorSeq {
			res.LastAnchorSeq = a.Seq
		}
		var problem string
		switch got := anchored[a.Seq]; {
		case res.Events == 0:
			problem = fmt.Sprintf("%s anchored event %d, but the chain is empty: the audit log was emptied", a.Source, a.Seq)
		case a.Seq > res.HeadSeq:
			problem = fmt.Sprintf("%s anchored event %d, but the chain ends at %d: events were cut off the end", a.Source, a.Seq, res.HeadSeq)
		case got != a.Hash:
			problem = fmt.Sprintf("%s anchored event %d with hash %s, the chain has %s: the chain was rewritten", a.Source, a.Seq, short(a.Hash), short(got))
		}
		if problem == "" {
			continue
		}
		res.AnchorProblems = append(res.AnchorProblems, problem)
		if res.OK {
			res.OK, res.BadSeq, res.Problem = false, min(a.Seq, res.HeadSeq+1), problem
		}
	}
	return res, nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
