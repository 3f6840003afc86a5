package itsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// TimeLayout is ServiceNow's value-mode date-time format. Values are UTC and
// carry no zone marker.
const TimeLayout = "2006-01-02 15:04:05"

// ParseTime parses a ServiceNow date-time value as UTC. The empty string is
// the zero time. It also accepts a bare date (YYYY-MM-DD) and RFC 3339, which
// some fakes and scripted APIs send.
func ParseTime(s string) (time.Time, error) {
	if t, ok := parseTimeLayout(s); ok {
		return t, nil
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{TimeLayout, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("itsm: parse time %q: want %q (UTC)", s, TimeLayout)
}

// parseTimeLayout parses exactly TimeLayout (every digit in place, no
// space around) without time.Parse's layout walk: a page of 1,000 changes
// or 2,000 approvals carries thousands of these. Anything else, or a field
// out of range, is left to time.Parse (ok false), which also makes the
// error; TestParseTimeLayoutSameAsParse compares the two.
func parseTimeLayout(s string) (time.Time, bool) {
	if len(s) != len(TimeLayout) || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	var f [6]int
	for k, r := range [6][2]int{{0, 4}, {5, 7}, {8, 10}, {11, 13}, {14, 16}, {17, 19}} {
		for i := r[0]; i < r[1]; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return time.Time{}, false
			}
			f[k] = f[k]*10 + int(c-'0')
		}
	}
	y, mo, d, h, mi, sec := f[0], f[1], f[2], f[3], f[4], f[5]
	if mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC)
	if t.Day() != d { // 31 April and the like: time.Parse refuses them
		return time.Time{}, false
	}
	return t, true
}

// FormatTime formats t as a ServiceNow value-mode date-time in UTC. The zero
// time formats as the empty string (an unset field).
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(TimeLayout)
}

// Value is one field of a ServiceNow record, decoded leniently. It accepts a
// JSON string, number, boolean or null, and an object with any of "value",
// "display_value", "display_value_internal" and "link" (Table API references,
// sysparm_display_value=all, Change Management API typed values such as
// {"value": 3.0} or {"value": true}).
type Value struct {
	// Value is the raw value as a string: numbers are rendered without a
	// trailing ".0" ("3.0" → "3"), booleans as "true"/"false", null as "".
	Value string
	// Display is the display value, when the instance sent one.
	Display string
	// Link is the REST link of a reference, when the instance sent one.
	Link string
	// Null is set when the JSON was null (or {"value": null}).
	Null bool
}

// UnmarshalJSON implements json.Unmarshaler. It never fails on a well-formed
// JSON value of any type; unexpected shapes (arrays, nested objects) keep
// their compact JSON text as Value.
func (v *Value) UnmarshalJSON(b []byte) error {
	*v = Value{}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(b, &obj); err != nil {
			return err
		}
		_, hasValue := obj["value"]
		_, hasDisplay := obj["display_value"]
		_, hasLink := obj["link"]
		if !hasValue && !hasDisplay && !hasLink {
			v.Value = compact(b)
			return nil
		}
		if raw, ok := obj["value"]; ok {
			s, null := scalar(raw)
			v.Value, v.Null = s, null
		} else {
			v.Null = true
		}
		if raw, ok := obj["display_value"]; ok {
			v.Display, _ = scalar(raw)
		}
		if raw, ok := obj["link"]; ok {
			v.Link, _ = scalar(raw)
		}
		// A display-only object (sysparm_display_value=true reference) has no
		// raw value; fall back to display so the field is not lost.
		if !hasValue && v.Display != "" {
			v.Value, v.Null = v.Display, false
		}
		return nil
	default:
		v.Value, v.Null = scalar(b)
		return nil
	}
}

// MarshalJSON renders the raw value as a JSON string (null when Null).
func (v Value) MarshalJSON() ([]byte, error) {
	if v.Null {
		return []byte("null"), nil
	}
	return json.Marshal(v.Value)
}

// String returns the raw value.
func (v Value) String() string { return v.Value }

// Int returns the value as an int. ok is false when the value is empty or not
// a number ("3", "3.0", "-5" and 3.0 are numbers).
func (v Value) Int() (n int, ok bool) {
	s := strings.TrimSpace(v.Value)
	if s == "" {
		return 0, false
	}
	if i, err := strconv.Atoi(s); err == nil {
		return i, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		return 0, false
	}
	return int(f), true
}

