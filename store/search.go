package store

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"

	"github.com/daytwo/daytwo/ops"
)

// searchIndex is the console's search over the change mirror, in memory:
// each mirrored change's sys_id, sys_updated_on, active flag and
// search_text, oldest first (sys_updated_on, sys_id; a search walks it
// backwards, in the list's order), packed in one byte arena, with a
// trigram signature per change. A search checks each change's signature
// and reads the text (bytes.Contains) of only those that can match:
// 7–17 ms for 1M changes on the loaded 2-core VM for a number, a CI or
// nothing, ~35–70 ms for a word in one change of seven, instead of a
// scan of changes_find in SQLite (~250–400 ns an entry, once for the
// count and once for the window). Memory: ~205 MiB at 1M changes
// (arena ~128, rows 40, the sys_id map the rest).
//
// It follows changes_generation: every write that changes mirrored rows
// bumps it in its own transaction (bumpGeneration), from this process or
// another (the daemon), and logs in changes_writes the lowest
// sys_updated_on it upserted and the sys_ids it deleted. An index behind
// reads the log rows after its generation and then only the changes at or
// above that lowest sys_updated_on (a range of changes_find), and merges
// them in (catchUp): the old copy of a change is marked dead (found by
// sys_id in pos) and a newer one appended, so a catch-up of a few changes
// costs about their number, not the index's size; a change older than the
// newest indexed one (rare: a backfill) makes the rows merge in one pass.
// It reloads whole only when it was never loaded or the
// log no longer reaches back to it. The log is read before the rows, so a
// write racing the catch-up is applied again by the next one; a search
// never answers from rows older than the last write it could see.
//
// A console warms it (WarmSearch): built in the background when the
// store opens, and caught up in the background after each of this
// process's writes, so that a search rarely has anything left to read.
type searchIndex struct {
	mu         sync.Mutex
	generation int64
	valid      bool
	arena      []byte
	live       int // bytes of arena still referenced by rows
	rows       []searchRow
	// pos finds a change's live row by its sys_id: keyed by the id's hash
	// (no string per change for the collector to trace), an id whose hash
	// another live id holds is in posMore.
	pos     map[uint64]int32
	posMore map[string]int32
	seed    maphash.Seed
	dead    int // rows replaced or deleted, still in rows
	loads   int // whole reloads (tests)
	// last is the last search's matches (row positions, newest first):
	// the console counts and then lists the same search.
	last struct {
		ok     bool
		q      string
		active bool
		hits   []int32
	}

	warm    bool          // catch up in the background (WarmSearch)
	kick    chan struct{} // capacity 1, made by Open: a catch-up is wanted
	stop    chan struct{}
	stopped chan struct{}
	ready   chan struct{} // closed once the warm index first loaded
}

// searchRow is one change, as offsets into the arena (one allocation for
// the whole index instead of three strings per change), and the trigram
// signature of its search_text.
type searchRow struct {
	sig                    trigrams
	at, idEnd, updEnd, end int32 // sys_id = arena[at:idEnd], sys_updated_on = arena[idEnd:updEnd], search_text = arena[updEnd:end]
	active, dead           bool
}

// trigrams is a 128-bit signature of a text: one bit (by hash) per
// 3-byte sequence in it. A text holds every trigram of each of its
// substrings, so a row can contain the search only if its signature has
// every bit of the search's: a search of 3 bytes or more reads the text of
// only those rows (at 1M changes, ~1 row in 3,000 besides the matches for
// a number or a word that is rare) instead of every row's. A shorter
// search has no bits and reads every row.
type trigrams [2]uint64

func signature(text []byte) trigrams {
	var s trigrams
	for i := 0; i+2 < len(text); i++ {
		k := (uint32(text[i]) | uint32(text[i+1])<<8 | uint32(text[i+2])<<16) * 0x9e3779b1 >> 25
		s[k>>6] |= 1 << (k & 63)
	}
	return s
}

// has reports whether s holds every bit of q.
func (s *trigrams) has(q *trigrams) bool { return s[0]&q[0] == q[0] && s[1]&q[1] == q[1] }

// searchIDHash hashes a sys_id for searchIndex.pos (a variable so that a
// test can make ids collide).
var searchIDHash = maphash.Bytes

// searchLogKeep is how many changes_writes rows the store keeps.
const searchLogKeep = 512

