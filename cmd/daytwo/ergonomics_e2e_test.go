package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestEveryCommandHasExamples walks the whole command tree: every command
// a user can run (not cobra's own help/completion) has an Examples
// section in its help, and the help shows it.
func TestEveryCommandHasExamples(t *testing.T) {
	a := newApp(strings.NewReader(""), &strings.Builder{}, &strings.Builder{}, func(string) string { return "" }, func() []string { return nil })
	root := a.rootCommand()
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		if c.Name() == "help" || c.Name() == "completion" || strings.HasPrefix(c.Name(), "__") {
			return
		}
		n++
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s: no Example in its help", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if n < 30 {
		t.Fatalf("walked only %d commands", n)
	}
	r := daytwo(t, nil, "env", "list", "--help")
	if !strings.Contains(r.stdout, "Examples:") {
		t.Fatalf("env list --help shows no Examples section:\n%s", r.stdout)
	}
}
