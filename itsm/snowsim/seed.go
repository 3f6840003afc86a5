package snowsim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SeedUser describes a user that can sign in, for the start-up banner.
type SeedUser struct {
	UserName string   `json:"user_name"`
	Password string   `json:"password"`
	Name     string   `json:"name"`
	Roles    []string `json:"roles"`
	Groups   []string `json:"groups"`
}

// seedOrder loads referenced tables first so numbers and indexes exist.
var seedOrder = []string{
	"sys_user", "sys_user_group", "sys_user_grmember", "cmdb_ci", "cmn_schedule", "cmn_schedule_span",
	"std_change_record_producer", "std_change_producer_version", "change_request", "incident",
	"sysapproval_group", "sysapproval_approver", "sys_journal_field", "sys_audit_delete", "sys_attachment",
	"task_ci", "task_cmdb_ci_service",
}

// readSeedFile decodes a JSON array of records; values become strings.
func readSeedFile(fsys fs.FS, name string) ([]map[string]string, error) {
	data, err := fs.ReadFile(fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snowsim: seed %s: %w", name, err)
	}
	var raw []map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("snowsim: seed %s: %w", name, err)
	}
	out := make([]map[string]string, len(raw))
	for i, obj := range raw {
		out[i] = make(map[string]string, len(obj))
		for k, v := range obj {
			out[i][k] = stringify(v)
		}
	}
	return out, nil
}

// loadSeed builds a fresh instance from the seed files.
func (s *Sim) loadSeed() (*db, error) {
	d := newDB()
	now := fmtTime(s.now())
	for _, name := range seedOrder {
		rows, err := readSeedFile(s.seed, name+".json")
		if err != nil {
			return nil, err
		}
		t := d.tables[name]
		for _, vals := range rows {
			r := t.newRecord()
			for i, f := range t.sch.fields {
				r.vals[i] = f.def
			}
			for k, v := range vals {
				f := t.sch.field(k)
				if f == nil {
					return nil, fmt.Errorf("snowsim: seed %s.json: unknown field %q", name, k)
				}
				if f.kind == kDateTime {
					v = normalizeDateTime(v)
				}
				t.set(r, k, v)
			}
			if id := t.get(r, "sys_id"); id == "" {
				t.set(r, "sys_id", newSysID())
			} else if t.byID[id] != nil {
				return nil, fmt.Errorf("snowsim: seed %s.json: duplicate sys_id %s", name, id)
			}
			for _, k := range []string{"sys_created_on", "sys_updated_on"} {
				if t.get(r, k) == "" {
					t.set(r, k, now)
				}
			}
			for _, k := range []string{"sys_created_by", "sys_updated_by"} {
				if t.get(r, k) == "" {
					t.set(r, k, "system")
				}
			}
			if t.get(r, "sys_mod_count") == "" {
				t.set(r, "sys_mod_count", "0")
			}
			if t.sch.prefix != "" {
				if n := t.get(r, "number"); n == "" {
					t.set(r, "number", d.nextNumber(t.sch.prefix))
				} else {
					d.noteNumber(t.sch.prefix, n)
				}
			}
			t.add(r)
			if name == "sys_journal_field" {
				eid := t.get(r, "element_id")
				d.journal[eid] = append(d.journal[eid], r)
			}
		}
	}
	clients, err := readSeedFile(s.seed, "oauth_entity.json")
	if err != nil {
		return nil, err
	}
	for _, c := range clients {
		d.clients[c["client_id"]] = c
	}
	return d, nil
}

// SeedUsers lists the users that can sign in, with their roles and groups.
func (s *Sim) SeedUsers() []SeedUser {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ut := s.d.tables["sys_user"]
	mt := s.d.tables["sys_user_grmember"]
	var out []SeedUser
	for _, r := range ut.rows {
		su := SeedUser{UserName: ut.get(r, "user_name"), Password: ut.get(r, "user_password"), Name: ut.get(r, "name")}
		if su.Password == "" || ut.get(r, "active") == "false" {
			continue
		}
		for _, role := range strings.Split(ut.get(r, "roles"), ",") {
			if role = strings.TrimSpace(role); role != "" {
				su.Roles = append(su.Roles, role)
			}
		}
		for _, m := range mt.rows {
			if mt.get(m, "user") == ut.get(r, "sys_id") {
				su.Groups = append(su.Groups, s.d.display("sys_user_group", mt.get(m, "group")))
			}
		}
		slices.Sort(su.Groups)
		out = append(out, su)
	}
	return out
}

// GenerateOptions shapes bulk-generated change requests.
type GenerateOptions struct {
	// Start is sys_updated_on of the first row (default 2026-01-01 00:00:00 UTC).
	Start time.Time
	// PerSecond rows share each sys_updated_on second (default 10), which
	// exercises keyset paging on (sys_updated_on, sys_id).
	PerSecond int
}

