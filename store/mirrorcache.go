package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/daytwo/daytwo/ops"
)

// mirrorCache is this process's copy of what a sync cycle reads back of
// the mirror on every cycle: the compared columns of the approvals it
// fetched (ApprovalsByID) and the sys_ids of daytwo's open changes
// (OpenChangeSysIDs). With 1,000 open changes those two reads were 2,000
// and 1,000 SQLite rows a cycle, about a third of an idle cycle's work,
// for answers that change only when a write changes the mirror.
//
// It is stamped with changes_generation, which every transaction that
// changes mirrored rows bumps — a change upserted or deleted, an approval
// upserted or deleted —, in this process or another (the daemon, a second
// console): a read first reads the counter (one row) and answers from
// memory only when it still has the value the copy was taken at. This
// process's own writes keep the copy current instead of dropping it: a
// transaction that moved the counter from exactly the copy's value (no
// other writer in between) applies what it wrote to the copy after it
// commits. Anything else — another process's write, a deletion, a
// rolled-back transaction, a read that raced a write — drops the copy, and
// the next read is the plain query again.
type mirrorCache struct {
	mu sync.Mutex
	// approvals by sys_id at approvalsGen; present false: not mirrored.
	approvals    map[string]cachedApproval
	approvalsGen int64
	// open is OpenChangeSysIDs(openPrefix) at openGen.
	open       []string
	openPrefix string
	openGen    int64
	openOK     bool
}

type cachedApproval struct {
	a       ops.Approval // the columns ApprovalsByID returns
	present bool
}

// generation reads changes_generation.
func (db *DB) generation(ctx context.Context) (int64, error) {
	st, err := db.prepared(ctx, `SELECT COALESCE((SELECT n FROM changes_generation WHERE id = 1), 0)`)
	if err != nil {
		return 0, err
	}
	var n int64
	err = st.QueryRowContext(ctx).Scan(&n)
	return n, err
}

// throughCache answers a read from the copy when hit can at the current
// generation; otherwise it runs read and, when the generation did not move
// while it ran (no write came between), lets keep store the answer.
func (db *DB) throughCache(ctx context.Context, what string, hit func(gen int64) bool, read func() error, keep func(gen int64)) error {
	gen, err := db.generation(ctx)
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if hit(gen) {
		return nil
	}
	if err := read(); err != nil {
		return err
	}
	if after, err := db.generation(ctx); err == nil && after == gen {
		keep(gen)
	}
	return nil
}

// cachedApprovals returns the approvals among ids the copy knows at gen
// (found or known absent) and the ids it does not know.
func (c *mirrorCache) cachedApprovals(gen int64, ids []string) (map[string]ops.Approval, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]ops.Approval, len(ids))
	if c.approvals == nil || c.approvalsGen != gen {
		return out, ids
	}
	var missing []string
	for _, id := range ids {
		e, ok := c.approvals[id]
		switch {
		case !ok:
			missing = append(missing, id)
		case e.present:
			out[id] = e.a
		}
	}
	// Approvals of changes that closed are never asked again: keep the
	// copy near the size of what is asked.
	if len(c.approvals) > 2*len(ids)+1024 {
		keep := make(map[string]cachedApproval, len(ids))
		for _, id := range ids {
			if e, ok := c.approvals[id]; ok {
				keep[id] = e
			}
		}
		c.approvals = keep
	}
	return out, missing
}

// keepApprovals records what a read of ids found at gen; gen is the
// counter read before and after the read, equal, so no write came between.
func (c *mirrorCache) keepApprovals(gen int64, ids []string, found map[string]ops.Approval) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.approvals == nil || c.approvalsGen != gen {
		c.approvals, c.approvalsGen = make(map[string]cachedApproval, len(ids)), gen
	}
	for _, id := range ids {
		a, ok := found[id]
		c.approvals[id] = cachedApproval{a: a, present: ok}
	}
}

// cachedOpen returns the open changes at gen for prefix, if the copy has them.
func (c *mirrorCache) cachedOpen(gen int64, prefix string) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.openOK || c.openGen != gen || c.openPrefix != prefix {
		return nil, false
	}
	return slices.Clone(c.open), true
}

func (c *mirrorCache) keepOpen(gen int64, prefix string, ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open, c.openPrefix, c.openGen, c.openOK = slices.Clone(ids), prefix, gen, true
}

// mirrorWrites is what a transaction wrote to the mirror, for the copy.
type mirrorWrites struct {
	from, to   int64 // changes_generation before its first bump, after its last
	changes    bool  // change rows upserted or deleted
	deleted    bool  // approvals deleted
	approvals  []ops.Approval
	registered bool
}

// noteGeneration records a bump of changes_generation to n inside tx.
func (tx *Tx) noteGeneration(n int64) {
	w := &tx.mirror
	if !w.registered {
		w.registered, w.from = true, n-1
		tx.afterCommit = append(tx.afterCommit, func() { tx.db.cache.committed(&tx.mirror) })
	}
	w.to = n
}

// committed applies a committed transaction's mirror writes to the copy,
// or drops the copy when it cannot tell the result.
func (c *mirrorCache) committed(w *mirrorWrites) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.approvals != nil {
		if c.approvalsGen != w.from || w.deleted {
			c.approvals = nil
		} else {
			for _, a := range w.approvals {
				c.approvals[a.SysID] = cachedApproval{a: comparedApproval(a), present: true}
			}
			c.approvalsGen = w.to
		}
	}
	if c.openOK {
		if c.openGen != w.from || w.changes {
			c.openOK = false
		} else {
			c.openGen = w.to
		}
	}
}

// comparedApproval keeps the columns ApprovalsByID returns.
func comparedApproval(a ops.Approval) ops.Approval {
	return ops.Approval{SysID: a.SysID, ChangeSysID: a.ChangeSysID, State: a.State, SysUpdatedOn: a.SysUpdatedOn.UTC(), SysModCount: a.SysModCount}
}

// mergeApprovals adds b's entries to a.
func mergeApprovals(a, b map[string]ops.Approval) map[string]ops.Approval {
	if len(a) == 0 {
		return b
	}
	maps.Copy(a, b)
	return a
}
