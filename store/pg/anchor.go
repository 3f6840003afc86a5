package pg

import (
	"context"
	"encoding/json"
	"os"

	"github.com/daytwo/daytwo/ops"
)

// AuditAnchor implements ops.AuditAnchorer: it returns the chain head as
// tx sees it, and appends it to the anchor file (if configured) once tx
// commits, so the file never names an event that was rolled back.
func (tx *Tx) AuditAnchor(ctx context.Context, a ops.AuditAnchor) (ops.AuditAnchor, error) {
	head, err := tx.auditHead(ctx)
	if err != nil {
		return a, err
	}
	if head.seq == 0 {
		return a, nil
	}
	a.Seq, a.Hash, a.Time = head.seq, head.hash, tx.now
	if path := tx.db.anchorFile; path != "" {
		line := a
		tx.afterCommit = append(tx.afterCommit, func() {
			if err := appendAnchor(path, line); err != nil {
				tx.db.log.Error("audit anchor not written to the anchor file", "file", path, "seq", line.Seq, "err", err)
			}
		})
	}
	return a, nil
}

// appendAnchor adds one JSON line to the anchor file and syncs it.
func appendAnchor(path string, a ops.AuditAnchor) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
