package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"time"
)

// watchEvery is how often -w/--watch looks at the store's change marker.
const watchEvery = time.Second

// watchList prints a list (render), then again each time the store
// changed and the list with it, until ctx ends (SIGINT, SIGTERM). On a
// terminal a table is redrawn in place; -o json prints one document per
// change. The store's change marker (SQLite's data_version) is read every
// second; only a moved marker re-reads the list, and only a list that
// differs is printed.
func (a *app) watchList(ctx context.Context, render func() error) error {
	out := a.stdout
	defer func() { a.stdout = out }()
	draw := func() ([]byte, error) {
		var b bytes.Buffer
		a.stdout = &b
		err := render()
		a.stdout = out
		return b.Bytes(), err
	}
	last, err := draw()
	if err != nil {
		return err
	}
	if _, err := out.Write(last); err != nil {
		return err
	}
	marker, closeMarker := a.changeMarker(ctx)
	defer closeMarker()
	mark := marker()
	clear := a.format != outJSON && a.format != outYAML && isTerminal(out)
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if m := marker(); m != "" && m == mark {
			continue
		} else {
			mark = m
		}
		b, err := draw()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if bytes.Equal(b, last) {
			continue
		}
		last = b
		if clear {
			io.WriteString(out, "\x1b[H\x1b[2J")
		} else if a.format != outJSON && a.format != outYAML && a.format != outName {
			io.WriteString(out, "\n")
		} else if a.format == outYAML {
			io.WriteString(out, "---\n")
		}
		if _, err := out.Write(b); err != nil {
			return err
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