// Bool returns the value as a boolean: "true", "1" and "yes" are true.
func (v Value) Bool() bool {
	switch strings.ToLower(strings.TrimSpace(v.Value)) {
	case "true", "1", "yes":
		return true
	}
	return false
}

// Time parses the raw value as a UTC date-time (see ParseTime).
func (v Value) Time() (time.Time, error) { return ParseTime(v.Value) }

// scalar renders a JSON scalar as a string. Objects and arrays are kept as
// compact JSON text.
func scalar(b []byte) (s string, null bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "", true
	}
	switch b[0] {
	case 'n':
		return "", true
	case '"':
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return string(b), false
		}
		return str, false
	case 't', 'f':
		return string(b), false
	case '{', '[':
		// {"value": {"value": ...}} has been seen in scripted APIs: unwrap one
		// level of value objects, otherwise keep the JSON.
		if b[0] == '{' {
			var nested Value
			if err := nested.UnmarshalJSON(b); err == nil && !strings.HasPrefix(nested.Value, "{") {
				return nested.Value, nested.Null
			}
		}
		return compact(b), false
	default:
		return normalizeNumber(string(b)), false
	}
}

// normalizeNumber renders an integral JSON number without fraction or
// exponent, so 3.0 and 3 both become "3" like the Table API's "3".
func normalizeNumber(s string) string {
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return s
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

func compact(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return string(b)
	}
	return buf.String()
}

// Record is one ServiceNow record as received: field name → lenient value.
// Dot-walked fields keep their dotted names ("approver.name").
type Record map[string]Value

// Get returns the raw value of a field ("" when absent).
func (r Record) Get(field string) string { return r[field].Value }

// Int returns a field as an int; ok is false when absent or not numeric.
func (r Record) Int(field string) (int, bool) { return r[field].Int() }

// Bool returns a field as a boolean.
func (r Record) Bool(field string) bool { return r[field].Bool() }

// Time returns a field as a UTC time; malformed values yield the zero time.
func (r Record) Time(field string) time.Time {
	t, err := r[field].Time()
	if err != nil {
		return time.Time{}
	}
	return t
}

// Display returns a field's display value, falling back to the raw value.
func (r Record) Display(field string) string {
	if v := r[field]; v.Display != "" {
		return v.Display
	}
	return r[field].Value
}

// DecodeRecords decodes a ServiceNow success body {"result": ...} into
// records. result may be an object (single GET, Table API POST/PATCH, some
// Change API endpoints), a one-element or longer array (lists, Change API
// create and approval endpoints), or null/absent (no records). Each record
// also comes back as its raw JSON.
//
// A body is decoded in one pass (decodeRecordsFast): plain string values,
// nearly all of a Table API page, become substrings of their record's
// text; every other value goes through Value.UnmarshalJSON. Anything
// unusual (a syntax error, an escaped or non-ASCII key, deep nesting)
// falls back to encoding/json (decodeRecordsSlow), so the results and
// errors are those of encoding/json either way; FuzzDecodeRecordsSame
// compares the two.
func DecodeRecords(body []byte) ([]Record, []json.RawMessage, error) {
	if recs, raws, ok := decodeRecordsFast(body); ok {
		return recs, raws, nil
	}
	return decodeRecordsSlow(body)
}

// decodeRecordsSlow is DecodeRecords with encoding/json alone.
func decodeRecordsSlow(body []byte) ([]Record, []json.RawMessage, error) {
	var env struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, nil, fmt.Errorf("itsm: decode response: %w", err)
	}
	res := bytes.TrimSpace(env.Result)
	if len(res) == 0 || bytes.Equal(res, []byte("null")) {
		return nil, nil, nil
	}
	var raws []json.RawMessage
	switch res[0] {
	case '[':
		if err := json.Unmarshal(res, &raws); err != nil {
			return nil, nil, fmt.Errorf("itsm: decode result list: %w", err)
		}
	case '{':
		raws = []json.RawMessage{res}
	default:
		return nil, nil, fmt.Errorf("itsm: decode response: result is neither object nor array")
	}
	recs := make([]Record, 0, len(raws))
	out := raws[:0]
	for _, raw := range raws {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || raw[0] != '{' {
			// A list of non-objects is not a record list; skip the element
			// rather than failing the whole page.
			continue
		}
		var rec Record
		if err := json.Unmarshal(raw, &rec); err != nil {
			return nil, nil, fmt.Errorf("itsm: decode record: %w", err)
		}
		recs = append(recs, rec)
		out = append(out, raw)
	}
	return recs, out, nil
}

