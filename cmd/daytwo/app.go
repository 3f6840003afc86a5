package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/daytwo/daytwo/cmd/daytwo/internal/config"
	"github.com/daytwo/daytwo/ops"
)

// Exit codes: a contract with scripts and CI pipelines.
const (
	exitOK      = 0
	exitError   = 1
	exitUsage   = 2 // bad usage or configuration
	exitBlocked = 3 // policy, window, freeze or lease
	exitPending = 4 // change still awaiting approval
	// exitReadOnly: refused by read-only mode (--read-only,
	// DAYTWO_READ_ONLY, console.read_only).
	exitReadOnly = 5
	// exitStopped: this process stopped a run at a step boundary (a signal)
	// or lost its lease to another process; the run itself goes on (it is
	// resumed by `run --resume`, the daemon, or whoever took it over).
	exitStopped = 8
)

// Exit codes of `daytwo drift` (kept apart so that other codes can be
// added above without renumbering these).
const (
	exitDrifted = 6 // a target reports another release than the recorded one
	exitUnknown = 7 // no drift seen, but a probe failed: some release is unknown
)

// usageError marks an error as the caller's: wrong arguments or flags.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// silentError carries an exit code for a failure that was already reported
// on stdout (e.g. `audit verify` printing the broken link).
type silentError struct{ code int }

func (e silentError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// app is the composition root: it holds the streams, the global flags, and
// lazily loads the configuration, the store and the logger for commands.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	environ        func() []string
	clock          func() time.Time

	// Global flags.
	configFile string
	logLevel   string
	// service is --service: the service ENV arguments and filters refer to.
	serviceFlag string
	// mirrorOnly is set by the read-only check for a mirror command (sync,
	// the console) in read-only mode: sync without delivering writes, run
	// nothing.
	mirrorOnly bool
	// format is -o as given (table, wide, json, yaml, name); noHeaders and
	// watch are a list command's --no-headers and --watch.
	format    string
	noHeaders bool
	watch     bool
	// class is the running command's read-only class (readOnlyClass).
	class string
	// noStore is the configured store path when a read found no database
	// there: the read then runs on an empty throw-away store, so a read
	// never creates the database.
	noStore string

	// reloader reloads the daemon's configuration on SIGHUP (sync --watch).
	reloader *configReloader

	root    *cobra.Command
	cfg     *config.Config
	db      appStore
	logger  *slog.Logger
	closers []func() error
}

func newApp(stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string, environ func() []string) *app {
	return &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, environ: environ, clock: time.Now}
}

// flagKeys maps global flags onto the configuration keys they override.
var flagKeys = map[string]string{
	"db":        "store.path",
	"instance":  "servicenow.instance",
	"read-only": "console.read_only",
}

// config loads the configuration once per invocation. No configuration
// file found is an error saying where daytwo looked.
func (a *app) config() (*config.Config, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	if cfg.File == "" {
		return nil, a.noConfigError()
	}
	a.cfg = cfg
	return cfg, nil
}

// loadConfig loads the configuration layers, a file or none.
func (a *app) loadConfig() (*config.Config, error) {
	return config.Load(config.Source{
		File: a.configFile, Getenv: a.getenv, Environ: a.environ,
		Flags: a.root.PersistentFlags(), FlagKeys: flagKeys,
	})
}

// noConfigError says where daytwo looked for a configuration file.
func (a *app) noConfigError() error {
	cwd, err := os.Getwd()
	if err != nil {
		cwd = "."
	}
	return &config.Error{Problems: []config.Problem{{Message: fmt.Sprintf(
		"no configuration file found: no --config flag, $DAYTWO_CONFIG is not set, and there is no %s in %s; "+
			"write one (the documented example is fixtures/config/daytwo.example.yaml) or name it with --config FILE",
		config.DefaultFile, cwd)}}}
}

// log returns the structured logger: JSON on stderr for headless commands.
// The console replaces it with a file logger, never the terminal.
func (a *app) log() *slog.Logger {
	if a.logger == nil {
		level := slog.LevelWarn
		if a.logLevel != "" {
			_ = level.UnmarshalText([]byte(a.logLevel)) // validated in PersistentPreRunE
		}
		a.logger = slog.New(slog.NewJSONHandler(a.stderr, &slog.HandlerOptions{Level: level}))
	}
	return a.logger
}

// actor names who is acting, for the audit log: $DAYTWO_ACTOR, else the
// OS user.
func (a *app) actor() string {
	if v := a.getenv("DAYTWO_ACTOR"); v != "" {
		return v
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if v := a.getenv("USER"); v != "" {
		return v
	}
	return "unknown"
}

func (a *app) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		_ = a.closers[i]()
	}
}

// report prints err (if any) and maps it onto an exit code: the one place
// where errors become exit codes.
func (a *app) report(err error) int {
	if err == nil {
		return exitOK
	}
	var silent silentError
	if errors.As(err, &silent) {
		return silent.code
	}
	if a.db != nil {
		err = a.db.Explain(err) // a write outside a transaction may not have named the file
	}
	fmt.Fprintf(a.stderr, "daytwo: %s\n", withHintText(err))
	var (
		cfgErr *config.Error
		usage  usageError
		ro     readOnlyError
	)
	switch {
	case errors.As(err, &ro):
		return exitReadOnly
	case errors.As(err, &cfgErr), errors.As(err, &usage), isCobraUsage(err):
		return exitUsage
	case errors.Is(err, ops.ErrApprovalPending):
		return exitPending
	case errors.Is(err, ops.ErrRunInterrupted), errors.Is(err, ops.ErrLeaseLost):
		return exitStopped
	case errors.Is(err, ops.ErrBlocked), errors.Is(err, ops.ErrOutsideWindow), errors.Is(err, ops.ErrChangeRejected),
		errors.Is(err, ops.ErrNothingToDo):
		return exitBlocked
	default:
		return exitError
	}
}

