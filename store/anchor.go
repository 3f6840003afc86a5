package store

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

var _ ops.AuditAnchorer = (*Tx)(nil)

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

// ReadAnchorFile reads the anchors an anchor file holds (JSON lines, as
// AuditAnchor appends them). A missing file is no anchors and no error:
// the caller says so.
func ReadAnchorFile(path string) ([]ops.AuditAnchor, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("store: audit anchor file: %w", err)
	}
	defer f.Close()
	var out []ops.AuditAnchor
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var a ops.AuditAnchor
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil || a.Seq <= 0 || len(a.Hash) != 64 {
			return out, fmt.Errorf("store: audit anchor file %s line %d: not an anchor (want {\"seq\":N,\"hash\":\"<64 hex>\"})", path, n)
		}
		a.Source = fmt.Sprintf("anchor file %s line %d", path, n)
		out = append(out, a)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("store: audit anchor file %s: %w", path, err)
	}
	return out, nil
}