// maxFastDepth bounds the nesting the one-pass decoder follows; deeper
// bodies take encoding/json's path (and its depth limit).
const maxFastDepth = 200

// decodeRecordsFast is DecodeRecords in one pass over body. ok is false
// when body is not plainly valid for it; the caller then decodes with
// encoding/json, which also produces the error.
func decodeRecordsFast(body []byte) (recs []Record, raws []json.RawMessage, ok bool) {
	objs, ok := recordObjectsFast(body)
	if !ok {
		return nil, nil, false
	}
	if objs == nil {
		return nil, nil, true
	}
	recs, raws = make([]Record, 0, len(objs)), make([]json.RawMessage, 0, len(objs))
	// The records of a page carry the same fields: each map is sized for
	// its predecessor's (a map sized for 32 held a 14-field approval in
	// twice the memory it needs).
	hint := firstRecordFields
	for _, obj := range objs {
		rec, ok := decodeRecordFast(obj, hint)
		if !ok {
			return nil, nil, false
		}
		hint = len(rec)
		recs = append(recs, rec)
		raws = append(raws, obj)
	}
	return recs, raws, true
}

// recordObjectsFast validates body's envelope in one pass and returns its
// record objects, each a slice of body with no spare capacity (the raw
// JSON of its record): nil for no records (a null body or result), an
// empty non-nil slice for an empty list. ok is false when body is not
// plainly valid for the one-pass decoders (their caller falls back to
// encoding/json).
func recordObjectsFast(body []byte) (objs [][]byte, ok bool) {
	i := skipSpace(body, 0)
	if i >= len(body) {
		return nil, false
	}
	if body[i] == 'n' { // a null body: no records, as encoding/json leaves the envelope empty
		end, ok := skipValue(body, i, 0)
		if !ok || skipSpace(body, end) != len(body) {
			return nil, false
		}
		return nil, true
	}
	if body[i] != '{' {
		return nil, false
	}
	// The envelope: find the last "result" key (encoding/json matches the
	// name case-insensitively; the last duplicate wins).
	resStart, resEnd := -1, -1
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		i++
	} else {
		for {
			key, next, plain := scanKey(body, i)
			if !plain {
				return nil, false
			}
			vs := skipSpace(body, next)
			ve, ok := skipValue(body, vs, 1)
			if !ok {
				return nil, false
			}
			if len(key) == len("result") && bytes.EqualFold(key, []byte("result")) {
				resStart, resEnd = vs, ve
			}
			i = skipSpace(body, ve)
			if i >= len(body) {
				return nil, false
			}
			if body[i] == ',' {
				i = skipSpace(body, i+1)
				continue
			}
			if body[i] != '}' {
				return nil, false
			}
			i++
			break
		}
	}
	if skipSpace(body, i) != len(body) {
		return nil, false
	}
	if resStart < 0 || body[resStart] == 'n' {
		return nil, true
	}
	switch body[resStart] {
	case '{':
		return [][]byte{body[resStart:resEnd:resEnd]}, true
	case '[':
	default:
		return nil, false // the error ("neither object nor array") comes from the slow path
	}
	objs = [][]byte{}
	j := skipSpace(body, resStart+1)
	if body[j] == ']' {
		return objs, true
	}
	for {
		end, _ := skipValue(body, j, 2) // validated with the envelope
		if body[j] == '{' {
			// A list of non-objects is not a record list: other elements
			// are skipped, as the slow path skips them.
			objs = append(objs, body[j:end:end])
		}
		j = skipSpace(body, end)
		if body[j] == ']' {
			break
		}
		j = skipSpace(body, j+1) // ','
	}
	return objs, true
}

// firstRecordFields sizes the first record's map of a body (a change
// read asks for 29 fields).
const firstRecordFields = 32

