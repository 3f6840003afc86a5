// Command daytwo is a terminal console and headless daemon for Day-2
// operations: it rolls app versions and config out to environments, gated by
// ServiceNow change requests where they need one.
//
// Run `daytwo --help` for the commands, and see README.md.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // freezes name IANA zones; don't depend on the host's tzdata
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv, os.Environ)
	stop()
	os.Exit(code)
}

// run executes one daytwo invocation and returns its exit code. It is main
// without the process: tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string, environ func() []string) int {
	a := newApp(stdin, stdout, stderr, getenv, environ)
	defer a.close()
	root := a.rootCommand()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return a.report(err)
}