// GenerateChanges bulk-inserts n closed normal change requests with
// deterministic numbers and timestamps, for benchmarks and paging tests.
// No approvals, journals or persistence work is done per row. Rows are
// built in chunks (their values, sys_ids and texts each cut from one
// allocation per chunk), so that seeding a million rows takes seconds.
func (s *Sim) GenerateChanges(n int, opt GenerateOptions) error {
	if n < 0 {
		return fmt.Errorf("snowsim: generate %d changes: negative count", n)
	}
	if opt.Start.IsZero() {
		opt.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if opt.PerSecond <= 0 {
		opt.PerSecond = 10
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.d.tables["change_request"]
	group := s.d.groupByName("Platform Ops")
	ct := s.d.tables["cmdb_ci"]
	cis := make([]string, len(ct.rows))
	for i, r := range ct.rows {
		cis[i] = ct.get(r, "sys_id")
	}
	daytwo := s.d.userByName("daytwo")
	opener := ""
	if daytwo != nil {
		opener = s.d.tables["sys_user"].get(daytwo, "sys_id")
	}
	nf := len(t.sch.fields)
	defaults := make([]string, nf)
	for j, f := range t.sch.fields {
		defaults[j] = f.def
	}
	col := func(name string) int {
		i, ok := t.sch.idx[name]
		if !ok {
			panic("snowsim: change_request has no field " + name)
		}
		return i
	}
	// The values every generated row shares, laid over the defaults once.
	for name, v := range map[string]string{
		"assignment_group": group, "opened_by": opener, "requested_by": opener,
		"sys_created_by": "daytwo", "sys_updated_by": "daytwo", "sys_mod_count": "3", "risk": "4", "priority": "4",
	} {
		defaults[col(name)] = v
	}
	fSysID, fNumber, fDesc, fState, fCorr := col("sys_id"), col("number"), col("short_description"), col("state"), col("correlation_id")
	fCreated, fUpdated, fOpened, fCI, fActive, fApproval := col("sys_created_on"), col("sys_updated_on"), col("opened_at"), col("cmdb_ci"), col("active"), col("approval")

	t.rows = slices.Grow(t.rows, n)
	byID := make(map[string]*record, len(t.byID)+n)
	maps.Copy(byID, t.byID)
	t.byID = byID
	states := []string{stClosed, stClosed, stClosed, stCanceled, stNew, stScheduled, stImplement, stReview}
	const chunk = 4096
	var recs []record
	var vals []string
	var ids, text string
	var offs []int
	ts, tsSec := "", -1
	for i := range n {
		k := i % chunk
		if k == 0 {
			m := min(chunk, n-i)
			recs = make([]record, m)
			vals = make([]string, m*nf)
			raw := make([]byte, 16*m)
			_, _ = rand.Read(raw)
			ids = hex.EncodeToString(raw)
			// number, short_description and correlation_id of the chunk's
			// rows, end to end in one string.
			var b []byte
			offs = offs[:0]
			for x := i; x < i+m; x++ {
				s.d.counters["CHG"]++
				b = append(b, "CHG"...)
				var scratch [20]byte
				num := strconv.AppendInt(scratch[:0], int64(s.d.counters["CHG"]), 10)
				for range 7 - len(num) {
					b = append(b, '0')
				}
				b = append(b, num...)
				offs = append(offs, len(b))
				b = strconv.AppendInt(append(b, "Generated rollout "...), int64(x), 10)
				offs = append(offs, len(b))
				b = strconv.AppendInt(append(b, "gen-"...), int64(x), 10)
				offs = append(offs, len(b))
			}
			text = string(b)
		}
		if sec := i / opt.PerSecond; sec != tsSec {
			ts, tsSec = fmtTime(opt.Start.Add(time.Duration(sec)*time.Second)), sec
		}
		r := &recs[k]
		r.vals = vals[k*nf : (k+1)*nf : (k+1)*nf]
		copy(r.vals, defaults)
		from := 0
		if k > 0 {
			from = offs[3*k-1]
		}
		r.vals[fSysID] = ids[32*k : 32*(k+1)]
		r.vals[fNumber] = text[from:offs[3*k]]
		r.vals[fDesc] = text[offs[3*k]:offs[3*k+1]]
		r.vals[fCorr] = text[offs[3*k+1]:offs[3*k+2]]
		st := states[i%len(states)]
		r.vals[fState] = st
		r.vals[fCreated], r.vals[fUpdated], r.vals[fOpened] = ts, ts, ts
		if len(cis) > 0 {
			r.vals[fCI] = cis[i%len(cis)]
		}
		if st == stClosed || st == stCanceled {
			r.vals[fActive] = "false"
			r.vals[fApproval] = "approved"
		}
		t.add(r)
	}
	s.markDirty()
	return nil
}
