package common

import (
	"context"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
)

type genMsg int

// TestLoaderKeepsOneLoadAndTheLatestResult: while a load is in flight no
// other starts; once superseded, the older result is stale and only the
// newest ends the load.
func TestLoaderKeepsOneLoadAndTheLatestResult(t *testing.T) {
	var l Loader
	read := func(_ context.Context, gen int) tea.Msg { return genMsg(gen) }
	first := l.Load(Common{}, read)
	if first == nil || !l.Loading() {
		t.Fatal("the first load did not start")
	}
	if l.Load(Common{}, read) != nil {
		t.Fatal("a second load started while one was in flight")
	}
	l.Supersede()
	second := l.Load(Common{}, read)
	if second == nil {
		t.Fatal("a superseding load did not start")
	}
	if g := int(first().(genMsg)); l.Done(g) {
		t.Fatal("the superseded load's result was taken")
	}
	if !l.Loading() {
		t.Fatal("a stale result ended the load in flight")
	}
	if g := int(second().(genMsg)); !l.Done(g) || l.Loading() {
		t.Fatal("the latest result did not end the load")
	}
}
