package itsm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeChange feeds arbitrary bodies through every decoder the client
// applies to ServiceNow answers. None may panic; whatever decodes must
// re-encode.
func FuzzDecodeChange(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"result":[{"state":{"value":-2.0},"risk":1e308,"active":{"value":true}}]}`))
	f.Add([]byte(`{"result":{"state":"","sys_updated_on":"2026-13-45 99:99:99"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		e := &Error{}
		parseErrorBody(e, body)
		_ = e.Error()
		_ = htmlTitle(body)
		recs, raws, err := DecodeRecords(body)
		if err != nil {
			return
		}
		if len(recs) != len(raws) {
			t.Fatalf("%d records, %d raws", len(recs), len(raws))
		}
		for i, r := range recs {
			ch := ChangeFromRecord(r, raws[i])
			_ = ch.State.String()
			_ = ApprovalFromRecord(r)
			_ = IncidentFromRecord(r, raws[i])
			_ = AttachmentFromRecord(r)
			_, _ = conflictFromRecord(r)
			if _, err := json.Marshal(r); err != nil {
				t.Fatalf("re-encode: %v", err)
			}
		}
	})
}
