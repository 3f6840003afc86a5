package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/daytwo/daytwo/ops"
)

const (
	// maxLine bounds one logged line; longer lines are split.
	maxLine = 4 << 10
	// readChunk is how much of a stream is read at once.
	readChunk = 4 << 10
	// tailLines is how many stderr lines an ExitError keeps.
	tailLines = 5
	// maxTailLine bounds each of those lines in an error message.
	maxTailLine = 256
	// waitDelay is how long output is read after a program exits, in case a
	// background process it left behind still holds stdout or stderr.
	waitDelay = 2 * time.Second
)

// ExitError reports a program that ended unsuccessfully: a non-zero exit
// code or a signal. It unwraps to the *os/exec.ExitError.
type ExitError struct {
	// Program is argv[0] as run.
	Program string
	// Code is the exit code, or -1 when a signal ended the program.
	Code int
	// Signal names the signal that ended the program, if one did.
	Signal string
	// Stderr holds the last lines the program wrote to stderr, oldest first.
	Stderr []string

	err error
}

// Error says how the program ended and quotes its last stderr lines.
func (e *ExitError) Error() string {
	var b strings.Builder
	b.WriteString(e.Program)
	if e.Signal != "" {
		b.WriteString(" killed by signal " + e.Signal)
	} else {
		b.WriteString(" exited with code " + strconv.Itoa(e.Code))
	}
	if len(e.Stderr) > 0 {
		b.WriteString("; stderr: ")
		for i, l := range e.Stderr {
			if i > 0 {
				b.WriteString(" / ")
			}
			b.WriteString(strconv.Quote(l))
		}
	}
	return b.String()
}

// Unwrap returns the underlying *os/exec.ExitError.
func (e *ExitError) Unwrap() error { return e.err }

// TimeoutError reports a program or check that ran out of time. It matches
// context.DeadlineExceeded with errors.Is.
type TimeoutError struct {
	// After is the timeout that passed.
	After time.Duration
}

// Error reads "timed out after 60s".
func (e *TimeoutError) Error() string { return "timed out after " + fmtTimeout(e.After) }

// Unwrap returns context.DeadlineExceeded.
func (e *TimeoutError) Unwrap() error { return context.DeadlineExceeded }

// proc is one program to run.
type proc struct {
	argv    []string
	env     []string
	dir     string
	timeout time.Duration
	log     *stepLog
	// stdout, if set, receives standard output instead of the log.
	stdout io.Writer
	// onStart, if set, is told the program's pid (= its process group)
	// once it runs; an error kills the group and ends the step with it.
	onStart func(pid int) error
}

// RunEnvVar and EpochEnvVar mark a step program's environment with the run
// and lease epoch it belongs to (see Reaper).
const (
	RunEnvVar   = "DAYTWO_RUN"
	EpochEnvVar = "DAYTWO_RUN_EPOCH"
)

// forStep marks p as a program of req's run: its environment names the
// run and epoch, and its pid is reported to req.OnStart.
func (p *proc) forStep(req ops.StepRequest) *proc {
	if req.RunID != "" {
		p.env = append(p.env[:len(p.env):len(p.env)], RunEnvVar+"="+req.RunID, EpochEnvVar+"="+strconv.FormatInt(req.Epoch, 10))
	}
	p.onStart = req.OnStart
	return p
}

// run runs the program in its own process group and waits for it. It
// returns a *TimeoutError when the timeout passes, the context's error
// when ctx is done first, and an *ExitError for an unsuccessful exit.
func (p *proc) run(ctx context.Context) error {
	tctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()

	cmd := osexec.CommandContext(tctx, p.argv[0], p.argv[1:]...)
	cmd.Env = p.env
	cmd.Dir = p.dir
	stdout := p.log.writer("stdout")
	stderr := p.log.writer("stderr")
	if p.stdout != nil {
		cmd.Stdout = p.stdout
	} else {
		cmd.Stdout = stdout
	}
	cmd.Stderr = stderr
	// A group of its own, so that a timeout can kill whatever the program
	// started as well: kill(-pgid) reaches grandchildren too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	cmd.WaitDelay = waitDelay

	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.argv[0], err)
	}
	if p.onStart != nil {
		if err := p.onStart(cmd.Process.Pid); err != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
			return fmt.Errorf("%s stopped as soon as it started: %w", p.argv[0], err)
		}
	}
	err := cmd.Wait()
	stdout.flush()
	stderr.flush()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, osexec.ErrWaitDelay):
		// It exited successfully, but something it left running kept its
		// output open: a success, whatever happened to ctx meanwhile.
		p.log.emit("daytwo", fmt.Sprintf("%s exited but its output stayed open (a background process without redirected output?); stopped reading after %s", p.argv[0], waitDelay))
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", p.argv[0], context.Cause(ctx))
	case errors.Is(tctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", p.argv[0], &TimeoutError{After: p.timeout})
	}
	var ee *osexec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("%s: %w", p.argv[0], err)
	}
	xe := &ExitError{Program: p.argv[0], Code: ee.ExitCode(), Stderr: p.log.stderrTail(), err: ee}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		xe.Signal = ws.Signal().String()
	}
	return xe
}

