package itsm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzDecodeRecordsSame: the one-pass decoder and encoding/json agree on
// every body — the same records, raw JSON and success or failure.
func FuzzDecodeRecordsSame(f *testing.F) {
	addDecodeSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) { checkDecodeSame(t, body) })
}

// addDecodeSeeds seeds a decoder fuzzer with the recorded answers in
// testdata, decodeSameSeeds and extra.
func addDecodeSeeds(f *testing.F, extra ...string) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	for _, s := range append(append([]string(nil), decodeSameSeeds...), extra...) {
		f.Add([]byte(s))
	}
}

var decodeSameSeeds = []string{
	`{"result":[{"state":{"value":-2.0},"risk":1e308,"active":{"value":true}}]}`,
	`{"result":{"state":"","sys_updated_on":"2026-13-45 99:99:99"}}`,
	`{"result":[]}`, `{"result":null}`, `null`, `{}`, ` {"result" : [ {"a" : "b" } , 3, "x", {"c":"\u00e9\n"} ] } `,
	`{"RESULT":[{"a":"1"}],"result":[{"b":"2"}]}`, `{"result":[{"a":"1"}],"Result":[{"b":"2"}]}`,
	`{"reſult":[{"a":"1"}]}`, `{"result":[{"a":"\xff\xfe"}]}`, `{"result":[{"a\u0041":"1"}]}`,
	`{"result":[{"a":"1","a":"2"}]}`, `{"result":[{"a":1.50,"b":-0,"c":01}]}`, `{"result":[{"a":1.}]}`,
	`{"result":"str"}`, `{"result":42}`, `{"result":[{"a":"b"}]} x`, `{"result":[{"a":"b"}],}`,
	`{"result":[{"a":{"display_value":"D","link":"L","value":"V"}}]}`, `{"result":[{"a":[1,{"b":null}]}]}`,
	`{"result":[{"a":"tab	here"}]}`, `{"result":[{"a":"\q"}]}`, `{"result":[{"a":"\u12"}]}`, "\ufeff{}",
	`{"result":[{"a":true,"b":false,"c":null,"d":nul}]}`, `[{"result":[]}]`, `{"result":[{"a":"é"}]}`,
	"{\"result\":[{\"a\":\"\xff\xfe ok\"}]}", "{\"result\":[{\"k\xc3\xa9\":\"v\"}]}", "{\"result\":[{\"a\":\"\x01\"}]}",
}

func checkDecodeSame(t *testing.T, body []byte) {
	t.Helper()
	recs, raws, err := DecodeRecords(body)
	wantRecs, wantRaws, wantErr := decodeRecordsSlow(body)
	if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
		t.Fatalf("%q: error %v, encoding/json %v", body, err, wantErr)
	}
	if !reflect.DeepEqual(recs, wantRecs) {
		t.Fatalf("%q: records\n%#v\nencoding/json\n%#v", body, recs, wantRecs)
	}
	if len(raws) != len(wantRaws) || (raws == nil) != (wantRaws == nil) {
		t.Fatalf("%q: %d raws, encoding/json %d", body, len(raws), len(wantRaws))
	}
	for i := range raws {
		if string(raws[i]) != string(wantRaws[i]) {
			t.Fatalf("%q: raw %d = %s, encoding/json %s", body, i, raws[i], wantRaws[i])
		}
	}
}

// A page as the simulator sends it decodes the same either way, in one pass.
func TestDecodeRecordsFastPath(t *testing.T) {
	for _, s := range decodeSameSeeds {
		checkDecodeSame(t, []byte(s))
	}
	page := []byte(`{"result":[{"sys_id":"0123456789abcdef0123456789abcdef","number":"CHG0000001","state":"-1","risk":"4",` +
		`"short_description":"Generated rollout 0","sys_updated_on":"2026-01-01 00:00:00"}]}`)
	if _, _, ok := decodeRecordsFast(page); !ok {
		t.Fatal("a plain page left the fast path")
	}
	checkDecodeSame(t, page)
	var m map[string]any
	if err := json.Unmarshal(page, &m); err != nil {
		t.Fatal(err)
	}
}