// appendRow appends r to rows, doubling their capacity when full.
func (si *searchIndex) appendRow(r searchRow) {
	if len(si.rows) == cap(si.rows) {
		grown := make([]searchRow, len(si.rows), max(2*cap(si.rows), 1024))
		copy(grown, si.rows)
		si.rows = grown
	}
	si.rows = append(si.rows, r)
}

// lookup returns the live row of the change with this sys_id.
func (si *searchIndex) lookup(id []byte) (int32, bool) {
	if p, ok := si.pos[searchIDHash(si.seed, id)]; ok && bytes.Equal(si.id(&si.rows[p]), id) {
		return p, true
	}
	p, ok := si.posMore[string(id)]
	return p, ok
}

// place records p as the live row of sys_id id (which has none).
func (si *searchIndex) place(id []byte, p int32) {
	h := searchIDHash(si.seed, id)
	if q, ok := si.pos[h]; ok && !bytes.Equal(si.id(&si.rows[q]), id) {
		si.posMore[string(id)] = p // another id with the same hash
		return
	}
	si.pos[h] = p
}

// unplace forgets the live row of sys_id id.
func (si *searchIndex) unplace(id []byte) {
	h := searchIDHash(si.seed, id)
	if q, ok := si.pos[h]; ok && bytes.Equal(si.id(&si.rows[q]), id) {
		delete(si.pos, h)
		return
	}
	delete(si.posMore, string(id))
}

func (si *searchIndex) id(r *searchRow) []byte   { return si.arena[r.at:r.idEnd] }
func (si *searchIndex) upd(r *searchRow) []byte  { return si.arena[r.idEnd:r.updEnd] }
func (si *searchIndex) text(r *searchRow) []byte { return si.arena[r.updEnd:r.end] }

// add appends one change to the arena and returns its row.
func (si *searchIndex) add(id, upd, text []byte, active bool) searchRow {
	return si.addSigned(id, upd, text, active, signature(text))
}

func (si *searchIndex) addSigned(id, upd, text []byte, active bool, sig trigrams) searchRow {
	if n := len(id) + len(upd) + len(text); cap(si.arena)-len(si.arena) < n {
		// double: append's 1.25× growth copies a large arena ~5 times over
		grown := make([]byte, len(si.arena), max(2*cap(si.arena), len(si.arena)+n, 1<<16))
		copy(grown, si.arena)
		si.arena = grown
	}
	r := searchRow{sig: sig, at: int32(len(si.arena)), active: active}
	si.arena = append(si.arena, id...)
	r.idEnd = int32(len(si.arena))
	si.arena = append(si.arena, upd...)
	r.updEnd = int32(len(si.arena))
	si.arena = append(si.arena, text...)
	r.end = int32(len(si.arena))
	si.live += int(r.end - r.at)
	return r
}

// WarmSearch makes the console's search index follow the mirror in the
// background: it is built now (Open does not wait for it) and caught up
// after each write of this process, so that the first search after the
// console opens or the mirror moves does not load it. Processes that never
// search (the daemon, sync --once) do not call it and pay nothing. Close
// stops it.
func (db *DB) WarmSearch() {
	si := &db.search
	si.mu.Lock()
	if si.warm {
		si.mu.Unlock()
		return
	}
	si.warm = true
	si.stop = make(chan struct{})
	si.stopped = make(chan struct{})
	si.ready = make(chan struct{})
	kick, stop, stopped, ready := si.kick, si.stop, si.stopped, si.ready
	si.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(stopped)
		defer cancel()
		for {
			si.mu.Lock()
			err := db.catchUp(ctx)
			if err == nil && ready != nil {
				close(ready)
				ready = nil
			}
			si.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				db.log.Debug("search index catch-up failed; the next search retries", "err", err)
			}
			select {
			case <-kick:
			case <-stop:
				return
			}
		}
	}()
	go func() {
		<-stop
		cancel()
	}()
}

// SearchReady returns a channel closed once WarmSearch's first build is
// done (nil before WarmSearch).
func (db *DB) SearchReady() <-chan struct{} {
	db.search.mu.Lock()
	defer db.search.mu.Unlock()
	return db.search.ready
}

// searchChanged asks the warm index to catch up (after a commit that
// changed mirrored rows).
func (db *DB) searchChanged() {
	if si := &db.search; si.kick != nil { // nil only in a DB not made by Open
		select {
		case si.kick <- struct{}{}:
		default:
		}
	}
}

