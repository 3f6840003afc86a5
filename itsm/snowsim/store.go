package snowsim

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// timeLayout is ServiceNow's value-mode date-time format (always UTC).
const timeLayout = "2006-01-02 15:04:05"

// record is one row. Values are stored positionally, in the order of the
// table's schema, which keeps 100k-row tables compact and fast to scan.
type record struct {
	vals []string
	seq  uint64 // insertion order in its table (ascending in table.rows); 0 when not in one
}

// table holds the rows of one table in insertion order plus a sys_id index.
type table struct {
	sch   *schema
	rows  []*record
	byID  map[string]*record
	seq   uint64       // the last insertion number given
	index orderIndexes // sorted orders kept in step with writes; see index.go
}

func (t *table) get(r *record, name string) string {
	i, ok := t.sch.idx[name]
	if !ok {
		return ""
	}
	return r.vals[i]
}

func (t *table) set(r *record, name, v string) {
	i, ok := t.sch.idx[name]
	if !ok {
		return
	}
	if r.seq != 0 && r.vals[i] != v && t.index.covers(i) {
		t.index.write(r, i, v) // moves r in the indexes keyed on the field
		return
	}
	r.vals[i] = v
}

func (t *table) newRecord() *record {
	return &record{vals: make([]string, len(t.sch.fields))}
}

func (t *table) add(r *record) {
	t.seq++
	r.seq = t.seq
	t.rows = append(t.rows, r)
	t.byID[t.get(r, "sys_id")] = r
	t.index.added(r)
}

func (t *table) remove(r *record) {
	delete(t.byID, t.get(r, "sys_id"))
	if r.seq == 0 {
		return
	}
	if i, ok := slices.BinarySearchFunc(t.rows, r.seq, func(e *record, seq uint64) int { return cmp.Compare(e.seq, seq) }); ok {
		t.rows = slices.Delete(t.rows, i, i+1)
	}
	t.index.removed(r)
	r.seq = 0
}

// find returns the first row whose field equals v.
func (t *table) find(name, v string) *record {
	i, ok := t.sch.idx[name]
	if !ok {
		return nil
	}
	for _, r := range t.rows {
		if r.vals[i] == v {
			return r
		}
	}
	return nil
}

// toMap returns the row's raw values by field name, omitting passwords.
func (t *table) toMap(r *record, withPasswords bool) map[string]string {
	m := make(map[string]string, len(t.sch.fields))
	for i, f := range t.sch.fields {
		if f.kind == kPassword && !withPasswords {
			continue
		}
		m[f.name] = r.vals[i]
	}
	return m
}

// db is the whole in-memory instance. It is guarded by Sim.mu.
type db struct {
	schemas   map[string]*schema
	tables    map[string]*table
	counters  map[string]int       // next number per prefix
	journal   map[string][]*record // sys_journal_field rows by element_id
	files     map[string][]byte    // attachment content by sys_attachment sys_id
	tokens    map[string]*token    // OAuth access tokens
	refresh   map[string]*token    // OAuth refresh tokens
	current   map[string]*token    // current access token per client+user
	clients   map[string]map[string]string
	workers   map[string]*worker         // conflict checks by worker sys_id
	conflicts map[string]*conflictResult // last completed check by change sys_id
}

func newDB() *db {
	d := &db{
		schemas:   buildSchemas(),
		tables:    map[string]*table{},
		counters:  map[string]int{},
		journal:   map[string][]*record{},
		files:     map[string][]byte{},
		tokens:    map[string]*token{},
		refresh:   map[string]*token{},
		current:   map[string]*token{},
		clients:   map[string]map[string]string{},
		workers:   map[string]*worker{},
		conflicts: map[string]*conflictResult{},
	}
	for name, s := range d.schemas {
		d.tables[name] = &table{sch: s, byID: map[string]*record{}}
	}
	return d
}

// newSysID returns a random 32-hex sys_id.
func newSysID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func isSysID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// nextNumber returns the next number for a prefix, e.g. CHG0000001.
func (d *db) nextNumber(prefix string) string {
	d.counters[prefix]++
	return fmt.Sprintf("%s%07d", prefix, d.counters[prefix])
}

// noteNumber makes sure later numbers do not collide with an existing one.
func (d *db) noteNumber(prefix, number string) {
	if prefix == "" || !strings.HasPrefix(number, prefix) {
		return
	}
	var n int
	if _, err := fmt.Sscanf(number[len(prefix):], "%d", &n); err == nil && n > d.counters[prefix] {
		d.counters[prefix] = n
	}
}

// display returns the display value of a referenced record.
func (d *db) display(tableName, id string) string {
	t := d.tables[tableName]
	if t == nil || id == "" {
		return ""
	}
	r := t.byID[id]
	if r == nil {
		return ""
	}
	return t.get(r, t.sch.display)
}

// lookupRef resolves a reference value given as sys_id or display value.
func (d *db) lookupRef(tableName, v string) (string, bool) {
	t := d.tables[tableName]
	if t == nil {
		return "", false
	}
	if _, ok := t.byID[v]; ok {
		return v, true
	}
	keys := []string{t.sch.display}
	if tableName == "sys_user" {
		keys = append(keys, "user_name")
	}
	for _, k := range keys {
		if r := t.find(k, v); r != nil {
			return t.get(r, "sys_id"), true
		}
	}
	return "", false
}

// userByName returns the sys_user row with that user_name.
func (d *db) userByName(name string) *record {
	return d.tables["sys_user"].find("user_name", name)
}

// groupMembers returns the sys_ids of the users in a group.
func (d *db) groupMembers(groupID string) []string {
	t := d.tables["sys_user_grmember"]
	var out []string
	for _, r := range t.rows {
		if t.get(r, "group") == groupID {
			out = append(out, t.get(r, "user"))
		}
	}
	return out
}

func (d *db) groupByName(name string) string {
	t := d.tables["sys_user_group"]
	if r := t.find("name", name); r != nil {
		return t.get(r, "sys_id")
	}
	return ""
}

func fmtTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// normalizeDateTime turns common date-time spellings into the stored UTC form.
// Unparseable input is stored empty, as the platform does.
func normalizeDateTime(v string) string {
	if v == "" {
		return ""
	}
	for _, layout := range []string{timeLayout, time.RFC3339Nano, "2006-01-02T15:04:05", "20060102T150405Z", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return fmtTime(t)
		}
	}
	return ""
}

func equalFold(a, b string) bool { return strings.EqualFold(a, b) }
