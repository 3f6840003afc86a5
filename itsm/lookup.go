package itsm

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"
)

// lookupTTL bounds how long a name → sys_id resolution is reused. Names of
// groups, CIs and templates change rarely; a stale entry costs at most one
// failed write, after which the entry is dropped.
const lookupTTL = 15 * time.Minute

type cacheEntry struct {
	value any
	at    time.Time
}

type lookupCache struct {
	mu      sync.Mutex
	entries map[string]cacheEntry
}

func (c *Client) cached(key string) (any, bool) {
	c.cache.mu.Lock()
	defer c.cache.mu.Unlock()
	e, ok := c.cache.entries[key]
	if !ok || c.now().Sub(e.at) > lookupTTL {
		return nil, false
	}
	return e.value, true
}

func (c *Client) store(key string, v any) {
	c.cache.mu.Lock()
	defer c.cache.mu.Unlock()
	c.cache.entries[key] = cacheEntry{value: v, at: c.now()}
}

// CI is a configuration item (cmdb_ci).
type CI struct {
	SysID             string
	Name              string
	Class             string // sys_class_name
	OperationalStatus int
	InstallStatus     int
	Environment       string
	Fields            Record
}

// Group is an assignment group (sys_user_group).
type Group struct {
	SysID   string
	Name    string
	Manager string
	Active  bool
	Fields  Record
}

// User is a sys_user.
type User struct {
	SysID    string
	UserName string
	Name     string
	Email    string
	Active   bool
	Fields   Record
}

// Template is a standard change template. Table says where it was found:
// "std_change_record_producer" (Change Management API; SysID goes into
// POST /change/standard/{id}) or "std_change_producer_version" (Table API
// fallback; SysID goes into change_request.std_change_producer_version).
type Template struct {
	SysID  string
	Name   string
	Active bool
	Table  string
	Fields Record
}

// LookupCI resolves a CI by name (or sys_id). Retired CIs are ignored when
// an active one has the same name; several remaining matches are
// ErrAmbiguous.
func (c *Client) LookupCI(ctx context.Context, name string) (*CI, error) {
	key := "ci:" + strings.ToLower(name)
	if v, ok := c.cached(key); ok {
		ci := v.(CI)
		return &ci, nil
	}
	fields := []string{"sys_id", "name", "sys_class_name", "operational_status", "install_status", "environment"}
	rec, err := c.lookupOne(ctx, "cmdb_ci", "name", name, fields, func(recs []Record) []Record {
		var live []Record
		for _, r := range recs {
			if s, _ := r.Int("install_status"); s != 7 { // 7 = Retired
				live = append(live, r)
			}
		}
		if len(live) > 0 {
			return live
		}
		return recs
	})
	if err != nil {
		return nil, fmt.Errorf("itsm: lookup CI %q: %w", name, err)
	}
	ci := CI{
		SysID: rec.Get("sys_id"), Name: rec.Get("name"), Class: rec.Get("sys_class_name"),
		Environment: rec.Get("environment"), Fields: rec,
	}
	ci.OperationalStatus, _ = rec.Int("operational_status")
	ci.InstallStatus, _ = rec.Int("install_status")
	c.store(key, ci)
	return &ci, nil
}

// LookupGroup resolves an assignment group by name (or sys_id).
func (c *Client) LookupGroup(ctx context.Context, name string) (*Group, error) {
	key := "group:" + strings.ToLower(name)
	if v, ok := c.cached(key); ok {
		g := v.(Group)
		return &g, nil
	}
	rec, err := c.lookupOne(ctx, "sys_user_group", "name", name, []string{"sys_id", "name", "manager", "active"}, nil)
	if err != nil {
		return nil, fmt.Errorf("itsm: lookup group %q: %w", name, err)
	}
	g := Group{
		SysID: rec.Get("sys_id"), Name: rec.Get("name"), Manager: rec.Get("manager"),
		Active: rec.Bool("active"), Fields: rec,
	}
	c.store(key, g)
	return &g, nil
}

// LookupUser resolves a user by user_name, email or full name (in that order
// of preference), or by sys_id.
func (c *Client) LookupUser(ctx context.Context, name string) (*User, error) {
	key := "user:" + strings.ToLower(name)
	if v, ok := c.cached(key); ok {
		u := v.(User)
		return &u, nil
	}
	fields := []string{"sys_id", "user_name", "name", "email", "active"}
	var rec Record
	var err error
	if isSysID(name) {
		rec, _, err = c.getOne(ctx, "sys_user", name, fields)
	} else {
		rec, err = c.lookupUserByName(ctx, name, fields)
	}
	if err != nil {
		return nil, fmt.Errorf("itsm: lookup user %q: %w", name, err)
	}
	u := User{
		SysID: rec.Get("sys_id"), UserName: rec.Get("user_name"), Name: rec.Get("name"),
		Email: rec.Get("email"), Active: rec.Bool("active"), Fields: rec,
	}
	c.store(key, u)
	return &u, nil
}