// stepLog serialises one program's output to its sink, stdout and stderr
// interleaved in the order they arrive, and keeps the last stderr lines.
type stepLog struct {
	sink   ops.LogSink
	target string

	mu   sync.Mutex
	tail [tailLines]string
	n    int // stderr lines seen
}

func newStepLog(sink ops.LogSink, target string) *stepLog {
	return &stepLog{sink: sink, target: target}
}

func (s *stepLog) emit(stream, line string) {
	line = strings.ToValidUTF8(line, "\uFFFD")
	s.mu.Lock()
	defer s.mu.Unlock()
	if stream == "stderr" {
		t := line
		if len(t) > maxTailLine {
			t = strings.ToValidUTF8(t[:maxTailLine], "") + "…"
		}
		s.tail[s.n%tailLines] = t
		s.n++
	}
	if s.sink != nil {
		s.sink(s.target, stream, line)
	}
}

func (s *stepLog) stderrTail() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := min(s.n, tailLines)
	out := make([]string, 0, k)
	for i := s.n - k; i < s.n; i++ {
		out = append(out, s.tail[i%tailLines])
	}
	return out
}

func (s *stepLog) writer(stream string) *lineWriter {
	return &lineWriter{log: s, stream: stream}
}

// lineWriter cuts a stream into lines of at most maxLine bytes. It holds at
// most one partial line; it is used by a single goroutine.
type lineWriter struct {
	log    *stepLog
	stream string
	buf    []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if i := bytes.IndexByte(p, '\n'); i >= 0 && len(w.buf)+i <= maxLine {
			w.buf = append(w.buf, p[:i]...)
			w.line()
			p = p[i+1:]
			continue
		}
		take := min(maxLine-len(w.buf), len(p))
		w.buf = append(w.buf, p[:take]...)
		p = p[take:]
		if len(w.buf) == maxLine {
			w.split()
		}
	}
	return n, nil
}

// ReadFrom reads r to its end through a small buffer. Without it, os/exec
// copies each stream through a fresh 32 KiB buffer: 64 KiB per step that the
// benchmark of 1000 steps feels.
func (w *lineWriter) ReadFrom(r io.Reader) (int64, error) {
	chunk := make([]byte, readChunk)
	var total int64
	for {
		n, err := r.Read(chunk)
		if n > 0 {
			total += int64(n)
			_, _ = w.Write(chunk[:n]) // never fails
		}
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// line emits the buffered line, without its end-of-line.
func (w *lineWriter) line() {
	l := w.buf
	if len(l) > 0 && l[len(l)-1] == '\r' {
		l = l[:len(l)-1]
	}
	w.log.emit(w.stream, string(l))
	w.buf = w.buf[:0]
}

// split emits a full buffer without a newline, keeping a rune cut in half
// for the next piece.
func (w *lineWriter) split() {
	cut := len(w.buf)
	for k := len(w.buf) - 1; k >= 0 && k >= len(w.buf)-utf8.UTFMax; k-- {
		if utf8.RuneStart(w.buf[k]) {
			if !utf8.FullRune(w.buf[k:]) && k > 0 {
				cut = k
			}
			break
		}
	}
	w.log.emit(w.stream, string(w.buf[:cut]))
	w.buf = append(w.buf[:0], w.buf[cut:]...)
}

// flush emits a last line that had no newline.
func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.line()
	}
}

// limitedBuffer keeps the first max bytes written to it and drops the rest.
type limitedBuffer struct {
	buf       bytes.Buffer
	max       int
	truncated bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); len(p) > room {
		b.buf.Write(p[:max(room, 0)])
		b.truncated = true
		return len(p), nil
	}
	return b.buf.Write(p)
}

// fmtTimeout renders whole seconds as "60s" and anything else as
// time.Duration does.
func fmtTimeout(d time.Duration) string {
	if d >= time.Second && d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// fmtDur renders a measured duration for evidence: "3ms", "250µs", "1.2s".
func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}

// quoteArgv renders argv for a log line, quoting what needs it.
func quoteArgv(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a == "" || strings.ContainsFunc(a, func(r rune) bool {
			return r <= ' ' || r == '"' || r == '\'' || r == '\\' || r == '$' || r == '`' || r >= utf8.RuneSelf
		}) {
			b.WriteString(strconv.Quote(a))
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}
