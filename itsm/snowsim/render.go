package snowsim

import (
	"bytes"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// displayMode is the sysparm_display_value setting.
type displayMode int

const (
	dvFalse displayMode = iota
	dvTrue
	dvAll
)

// renderOpts controls how Table API records are written.
type renderOpts struct {
	mode        displayMode
	excludeLink bool
	fields      []string // nil = all fields
	baseURL     string   // scheme://host, for reference links
	loc         *time.Location
	// paths are fields resolved against pathsOf, once per answer rather
	// than once per row.
	paths   []fieldPath
	pathsOf *table
}

// fieldPath is a sysparm_fields entry resolved: the references it walks
// and the field it ends on.
type fieldPath struct {
	name string
	hops []hop
	ft   *table // the table of the final field
	f    *field
	fi   int // the final field's position in ft
}

type hop struct {
	idx  int    // the reference field in the current row
	next *table // the table it points into
}

// resolveFields resolves sysparm_fields against t; entries that name no
// readable field (or walk through a field that is no reference) are left
// out, as walk leaves them out.
func (d *db) resolveFields(t *table, names []string) []fieldPath {
	out := make([]fieldPath, 0, len(names))
	for _, name := range names {
		p := fieldPath{name: name}
		cur := t
		parts := strings.Split(name, ".")
		ok := true
		for n, part := range parts {
			f := cur.sch.field(part)
			if f == nil || f.kind == kPassword {
				ok = false
				break
			}
			if n == len(parts)-1 {
				p.ft, p.f, p.fi = cur, f, cur.sch.idx[part]
				break
			}
			next := d.tables[f.ref]
			if f.kind != kRef || next == nil {
				ok = false
				break
			}
			p.hops = append(p.hops, hop{idx: cur.sch.idx[part], next: next})
			cur = next
		}
		if ok {
			out = append(out, p)
		}
	}
	return out
}

// jsonString appends s as a JSON string literal.
func jsonString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b.WriteString(s[start:i])
			switch c {
			case '"':
				b.WriteString(`\"`)
			case '\\':
				b.WriteString(`\\`)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			default:
				b.WriteString(`\u00`)
				b.WriteByte("0123456789abcdef"[c>>4])
				b.WriteByte("0123456789abcdef"[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString(s[start:i])
			b.WriteString(`\ufffd`)
			i += size
			start = i
			continue
		}
		i += size
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}

// obj writes one JSON object with keys in insertion order.
type obj struct {
	b     *bytes.Buffer
	first bool
}

func openObj(b *bytes.Buffer) *obj { b.WriteByte('{'); return &obj{b: b, first: true} }

func (o *obj) key(k string) {
	if !o.first {
		o.b.WriteByte(',')
	}
	o.first = false
	jsonString(o.b, k)
	o.b.WriteByte(':')
}

func (o *obj) str(k, v string) { o.key(k); jsonString(o.b, v) }
func (o *obj) close()          { o.b.WriteByte('}') }

// displayValue renders one stored value as the caller sees it in display mode.
func (s *Sim) displayValue(d *db, t *table, r *record, f *field, v string, loc *time.Location) string {
	switch f.kind {
	case kChoice:
		return f.label(v)
	case kRef:
		return d.display(f.ref, v)
	case kDateTime:
		if v == "" || loc == nil || loc == time.UTC {
			return v
		}
		tm, err := time.ParseInLocation(timeLayout, v, time.UTC)
		if err != nil {
			return v
		}
		return tm.In(loc).Format(timeLayout)
	case kJournal:
		return s.journalHistory(d, t, r, f.name)
	case kPassword:
		return ""
	}
	return v
}

// journalHistory renders journal entries newest first, as display mode does.
func (s *Sim) journalHistory(d *db, t *table, r *record, element string) string {
	id := t.get(r, "sys_id")
	entries := d.journal[id]
	if len(entries) == 0 {
		return ""
	}
	jt := d.tables["sys_journal_field"]
	users := d.tables["sys_user"]
	var b strings.Builder
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		el := jt.get(e, "element")
		if element != "comments_and_work_notes" && el != element {
			continue
		}
		label := "Work notes"
		if el == "comments" {
			label = "Additional comments"
		}
		who := jt.get(e, "sys_created_by")
		if u := users.find("user_name", who); u != nil {
			who = users.get(u, "name")
		}
		b.WriteString(jt.get(e, "sys_created_on") + " - " + who + " (" + label + ")\n" + jt.get(e, "value") + "\n\n")
	}
	return b.String()
}

// writeTableRecord writes one record in Table API form.
func (s *Sim) writeTableRecord(b *bytes.Buffer, d *db, t *table, r *record, o *renderOpts) {
	ob := openObj(b)
	if o.fields == nil {
		for i, f := range t.sch.fields {
			if f.kind == kPassword {
				continue
			}
			s.writeTableField(ob, d, t, r, f, f.name, r.vals[i], o)
		}
	} else {
		if o.pathsOf != t {
			o.paths, o.pathsOf = d.resolveFields(t, o.fields), t
		}
		for i := range o.paths {
			p := &o.paths[i]
			fr := r
			for _, h := range p.hops {
				if fr == nil {
					break
				}
				fr = h.next.byID[fr.vals[h.idx]]
			}
			v := ""
			if fr != nil {
				v = fr.vals[p.fi]
			}
			s.writeTableField(ob, d, p.ft, fr, p.f, p.name, v, o)
		}
	}
	ob.close()
}

func (s *Sim) writeTableField(ob *obj, d *db, t *table, r *record, f *field, key, v string, o *renderOpts) {
	if f.kind == kJournal && o.mode == dvFalse {
		ob.str(key, "")
		return
	}
	var dv string
	if o.mode != dvFalse && r != nil {
		dv = s.displayValue(d, t, r, f, v, o.loc)
	}
	link := ""
	if f.kind == kRef && v != "" && !o.excludeLink {
		link = o.baseURL + "/api/now/table/" + f.ref + "/" + v
	}
	switch o.mode {
	case dvFalse:
		if link != "" {
			ob.key(key)
			in := openObj(ob.b)
			in.str("link", link)
			in.str("value", v)
			in.close()
			return
		}
		ob.str(key, v)
	case dvTrue:
		if link != "" {
			ob.key(key)
			in := openObj(ob.b)
			in.str("display_value", dv)
			in.str("link", link)
			in.close()
			return
		}
		ob.str(key, dv)
	case dvAll:
		ob.key(key)
		in := openObj(ob.b)
		in.str("display_value", dv)
		if link != "" {
			in.str("link", link)
		}
		if f.kind == kJournal {
			v = ""
		}
		in.str("value", v)
		in.close()
	}
}

// writeChangeRecord writes a record in Change Management API form: every
// field is {value, display_value}, date-times add display_value_internal.
func (s *Sim) writeChangeRecord(b *bytes.Buffer, d *db, t *table, r *record, typed bool, loc *time.Location, ignored []string) {
	ob := openObj(b)
	if ignored != nil {
		ob.key("__meta")
		m := openObj(b)
		m.key("ignoredFields")
		b.WriteByte('[')
		for i, f := range ignored {
			if i > 0 {
				b.WriteByte(',')
			}
			jsonString(b, f)
		}
		b.WriteByte(']')
		m.close()
	}
	for i, f := range t.sch.fields {
		if f.kind == kPassword {
			continue
		}
		v := r.vals[i]
		dv := s.displayValue(d, t, r, f, v, loc)
		if f.kind == kJournal {
			v = ""
		}
		ob.key(f.name)
		in := openObj(b)
		in.key("value")
		writeTyped(b, f, v, typed)
		in.str("display_value", dv)
		if f.kind == kDateTime {
			in.str("display_value_internal", dv)
		}
		in.close()
	}
	ob.close()
}

// writeTyped writes a Change API value: a string, or with typed values a JSON
// bool / number as in the documented samples.
func writeTyped(b *bytes.Buffer, f *field, v string, typed bool) {
	if typed {
		switch {
		case f.kind == kBool && (v == "true" || v == "false"):
			b.WriteString(v)
			return
		case isNumeric(f) && v != "":
			if n, err := strconv.ParseFloat(v, 64); err == nil {
				b.WriteString(strconv.FormatFloat(n, 'f', 1, 64))
				return
			}
		}
	}
	jsonString(b, v)
}
