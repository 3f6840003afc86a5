package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/daytwo/daytwo/ops"
)

// Every hint the domain gives has CLI words, and they follow the domain's
// message.
func TestEveryHintHasCLIWords(t *testing.T) {
	for _, k := range ops.HintKinds() {
		if hintText(ops.Hint{Kind: k, Subject: "x"}) == "" {
			t.Errorf("hint %q has no CLI words", k)
		}
	}
	err := fmt.Errorf("propose: %w", &ops.HintError{
		Err:  fmt.Errorf("staging already has an open update u-1: %w", ops.ErrBlocked),
		Hint: ops.Hint{Kind: ops.HintSupersede, Subject: "u-1"},
	})
	got := withHintText(err)
	if want := "propose: staging already has an open update u-1: blocked; cancel it first (`daytwo update cancel u-1`) or propose with --supersede"; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if !errors.Is(err, ops.ErrBlocked) {
		t.Fatal("the hint broke the error chain")
	}
	if plain := withHintText(errors.New("no hint")); plain != "no hint" || strings.Contains(plain, ";") {
		t.Fatalf("plain error %q", plain)
	}
}
