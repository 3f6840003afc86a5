package main

import "github.com/spf13/cobra"

// commandExamples is every command's Examples section, by command path
// (a command that sets its own Example keeps it).
// TestEveryCommandHasExamples fails on a command that has none.
var commandExamples = map[string]string{
	"daytwo": `  daytwo                      # open the console
  daytwo --read-only          # the console, changing nothing
  daytwo env list -o wide`,
	"daytwo tui": `  daytwo tui
  daytwo tui --engine         # the console runs the daemon's engine too`,
	"daytwo demo": `  daytwo demo                 # simulator, fleet and the console
  daytwo demo --headless      # the scripted story, no terminal needed`,
	"daytwo snowsim": `  daytwo snowsim --addr 127.0.0.1:8089
  daytwo snowsim --state /tmp/snow.json --auto-approve-standard`,
	"daytwo sync": `  daytwo sync --once
  daytwo sync --once -o json
  daytwo sync --watch --interval 30s --listen 127.0.0.1:9090
  kill -HUP $(pidof daytwo)   # reload the configuration of a running daemon`,
	"daytwo config":       `  daytwo config check`,
	"daytwo config check": "  daytwo config check\n  daytwo config check /etc/daytwo/daytwo.yaml -o json",
	"daytwo config show":  "  daytwo config show\n  daytwo config show -o yaml",
	"daytwo env":          "  daytwo env list",
	"daytwo env list": `  daytwo env list
  daytwo env list -o wide --no-headers
  daytwo env list -o name
  daytwo env list -w          # redraw when a release lands`,
	"daytwo env show": "  daytwo env show production\n  daytwo env show staging -o yaml",
	"daytwo env diff": "  daytwo env diff staging production\n  daytwo env diff --service checkout staging production",
	"daytwo service":  "  daytwo service list",
	"daytwo service list": `  daytwo service list
  daytwo service list -o json`,
	"daytwo service show": "  daytwo service show checkout\n  daytwo service show payments -o json",
	"daytwo propose": `  daytwo propose staging 1.4.2
  daytwo propose production 1.4.2 --dry-run
  daytwo propose production 1.4.3 --supersede -o json
  daytwo propose checkout production 1.4.2
  daytwo propose --bundle production checkout=1.4.2 payments=3.0.1 search=2.0.0`,
	"daytwo change": "  daytwo change list",
	"daytwo change list": `  daytwo change list
  daytwo change list --mine -o wide
  daytwo change list --all -o json
  daytwo change list -o name -w`,
	"daytwo change show":    "  daytwo change show CHG0030001\n  daytwo change show CHG0030001 -o yaml",
	"daytwo change approve": `  daytwo change approve CHG0030001 --comment "reviewed in CAB"`,
	"daytwo change reject":  `  daytwo change reject CHG0030001 --comment "window clashes with the billing run"`,
	"daytwo run": `  daytwo run u-abc123          # an update by id
  daytwo run CHG0030001        # by its change
  daytwo run production --wait 30m
  daytwo run --resume`,
	"daytwo rollback":     "  daytwo rollback production\n  daytwo rollback production --to 1.4.1",
	"daytwo drift":        "  daytwo drift\n  daytwo drift production -o json   # exit 6: drifted, 7: unknown\n  daytwo drift --service payments",
	"daytwo policy":       "  daytwo policy check",
	"daytwo policy check": "  daytwo policy check\n  daytwo policy check production -o json",
	"daytwo update":       "  daytwo update list",
	"daytwo update list": `  daytwo update list
  daytwo update list --all --env production -o wide
  daytwo update list -o json -w   # one JSON document per change`,
	"daytwo update show":   "  daytwo update show u-abc123\n  daytwo update show CHG0030001 -o yaml",
	"daytwo update cancel": "  daytwo update cancel u-abc123",
	"daytwo update logs":   "  daytwo update logs u-abc123\n  daytwo update logs CHG0030001 -f",
	"daytwo audit":         "  daytwo audit list",
	"daytwo audit list": `  daytwo audit list --limit 20
  daytwo audit list --env production -o wide
  daytwo audit list -w`,
	"daytwo audit verify":   "  daytwo audit verify\n  daytwo audit verify --against-servicenow -o json",
	"daytwo audit export":   "  daytwo audit export --file audit.jsonl\n  daytwo audit export --after 1200 >> audit.jsonl",
	"daytwo feed":           "  daytwo feed --follow --cursor /var/lib/daytwo/feed.cursor | vector --config vector.toml\n  daytwo feed --stream alert,audit -s checkout --env production",
	"daytwo outbox":         "  daytwo outbox list",
	"daytwo outbox list":    "  daytwo outbox list\n  daytwo outbox list --all -o json\n  daytwo outbox list -o name",
	"daytwo outbox discard": "  daytwo outbox discard 42",
	"daytwo outbox retry":   "  daytwo outbox retry        # every failed write\n  daytwo outbox retry 42",
	"daytwo store":          "  daytwo store copy --from sqlite:///var/lib/daytwo/daytwo.db --to postgres://daytwo@db/daytwo",
	"daytwo store copy":     "  daytwo store copy --from sqlite:///var/lib/daytwo/daytwo.db --to postgres://daytwo@db/daytwo",
	"daytwo status":         "  daytwo status\n  daytwo status -o json",
	"daytwo fleet":          "  daytwo fleet serve --state-dir /tmp/fleet --target web-1",
	"daytwo fleet serve":    "  daytwo fleet serve --state-dir /tmp/fleet --target web-1 --target web-2=127.0.0.1:18081",
	"daytwo fleet deploy":   "  daytwo fleet deploy --state-dir /tmp/fleet",
	"daytwo version":        "  daytwo version\n  daytwo version -o json",
}

// addExamples gives every command under root its Examples section.
func addExamples(root *cobra.Command) {
	if root.Example == "" {
		root.Example = commandExamples[root.CommandPath()]
	}
	for _, c := range root.Commands() {
		addExamples(c)
	}
}
