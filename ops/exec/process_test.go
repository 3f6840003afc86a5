package exec

import (
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestLineWriter(t *testing.T) {
	long := strings.Repeat("a", maxLine)
	tests := map[string]struct {
		writes []string
		want   []string
	}{
		"lines":             {[]string{"one\ntwo\n"}, []string{"one", "two"}},
		"split writes":      {[]string{"on", "e\nt", "wo\n"}, []string{"one", "two"}},
		"no final newline":  {[]string{"one\ntwo"}, []string{"one", "two"}},
		"crlf":              {[]string{"one\r\ntwo\r\n"}, []string{"one", "two"}},
		"empty lines":       {[]string{"\n\nx\n"}, []string{"", "", "x"}},
		"exactly max":       {[]string{long + "\n"}, []string{long}},
		"longer than max":   {[]string{long + "bc\n"}, []string{long, "bc"}},
		"much longer":       {[]string{long, long, "z"}, []string{long, long, "z"}},
		"rune across split": {[]string{strings.Repeat("a", maxLine-1) + "é\n"}, []string{strings.Repeat("a", maxLine-1), "é"}},
		"invalid utf-8":     {[]string{"a\xffb\n"}, []string{"a\uFFFDb"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var rec recorder
			sl := newStepLog(rec.sink, "t")
			w := sl.writer("stdout")
			for _, s := range tt.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			w.flush()
			got := rec.stream("stdout")
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %d lines %.60q, want %d lines %.60q", len(got), got, len(tt.want), tt.want)
			}
			for _, l := range got {
				if len(l) > maxLine {
					t.Errorf("line of %d bytes", len(l))
				}
			}
		})
	}
}

func TestLineWriterReadFrom(t *testing.T) {
	var rec recorder
	w := newStepLog(rec.sink, "t").writer("stderr")
	in := strings.Repeat("line\n", 3000)
	n, err := w.ReadFrom(iotest.OneByteReader(strings.NewReader(in)))
	if err != nil || n != int64(len(in)) {
		t.Fatalf("ReadFrom = %d, %v", n, err)
	}
	if got := rec.stream("stderr"); len(got) != 3000 {
		t.Errorf("%d lines, want 3000", len(got))
	}
}

func TestStderrTail(t *testing.T) {
	sl := newStepLog(nil, "t")
	if got := sl.stderrTail(); len(got) != 0 {
		t.Errorf("tail %q, want none", got)
	}
	for _, l := range []string{"1", "2", "3", "4", "5", "6", strings.Repeat("x", 1000)} {
		sl.emit("stderr", l)
		sl.emit("stdout", "ignored")
	}
	got := sl.stderrTail()
	if len(got) != tailLines || got[0] != "3" || len(got[tailLines-1]) > maxTailLine+len("…") {
		t.Errorf("tail %.40q", got)
	}
}

func TestFormatting(t *testing.T) {
	for d, want := range map[time.Duration]string{
		60 * time.Second:        "60s",
		90 * time.Second:        "90s",
		1500 * time.Millisecond: "1.5s",
		300 * time.Millisecond:  "300ms",
	} {
		if got := fmtTimeout(d); got != want {
			t.Errorf("fmtTimeout(%v) = %q, want %q", d, got, want)
		}
	}
	for d, want := range map[time.Duration]string{
		3*time.Millisecond + 300*time.Microsecond: "3ms",
		250 * time.Microsecond:                    "250µs",
		1234 * time.Millisecond:                   "1.2s",
	} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", d, got, want)
		}
	}
	if got, want := quoteArgv([]string{"./deploy.sh", "a b", "$x", "", "plain"}), `./deploy.sh "a b" "$x" "" plain`; got != want {
		t.Errorf("quoteArgv = %s, want %s", got, want)
	}
}