// stopSearch stops WarmSearch's goroutine, waits for it and drops the
// index (Close: ~200 MB at 1M changes, which a closed store would
// otherwise keep for as long as anything refers to it).
func (db *DB) stopSearch() {
	si := &db.search
	si.mu.Lock()
	stop, stopped := si.stop, si.stopped
	si.stop = nil
	si.mu.Unlock()
	if stop != nil {
		close(stop)
		<-stopped
	}
	si.mu.Lock()
	si.valid, si.arena, si.rows, si.pos, si.posMore, si.live, si.dead = false, nil, nil, nil, nil, 0, 0
	si.last.ok, si.last.hits = false, nil
	si.mu.Unlock()
}

// searchRows returns the index, caught up with the mirror. The caller
// holds si.mu.
func (db *DB) searchRows(ctx context.Context) (*searchIndex, error) {
	if err := db.catchUp(ctx); err != nil {
		return nil, err
	}
	return &db.search, nil
}

// catchUp brings the index to the mirror's generation: nothing to do when
// it is there, the changes written since otherwise, everything when it was
// never loaded or the log does not reach back to it. The caller holds
// si.mu.
func (db *DB) catchUp(ctx context.Context) error {
	si := &db.search
	var gen int64
	if err := db.sql.QueryRowContext(ctx, `SELECT COALESCE((SELECT n FROM changes_generation WHERE id = 1), 0)`).Scan(&gen); err != nil {
		return err
	}
	if si.valid && gen == si.generation {
		return nil
	}
	if !si.valid || gen < si.generation {
		return db.loadSearch(ctx, gen)
	}
	rows, err := db.sql.QueryContext(ctx, `SELECT gen, min_updated_on, deleted FROM changes_writes WHERE gen > ? ORDER BY gen`, si.generation)
	if err != nil {
		return err
	}
	var (
		next    = si.generation
		low     string
		lowSet  bool
		deleted = map[string]bool{}
	)
	for rows.Next() {
		var g int64
		var min sql.NullString
		var del string
		if err := rows.Scan(&g, &min, &del); err != nil {
			rows.Close()
			return err
		}
		if g != next+1 {
			next = -1 // a gap: the log was pruned past this index
			break
		}
		next = g
		if min.Valid && (!lowSet || min.String < low) {
			low, lowSet = min.String, true
		}
		for _, id := range strings.Split(del, "\n") {
			if id != "" {
				deleted[id] = true
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if next < gen {
		return db.loadSearch(ctx, gen)
	}
	var fresh []searchRow
	if lowSet {
		q, err := db.sql.QueryContext(ctx, `SELECT sys_id, sys_updated_on, active, search_text FROM changes INDEXED BY changes_find
			WHERE sys_updated_on >= ? ORDER BY sys_updated_on, sys_id`, low)
		if err != nil {
			return err
		}
		var id, upd, text sql.RawBytes
		var active bool
		for q.Next() {
			if err := q.Scan(&id, &upd, &active, &text); err != nil {
				q.Close()
				si.valid = false
				return err
			}
			fresh = append(fresh, si.add(id, upd, text, active))
		}
		q.Close()
		if err := q.Err(); err != nil {
			si.valid = false
			return err
		}
	}
	si.merge(fresh, deleted)
	si.generation = next
	return nil
}

// merge replaces the index's rows for the sys_ids in fresh (already in
// the arena, oldest first) and drops those in deleted.
func (si *searchIndex) merge(fresh []searchRow, deleted map[string]bool) {
	si.last.ok = false
	kill := func(id []byte) {
		if p, ok := si.lookup(id); ok {
			si.unplace(id)
			r := &si.rows[p]
			r.dead = true
			si.dead++
			si.live -= int(r.end - r.at)
		}
	}
	for id := range deleted {
		kill([]byte(id))
	}
	for i := range fresh {
		kill(si.id(&fresh[i]))
	}
	if len(fresh) > 0 && len(si.rows) > 0 && !si.before(&si.rows[len(si.rows)-1], &fresh[0]) {
		// older than the newest indexed change: merge in one pass
		out := make([]searchRow, 0, len(si.rows)-si.dead+len(fresh))
		j := 0
		for i := range si.rows {
			r := &si.rows[i]
			if r.dead {
				continue
			}
			for j < len(fresh) && si.before(&fresh[j], r) {
				out = append(out, fresh[j])
				j++
			}
			out = append(out, *r)
		}
		si.rows = append(out, fresh[j:]...)
		si.dead = 0
		si.reindex()
	} else {
		for i := range fresh {
			si.place(si.id(&fresh[i]), int32(len(si.rows)))
			si.appendRow(fresh[i])
		}
	}
	if si.dead > len(si.rows)/4 || len(si.arena) > 2*si.live+1<<20 {
		si.compact()
	}
}

// before reports whether a comes before b, oldest first.
func (si *searchIndex) before(a, b *searchRow) bool {
	if c := bytes.Compare(si.upd(a), si.upd(b)); c != 0 {
		return c < 0
	}
	return bytes.Compare(si.id(a), si.id(b)) < 0
}

// reindex rebuilds pos from rows.
func (si *searchIndex) reindex() {
	if si.pos == nil {
		si.seed = maphash.MakeSeed()
	}
	si.pos, si.posMore = make(map[uint64]int32, len(si.rows)), map[string]int32{}
	for i := range si.rows {
		if r := &si.rows[i]; !r.dead {
			si.place(si.id(r), int32(i))
		}
	}
}

// compact drops dead rows and copies the live ones into a new arena.
func (si *searchIndex) compact() {
	old, rows := si.arena, si.rows
	si.arena, si.live, si.rows = make([]byte, 0, si.live+si.live/4), 0, make([]searchRow, 0, len(rows)-si.dead)
	for i := range rows {
		if r := &rows[i]; !r.dead {
			si.rows = append(si.rows, si.addSigned(old[r.at:r.idEnd], old[r.idEnd:r.updEnd], old[r.updEnd:r.end], r.active, r.sig))
		}
	}
	si.dead = 0
	si.reindex()
}

// loadSearch reloads the whole index at generation gen (read before the
// rows).
func (db *DB) loadSearch(ctx context.Context, gen int64) error {
	si := &db.search
	si.valid = false
	rows, err := db.sql.QueryContext(ctx, `SELECT sys_id, sys_updated_on, active, search_text FROM changes INDEXED BY changes_find
		ORDER BY sys_updated_on, sys_id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	si.arena, si.rows, si.live, si.dead, si.last.ok = si.arena[:0], si.rows[:0], 0, 0, false
	var id, upd, text sql.RawBytes
	var active bool
	for rows.Next() {
		if err := rows.Scan(&id, &upd, &active, &text); err != nil {
			return err
		}
		si.appendRow(si.add(id, upd, text, active))
	}
	if err := rows.Err(); err != nil {
		return err
	}
	si.reindex()
	si.generation, si.valid = gen, true
	si.loads++
	return nil
}

// bumpGeneration marks the mirrored rows changed, inside tx, and logs what
// changed for the search indexes of every process: minUpdatedOn is the
// lowest sys_updated_on the transaction upserted (nil for none; "" is a
// change without a timestamp, which sorts first), deleted the sys_ids it
// deleted.
func (tx *Tx) bumpGeneration(ctx context.Context, minUpdatedOn *string, deleted []string) error {
	var n int64
	if err := tx.tx.QueryRowContext(ctx, `INSERT INTO changes_generation (id, n) VALUES (1, 1)
		ON CONFLICT (id) DO UPDATE SET n = changes_generation.n + 1 RETURNING n`).Scan(&n); err != nil {
		return fmt.Errorf("store: changes generation: %w", mapErr(err))
	}
	tx.noteGeneration(n)
	if _, err := tx.tx.ExecContext(ctx, `INSERT INTO changes_writes (gen, min_updated_on, deleted) VALUES (?, ?, ?)`,
		n, minUpdatedOn, strings.Join(deleted, "\n")); err != nil {
		return fmt.Errorf("store: changes writes: %w", mapErr(err))
	}
	if n%64 == 0 {
		if _, err := tx.tx.ExecContext(ctx, `DELETE FROM changes_writes WHERE gen <= ?`, n-searchLogKeep); err != nil {
			return fmt.Errorf("store: changes writes: %w", mapErr(err))
		}
	}
	if !tx.changesWritten {
		tx.changesWritten = true
		tx.afterCommit = append(tx.afterCommit, tx.db.searchChanged)
	}
	return nil
}

// searchable reports whether f is a search the index answers: a search
// without the separator and without a correlation prefix (the console's).
func searchable(f ops.ChangeFilter) bool {
	return f.Search != "" && f.CorrelationPrefix == "" && !strings.ContainsRune(f.Search, searchSep)
}

// searchWindow returns how many changes match f and the sys_ids of the
// window f.Offset, f.Limit (Limit ≤ 0: none) in list order.
func (db *DB) searchWindow(ctx context.Context, f ops.ChangeFilter) (int, []string, error) {
	db.search.mu.Lock()
	defer db.search.mu.Unlock()
	si, err := db.searchRows(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("store: search changes: %w", err)
	}
	q := asciiLower(f.Search)
	if !si.last.ok || si.last.q != q || si.last.active != f.ActiveOnly {
		qb := []byte(q)
		var hits []int32
		var err error
		if si.last.ok && strings.Contains(q, si.last.q) && (f.ActiveOnly || !si.last.active) {
			hits, err = si.narrow(ctx, qb, f.ActiveOnly)
		} else {
			hits, err = si.scan(ctx, qb, f.ActiveOnly)
		}
		if err != nil {
			si.last.ok = false
			return 0, nil, err
		}
		si.last.ok, si.last.q, si.last.active, si.last.hits = true, q, f.ActiveOnly, hits
	}
	hits := si.last.hits
	n := len(hits)
	var ids []string
	for k := f.Offset; k < n && len(ids) < f.Limit; k++ {
		ids = append(ids, string(si.id(&si.rows[hits[k]])))
	}
	return n, ids, nil
}

// scan returns the rows matching q (active ones only if activeOnly),
// newest first: the rows whose trigram signature holds q's, then their
// text. It stops when ctx is done (a newer search superseded this one).
// (Scanning in parts on two goroutines was tried at 1M changes: no
// faster on this loaded 2-core VM, and it takes the core the console's
// frames need.)
func (si *searchIndex) scan(ctx context.Context, q []byte, activeOnly bool) ([]int32, error) {
	hits := si.last.hits[:0]
	qs := signature(q)
	for i := len(si.rows) - 1; i >= 0; i-- {
		if i%8192 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r := &si.rows[i]
		if !r.sig.has(&qs) || r.dead || (activeOnly && !r.active) || !bytes.Contains(si.text(r), q) {
			continue
		}
		hits = append(hits, int32(i))
	}
	return hits, nil
}

// narrow is scan for a search that contains the last one (the operator
// typed on; the index has not changed since): only the last search's
// matches can match, so it filters those, in place.
func (si *searchIndex) narrow(ctx context.Context, q []byte, activeOnly bool) ([]int32, error) {
	hits := si.last.hits[:0]
	for k, p := range si.last.hits {
		if k%8192 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r := &si.rows[p]
		if (activeOnly && !r.active) || !bytes.Contains(si.text(r), q) {
			continue
		}
		hits = append(hits, p)
	}
	return hits, nil
}

// searchChanges is ListChanges for a searchable filter: the window's ids
// from the index, their rows from the database, in the index's order. A
// change deleted since the index was loaded is left out.
func (db *DB) searchChanges(ctx context.Context, f ops.ChangeFilter) ([]ops.Change, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = int(^uint(0) >> 1)
	}
	f.Limit = limit
	_, ids, err := db.searchWindow(ctx, f)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	byID, err := db.changesByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]ops.Change, 0, len(ids))
	for _, id := range ids {
		if c, ok := byID[id]; ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// changesByID reads full changes by sys_id, 500 a query.
func (db *DB) changesByID(ctx context.Context, sysIDs []string) (map[string]ops.Change, error) {
	out := make(map[string]ops.Change, len(sysIDs))
	for len(sysIDs) > 0 {
		n := min(500, len(sysIDs))
		part := sysIDs[:n]
		sysIDs = sysIDs[n:]
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		rows, err := db.sql.QueryContext(ctx, changeColumns+` WHERE sys_id IN (`+strings.TrimSuffix(strings.Repeat("?,", len(part)), ",")+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("store: list changes: %w", err)
		}
		for rows.Next() {
			c, err := scanChange(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			out[c.SysID] = c
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("store: list changes: %w", err)
		}
	}
	return out, nil
}
