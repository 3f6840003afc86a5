package snowsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
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
// No approvals, journals or persistence work is done per row.
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
	cis := s.d.tables["cmdb_ci"].rows
	daytwo := s.d.userByName("daytwo")
	opener := ""
	if daytwo != nil {
		opener = s.d.tables["sys_user"].get(daytwo, "sys_id")
	}
	t.rows = slices.Grow(t.rows, n)
	states := []string{stClosed, stClosed, stClosed, stCanceled, stNew, stScheduled, stImplement, stReview}
	for i := range n {
		r := t.newRecord()
		for j, f := range t.sch.fields {
			r.vals[j] = f.def
		}
		ts := fmtTime(opt.Start.Add(time.Duration(i/opt.PerSecond) * time.Second))
		st := states[i%len(states)]
		vals := map[string]string{
			"sys_id": newSysID(), "number": s.d.nextNumber("CHG"), "short_description": fmt.Sprintf("Generated rollout %d", i),
			"state": st, "assignment_group": group, "opened_by": opener, "requested_by": opener,
			"sys_created_on": ts, "sys_updated_on": ts, "opened_at": ts, "sys_created_by": "daytwo", "sys_updated_by": "daytwo",
			"sys_mod_count": "3", "risk": "4", "priority": "4", "correlation_id": fmt.Sprintf("gen-%d", i),
		}
		if len(cis) > 0 {
			vals["cmdb_ci"] = s.d.tables["cmdb_ci"].get(cis[i%len(cis)], "sys_id")
		}
		if st == stClosed || st == stCanceled {
			vals["active"] = "false"
			vals["approval"] = "approved"
		}
		for k, v := range vals {
			t.set(r, k, v)
		}
		t.add(r)
	}
	s.markDirty()
	return nil
}