// isCobraUsage recognises the usage errors cobra builds itself.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "invalid argument", "flag needs an argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// Output formats for -o. Show commands take table, json and yaml; list
// commands also wide (more columns) and name (one identifier a line, as
// kubectl's -o name), with --no-headers and -w/--watch.
const (
	outTable = "table"
	outWide  = "wide"
	outJSON  = "json"
	outYAML  = "yaml"
	outName  = "name"
)

var (
	showFormats = []string{outTable, outJSON, outYAML}
	listFormats = []string{outTable, outWide, outJSON, outYAML, outName}
)

// formatsAnnotation names, on the -o flag, the formats its command takes.
const formatsAnnotation = "daytwo_formats"

// addOutputFlag gives a show command its -o flag (table, json, yaml).
func addOutputFlag(cmd *cobra.Command, out *string) { addFormats(cmd, out, showFormats) }

// addListFlags gives a list command -o (table, wide, json, yaml, name),
// --no-headers and -w/--watch.
func addListFlags(cmd *cobra.Command, out *string) {
	addFormats(cmd, out, listFormats)
	cmd.Flags().Bool("no-headers", false, "table and wide: print no header line")
	cmd.Flags().BoolP("watch", "w", false, "after the list, print it again whenever the store changes (until Ctrl-C or SIGTERM; -o json: one document per change)")
}

func addFormats(cmd *cobra.Command, out *string, formats []string) {
	cmd.Flags().StringVarP(out, "output", "o", outTable, "output format: "+strings.Join(formats, ", "))
	_ = cmd.Flags().SetAnnotation("output", formatsAnnotation, formats)
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
}

// checkOutput checks -o against the formats cmd takes and notes the
// choice on the app: yaml is printed by printJSON (same fields as JSON),
// wide and name by printList; *out is then json or table for the
// command's own code.
func (a *app) checkOutput(cmd *cobra.Command, out *string) error {
	formats := showFormats
	if f := cmd.Flags().Lookup("output"); f != nil {
		if v, ok := f.Annotations[formatsAnnotation]; ok {
			formats = v
		}
	}
	if !slices.Contains(formats, *out) {
		return usagef("--output %q: want %s", *out, strings.Join(formats, ", "))
	}
	a.format = *out
	a.noHeaders, _ = cmd.Flags().GetBool("no-headers")
	a.watch, _ = cmd.Flags().GetBool("watch")
	switch *out {
	case outYAML:
		*out = outJSON
	case outWide, outName:
		*out = outTable
	}
	return nil
}

// printJSON writes v as indented JSON, durations as strings (jsonView);
// with -o yaml the same document as YAML, with the same field names.
func (a *app) printJSON(v any) error {
	if a.format == outYAML {
		return a.printYAML(v)
	}
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(jsonView(v))
}

// printYAML writes v's JSON document as YAML: JSON is YAML, so the node
// tree decoded from it keeps JSON's field names and order.
func (a *app) printYAML(v any) error {
	b, err := json.Marshal(jsonView(v))
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return err
	}
	plainStyle(&doc)
	enc := yaml.NewEncoder(a.stdout)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	return enc.Close()
}

// yaml11Bool are the strings YAML 1.1 readers take for booleans: they
// stay quoted.
var yaml11Bool = map[string]bool{"y": true, "yes": true, "n": true, "no": true, "on": true, "off": true, "true": true, "false": true}

// plainStyle drops the flow style the JSON source gave every node, so
// the YAML is block style.
func plainStyle(n *yaml.Node) {
	n.Style &^= yaml.FlowStyle
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && !yaml11Bool[strings.ToLower(n.Value)] {
		n.Style &^= yaml.DoubleQuotedStyle
	}
	for _, c := range n.Content {
		plainStyle(c)
	}
}

// table writes aligned columns; the first row is the header.
func (a *app) table(rows [][]string) error {
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// wideColumns are the extra columns of a list's -o wide.
type wideColumns[T any] struct {
	header []string
	cells  func(T) []string
}

// printList is every list command's output: with -o json (yaml) the rows
// as an array ([] when there are none); -o name the first column, one a
// line; else a table of header (unless --no-headers) and one line of
// cells per row, with -o wide the wide columns after them.
func printList[T any](a *app, out string, rows []T, header []string, cells func(T) []string, wide ...wideColumns[T]) error {
	if out == outJSON {
		return a.printJSON(append([]T{}, rows...))
	}
	if a.format == outName {
		for _, r := range rows {
			fmt.Fprintln(a.stdout, cells(r)[0])
		}
		return nil
	}
	table := make([][]string, 0, len(rows)+1)
	if !a.noHeaders {
		h := header
		if a.format == outWide {
			for _, w := range wide {
				h = append(slices.Clone(h), w.header...)
			}
		}
		table = append(table, h)
	}
	for _, r := range rows {
		c := cells(r)
		if a.format == outWide {
			for _, w := range wide {
				c = append(c, w.cells(r)...)
			}
		}
		table = append(table, c)
	}
	return a.table(table)
}

// exactArgs is cobra.ExactArgs with a usage error that names the arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usagef("%s: want %d argument(s) (%s), got %d", cmd.CommandPath(), len(names), strings.Join(names, " "), len(args))
		}
		return nil
	}
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printJSONLine writes v as one line of JSON (JSON lines); with -o yaml
// as one YAML document of a stream.
func (a *app) printJSONLine(v any) error {
	if a.format == outYAML {
		fmt.Fprintln(a.stdout, "---")
		return a.printYAML(v)
	}
	return json.NewEncoder(a.stdout).Encode(jsonView(v))
}
