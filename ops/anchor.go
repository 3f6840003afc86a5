package ops

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// AuditAnchor is the audit chain's head (sequence and hash) recorded
// outside the store: in a change's work notes and, if configured, an
// append-only file. An anchor lets `audit verify` notice a chain that was
// cut short, emptied or rewritten, which the chain alone cannot show.
type AuditAnchor struct {
	Seq      int64     `json:"seq"`
	Hash     string    `json:"hash"`
	Time     time.Time `json:"time,omitzero"`
	Change   string    `json:"change,omitempty"`
	UpdateID string    `json:"update_id,omitempty"`
	// Source says where the anchor was read (a change's work note, a line
	// of the anchor file), for reports.
	Source string `json:"-"`
}

// AuditAnchorer is the capability of a transaction that can read the chain
// head it is about to commit and copy it to the store's own anchor sinks
// once it commits. The store's transaction implements it.
type AuditAnchorer interface {
	AuditAnchor(ctx context.Context, a AuditAnchor) (AuditAnchor, error)
}

// anchorNotePrefix starts every anchor work note; ParseAnchorNote looks for
// it anywhere in a journal entry (ServiceNow may prepend a header).
const anchorNotePrefix = "daytwo audit anchor:"

var anchorNoteRE = regexp.MustCompile(`daytwo audit anchor: seq=(\d+) hash=([0-9a-f]{64})`)

// AnchorNote is the work note that records an anchor on a change.
func AnchorNote(a AuditAnchor) string {
	return fmt.Sprintf("%s seq=%d hash=%s\n(daytwo's audit chain head at this close; verifying the audit chain against ServiceNow compares it with this note)",
		anchorNotePrefix, a.Seq, a.Hash)
}

// ParseAnchorNote extracts the anchor from a work note written by
// AnchorNote; false for any other note.
func ParseAnchorNote(note string) (AuditAnchor, bool) {
	m := anchorNoteRE.FindStringSubmatch(note)
	if m == nil {
		return AuditAnchor{}, false
	}
	seq, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || seq <= 0 {
		return AuditAnchor{}, false
	}
	return AuditAnchor{Seq: seq, Hash: m[2]}, true
}

// queueAuditAnchor records the audit chain head inside the finish
// transaction of a run: as a work note on the update's change (delivered by
// the outbox with the close) and in the store's anchor file, if any. The
// head is what this transaction sees, so it commits with the events it
// covers and never anchors an event that was rolled back.
func (s *Service) queueAuditAnchor(ctx context.Context, tx Tx, u Update) error {
	at, ok := tx.(AuditAnchorer)
	if !ok {
		return nil
	}
	a, err := at.AuditAnchor(ctx, AuditAnchor{Change: u.ChangeNumber, UpdateID: u.ID})
	if err != nil || a.Seq == 0 {
		return err
	}
	if env, err := s.Environment(u.Environment); err != nil || !env.RequiresChange {
		return nil // no change to write to: the file sink (if any) has it
	}
	return s.enqueue(ctx, tx, u.outboxKey(), OutboxWorkNote, notePayload{UpdateID: u.ID, Note: AnchorNote(a)})
}
