package itsm

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadBody(t *testing.T) {
	body := strings.Repeat("x", 100_000)
	for _, announced := range []int64{-1, 0, 10, 100_000, 200_000} {
		for name, r := range map[string]func() *strings.Reader{"whole": func() *strings.Reader { return strings.NewReader(body) }} {
			got, err := readBody(iotest.HalfReader(r()), announced, 100_000)
			if err != nil || !bytes.Equal(got, []byte(body)) {
				t.Fatalf("%s, announced %d: %d bytes, %v; want the %d bytes", name, announced, len(got), err, len(body))
			}
			if _, err := readBody(r(), announced, 99_999); !errors.Is(err, errBodyTooLarge) {
				t.Fatalf("%s, announced %d, limit one byte short: %v; want errBodyTooLarge", name, announced, err)
			}
		}
	}
	if got, err := readBody(strings.NewReader(""), 0, 10); err != nil || len(got) != 0 {
		t.Fatalf("empty body: %q, %v", got, err)
	}
	if _, err := readBody(iotest.ErrReader(errors.New("reset")), -1, 10); err == nil || err.Error() != "reset" {
		t.Fatalf("a failing read: %v; want its error", err)
	}
}