func (c *Client) lookupUserByName(ctx context.Context, name string, fields []string) (Record, error) {
	v, err := queryValue("user", name)
	if err != nil {
		return nil, err
	}
	q := c.listParams("user_name="+v+"^ORemail="+v+"^ORname="+v+"^ORDERBYsys_created_on", fields, 10)
	recs, _, err := c.listTable(ctx, "sys_user", q)
	if err != nil {
		return nil, err
	}
	// Prefer the most specific key; verify client-side because ServiceNow
	// silently drops query terms it cannot apply (trap 6).
	for _, field := range []string{"user_name", "email", "name"} {
		var hits []Record
		for _, r := range recs {
			if strings.EqualFold(r.Get(field), name) {
				hits = append(hits, r)
			}
		}
		switch {
		case len(hits) == 1:
			return hits[0], nil
		case len(hits) > 1:
			return nil, fmt.Errorf("%w: %d users with %s %q", ErrAmbiguous, len(hits), field, name)
		}
	}
	return nil, ErrNotFound
}

// LookupTemplate resolves an active standard change template by name. It
// uses the Change Management API and falls back to the Table API
// (std_change_producer_version, newest version first) when the plugin is
// absent.
func (c *Client) LookupTemplate(ctx context.Context, name string) (*Template, error) {
	key := "template:" + strings.ToLower(name)
	if v, ok := c.cached(key); ok {
		t := v.(Template)
		return &t, nil
	}
	v, err := queryValue("template", name)
	if err != nil {
		return nil, err
	}
	var tpl *Template
	if c.changeAPI.Load() != changeAPIAbsent {
		q := url.Values{"sysparm_query": {"active=true^name=" + v}, "sysparm_limit": {"50"}}
		recs, _, err := c.getRecords(ctx, "/api/sn_chg_rest/change/standard/template", q)
		switch {
		case err == nil:
			c.changeAPI.Store(changeAPIPresent)
			var hits []Record
			for _, r := range recs {
				if strings.EqualFold(r.Get("name"), name) {
					hits = append(hits, r)
				}
			}
			if len(hits) > 1 {
				return nil, fmt.Errorf("itsm: lookup template %q: %w: %d active templates", name, ErrAmbiguous, len(hits))
			}
			if len(hits) == 0 {
				return nil, fmt.Errorf("itsm: lookup template %q: %w", name, ErrNotFound)
			}
			tpl = &Template{
				SysID: hits[0].Get("sys_id"), Name: hits[0].Get("name"), Active: true,
				Table: "std_change_record_producer", Fields: hits[0],
			}
		case c.changeAPIMissing(err, false):
		default:
			return nil, fmt.Errorf("itsm: lookup template %q: %w", name, err)
		}
	}
	if tpl == nil {
		rec, err := c.lookupTemplateVersion(ctx, name, v)
		if err != nil {
			return nil, fmt.Errorf("itsm: lookup template %q: %w", name, err)
		}
		tpl = &Template{
			SysID: rec.Get("sys_id"), Name: name, Active: true,
			Table: "std_change_producer_version", Fields: rec,
		}
	}
	c.store(key, *tpl)
	return tpl, nil
}

// lookupTemplateVersion finds the newest std_change_producer_version of a
// template, by the version's own name or by its producer's name.
func (c *Client) lookupTemplateVersion(ctx context.Context, name, v string) (Record, error) {
	fields := []string{"sys_id", "name", "std_change_producer", "std_change_producer.name", "sys_created_on"}
	for _, cond := range []struct{ query, field string }{
		{"name=" + v, "name"},
		{"std_change_producer.name=" + v, "std_change_producer.name"},
	} {
		q := c.listParams(cond.query+"^ORDERBYDESCsys_created_on", fields, 20)
		recs, _, err := c.listTable(ctx, "std_change_producer_version", q)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if strings.EqualFold(r.Get(cond.field), name) {
				return r, nil
			}
		}
	}
	return nil, ErrNotFound
}

// lookupOne resolves name in table.field, verifying matches client-side
// (ServiceNow drops an unusable query term instead of failing, which would
// return unrelated rows). narrow may reduce several matches to one.
func (c *Client) lookupOne(ctx context.Context, table, field, name string, fields []string, narrow func([]Record) []Record) (Record, error) {
	if isSysID(name) {
		rec, _, err := c.getOne(ctx, table, name, fields)
		return rec, err
	}
	v, err := queryValue(field, name)
	if err != nil {
		return nil, err
	}
	q := c.listParams(field+"="+v+"^ORDERBYsys_created_on", fields, 10)
	recs, _, err := c.listTable(ctx, table, q)
	if err != nil {
		return nil, err
	}
	var hits []Record
	for _, r := range recs {
		if strings.EqualFold(r.Get(field), name) {
			hits = append(hits, r)
		}
	}
	if len(hits) > 1 && narrow != nil {
		hits = narrow(hits)
	}
	switch len(hits) {
	case 0:
		return nil, ErrNotFound
	case 1:
		return hits[0], nil
	}
	return nil, fmt.Errorf("%w: %d records in %s with %s %q; use the sys_id", ErrAmbiguous, len(hits), table, field, name)
}

// resolveRef turns "name or sys_id" into a sys_id.
func (c *Client) resolveRef(ctx context.Context, kind, nameOrID string) (string, error) {
	if nameOrID == "" || isSysID(nameOrID) {
		return nameOrID, nil
	}
	switch kind {
	case "group":
		g, err := c.LookupGroup(ctx, nameOrID)
		if err != nil {
			return "", err
		}
		return g.SysID, nil
	case "ci":
		ci, err := c.LookupCI(ctx, nameOrID)
		if err != nil {
			return "", err
		}
		return ci.SysID, nil
	case "user":
		u, err := c.LookupUser(ctx, nameOrID)
		if err != nil {
			return "", err
		}
		return u.SysID, nil
	}
	return "", errors.New("itsm: unknown reference kind " + kind)
}
