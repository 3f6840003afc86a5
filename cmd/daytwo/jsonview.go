package main

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"time"
)

// jsonView returns v as the CLI prints it with -o json: the same fields
// and names encoding/json would write, except that every time.Duration is
// a string like "2h0m0s" (never nanoseconds). Types with their own JSON or
// text encoding (times, raw JSON, batch sizes) keep it. The domain types
// themselves stay as they are: their JSON is also what plan digests and
// the store are computed from.
func jsonView(v any) any { return viewOf(reflect.ValueOf(v)) }

var (
	durationType      = reflect.TypeOf(time.Duration(0))
	jsonMarshalerType = reflect.TypeOf((*json.Marshaler)(nil)).Elem()
	textMarshalerType = reflect.TypeOf((*encoding.TextMarshaler)(nil)).Elem()
)

func viewOf(v reflect.Value) any {
	if !v.IsValid() {
		return nil
	}
	t := v.Type()
	switch {
	case t == durationType:
		return time.Duration(v.Int()).String()
	case t.Implements(jsonMarshalerType), t.Implements(textMarshalerType):
		if (t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface) && v.IsNil() {
			return nil
		}
		return v.Interface()
	case reflect.PointerTo(t).Implements(jsonMarshalerType), reflect.PointerTo(t).Implements(textMarshalerType):
		p := reflect.New(t)
		p.Elem().Set(v)
		return p.Interface()
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return viewOf(v.Elem())
	case reflect.Struct:
		return structView(v)
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		out := make(map[string]any, v.Len())
		for it := v.MapRange(); it.Next(); {
			k, err := json.Marshal(it.Key().Interface())
			if err != nil {
				return v.Interface()
			}
			out[strings.Trim(string(k), `"`)] = viewOf(it.Value())
		}
		return out
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		if t.Elem().Kind() == reflect.Uint8 {
			return v.Interface() // []byte: base64, as encoding/json
		}
		fallthrough
	case reflect.Array:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = viewOf(v.Index(i))
		}
		return out
	default:
		return v.Interface()
	}
}

// jsonObject is a JSON object that keeps its fields in struct order.
type jsonObject []jsonField

type jsonField struct {
	name  string
	value any
}

func (o jsonObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.name)
		b.Write(k)
		b.WriteByte(':')
		val, err := json.Marshal(f.value)
		if err != nil {
			return nil, err
		}
		b.Write(val)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// structView lists a struct's JSON fields as encoding/json would: exported
// fields by their tag names, "-" skipped, omitempty and omitzero honoured,
// untagged embedded structs promoted (the shallowest field of a name wins).
func structView(v reflect.Value) jsonObject {
	type found struct {
		jsonField
		depth int
	}
	var all []found
	var walk func(v reflect.Value, depth int)
	walk = func(v reflect.Value, depth int) {
		t := v.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			fv := v.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if sf.Anonymous && name == "" {
				ft := sf.Type
				if ft.Kind() == reflect.Pointer {
					if fv.IsNil() {
						continue
					}
					fv, ft = fv.Elem(), ft.Elem()
				}
				if ft.Kind() == reflect.Struct && !ft.Implements(jsonMarshalerType) && !reflect.PointerTo(ft).Implements(jsonMarshalerType) {
					walk(fv, depth+1)
					continue
				}
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			if hasOpt(opts, "omitempty") && emptyValue(fv) || hasOpt(opts, "omitzero") && zeroValue(fv) {
				continue
			}
			all = append(all, found{jsonField{name, viewOf(fv)}, depth})
		}
	}
	walk(v, 0)
	best := map[string]int{}
	for _, f := range all {
		if d, ok := best[f.name]; !ok || f.depth < d {
			best[f.name] = f.depth
		}
	}
	out := make(jsonObject, 0, len(all))
	seen := map[string]bool{}
	for _, f := range all {
		if f.depth == best[f.name] && !seen[f.name] {
			seen[f.name] = true
			out = append(out, f.jsonField)
		}
	}
	return out
}

func hasOpt(opts, want string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

func emptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	}
	return false
}

func zeroValue(v reflect.Value) bool {
	if z, ok := v.Interface().(interface{ IsZero() bool }); ok {
		if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
			return true
		}
		return z.IsZero()
	}
	return v.IsZero()
}