// decodeRecordFast decodes one validated record object, into a map sized
// for fields. Plain strings
// (no escapes, valid UTF-8) are cut from one copy of the record's text.
func decodeRecordFast(obj []byte, fields int) (Record, bool) {
	rec := make(Record, fields)
	if !eachFieldFast(obj, func(name string, v Value) { rec[name] = v }) {
		return nil, false
	}
	return rec, true
}

// eachFieldFast calls fn with every field of one validated record object,
// in order (a later duplicate after an earlier one, as a map keeps the
// last). Plain strings (no escapes, valid UTF-8) are cut from one copy of
// the record's text, names too. It is false for an escaped or non-ASCII
// key or a value Value.UnmarshalJSON refuses.
func eachFieldFast(obj []byte, fn func(name string, v Value)) bool {
	text := string(obj)
	i := skipSpace(obj, 1)
	if obj[i] == '}' {
		return true
	}
	for {
		key, next, plain := scanKey(obj, i)
		if !plain {
			return false
		}
		name := text[i+1 : i+1+len(key)] // b[i] is the key's opening quote
		vs := skipSpace(obj, next)
		ve, _ := skipValue(obj, vs, 2)
		var v Value
		if obj[vs] == '"' && plainString(obj[vs+1:ve-1]) {
			v.Value = text[vs+1 : ve-1]
		} else if err := v.UnmarshalJSON(obj[vs:ve]); err != nil {
			return false
		}
		fn(name, v)
		i = skipSpace(obj, ve)
		if obj[i] == '}' {
			return true
		}
		i = skipSpace(obj, i+1) // ','
	}
}

// plainString reports a string body that decodes to itself: no escapes
// and valid UTF-8 (encoding/json replaces invalid bytes).
func plainString(b []byte) bool {
	ascii := true
	for _, c := range b {
		if c == '\\' {
			return false
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	return ascii || utf8.Valid(b)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanKey reads an object key at b[i] (a string then a colon). plain is
// false for anything but a well-formed ASCII key without escapes; the
// caller then leaves the body to encoding/json. next is after the colon.
func scanKey(b []byte, i int) (key []byte, next int, plain bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	j := i + 1
	for j < len(b) && b[j] != '"' {
		if c := b[j]; c == '\\' || c < 0x20 || c >= 0x80 {
			return nil, 0, false
		}
		j++
	}
	if j >= len(b) {
		return nil, 0, false
	}
	k := skipSpace(b, j+1)
	if k >= len(b) || b[k] != ':' {
		return nil, 0, false
	}
	return b[i+1 : j], k + 1, true
}

// skipValue returns the end of the JSON value at b[i], validating it as
// encoding/json would; ok is false on anything invalid.
func skipValue(b []byte, i, depth int) (end int, ok bool) {
	if i >= len(b) || depth > maxFastDepth {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return 0, false
			}
			e, ok := skipString(b, i)
			if !ok {
				return 0, false
			}
			i = skipSpace(b, e)
			if i >= len(b) || b[i] != ':' {
				return 0, false
			}
			if i, ok = skipValue(b, skipSpace(b, i+1), depth+1); !ok {
				return 0, false
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == '}' {
				return i + 1, true
			}
			if b[i] != ',' {
				return 0, false
			}
			i = skipSpace(b, i+1)
		}
	case c == '[':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = skipValue(b, i, depth+1); !ok {
				return 0, false
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == ']' {
				return i + 1, true
			}
			if b[i] != ',' {
				return 0, false
			}
			i = skipSpace(b, i+1)
		}
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	case c == '-' || '0' <= c && c <= '9':
		return skipNumber(b, i)
	}
	return 0, false
}

func skipLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

func skipString(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, true
		case c < 0x20:
			return 0, false
		case c == '\\':
			j++
			if j >= len(b) {
				return 0, false
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-j <= 4 {
					return 0, false
				}
				for _, h := range b[j+1 : j+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return 0, false
					}
				}
				j += 4
			default:
				return 0, false
			}
		}
	}
	return 0, false
}

func skipNumber(b []byte, i int) (int, bool) {
	digits := func(j int) int {
		for j < len(b) && '0' <= b[j] && b[j] <= '9' {
			j++
		}
		return j
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(i + 1)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}
