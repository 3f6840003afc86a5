package tui

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/actions"
	"github.com/daytwo/daytwo/tui/common"
)

// paletteCommand is one command of the palette.
type paletteCommand struct {
	names []string
	usage string
	// mutates says the command changes ServiceNow or an environment. It
	// documents the command (and the read-only test checks it against
	// what the command does); the refusal itself is the one check every
	// action passes, common.RefuseReadOnly.
	mutates bool
	run     func(m *Model, args []string) tea.Cmd
}

// paletteCommands are the palette's commands, in help order.
var paletteCommands = []paletteCommand{
	{names: []string{"svc", "service", "services"}, usage: "svc NAME [ENV]", run: func(m *Model, a []string) tea.Cmd {
		// The matrix on a service's row (fuzzy), on one of its cells with ENV.
		target := arg(a, 0)
		if arg(a, 1) != "" {
			target += "/" + arg(a, 1)
		}
		return common.Navigate(common.PageMatrix, target)
	}},
	{names: []string{"env", "envs", "environments"}, usage: "env NAME", run: func(m *Model, a []string) tea.Cmd {
		return common.Navigate(common.PageEnvironments, arg(a, 0))
	}},
	{names: []string{"chg", "change", "show", "detail"}, usage: "chg CHG…", run: func(m *Model, a []string) tea.Cmd {
		if arg(a, 0) == "" {
			return errFlash("usage: chg CHG0030012 (or an update id)")
		}
		id := arg(a, 0)
		if !strings.HasPrefix(id, "u-") {
			id = strings.ToUpper(id)
		}
		return common.Navigate(common.PageDetail, id)
	}},
	{names: []string{"upd", "update", "updates", "u"}, usage: "upd ID", run: func(m *Model, a []string) tea.Cmd {
		if id := arg(a, 0); strings.HasPrefix(id, "u-") || strings.HasPrefix(strings.ToUpper(id), "CHG") {
			return common.Navigate(common.PageDetail, id)
		}
		if arg(a, 0) != "" {
			env, ok := m.findEnv(arg(a, 0))
			if !ok {
				return errFlash("no environment matches %q", arg(a, 0))
			}
			return common.Navigate(common.PageUpdates, env.Name)
		}
		return common.Navigate(common.PageUpdates, "")
	}},
	{names: []string{"propose"}, usage: "propose ENV VERSION [k=v]", mutates: true, run: func(m *Model, a []string) tea.Cmd {
		env, ok := m.findEnv(arg(a, 0))
		if !ok || arg(a, 1) == "" {
			return errFlash("usage: propose ENV VERSION [key=value ...]")
		}
		set := map[string]string{}
		for _, kv := range a[2:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return errFlash("propose: %q is not key=value", kv)
			}
			set[k] = v
		}
		return common.Act(actions.Propose(m.svc, env, arg(a, 1), m.matrix.Candidate(env.Name), set))
	}},
	{names: []string{"approve"}, usage: "approve CHG [comment]", mutates: true, run: decideCommand(true)},
	{names: []string{"reject"}, usage: "reject CHG comment", mutates: true, run: decideCommand(false)},
	{names: []string{"run"}, usage: "run ID", mutates: true, run: updateCommand(true)},
	{names: []string{"cancel"}, usage: "cancel ID", mutates: true, run: updateCommand(false)},
	{names: []string{"rollback", "roll-back"}, usage: "rollback ENV [VERSION]", mutates: true, run: func(m *Model, a []string) tea.Cmd {
		env, ok := m.findEnv(arg(a, 0))
		if !ok {
			return errFlash("usage: rollback ENV [VERSION]")
		}
		if arg(a, 1) == "" { // the version the pair's history returns to, named in the dialog
			return actions.RollbackFromHistory(m.common, m.svc, m.svc, env)
		}
		return common.Act(actions.Rollback(m.svc, env, arg(a, 1), ""))
	}},
	{names: []string{"sync"}, usage: "sync", mutates: true, run: func(m *Model, a []string) tea.Cmd {
		return common.Act(actions.Sync(m.svc))
	}},
	{names: []string{"retry"}, usage: "retry [ID]", mutates: true, run: func(m *Model, a []string) tea.Cmd {
		id, _ := strconv.ParseInt(arg(a, 0), 10, 64)
		return common.Act(actions.RetryOutbox(m.svc, id))
	}},
	{names: []string{"changes", "mirror"}, usage: "changes", run: func(m *Model, a []string) tea.Cmd {
		return common.Navigate(common.PageChanges, "")
	}},
	{names: []string{"audit"}, usage: "audit", run: func(m *Model, a []string) tea.Cmd {
		return common.Navigate(common.PageAudit, "")
	}},
	{names: []string{"outbox", "conn", "connection"}, usage: "outbox", run: func(m *Model, a []string) tea.Cmd {
		return common.Navigate(common.PageOutbox, "")
	}},
	{names: []string{"alerts", "alert"}, usage: "alerts [ENV]", run: func(m *Model, a []string) tea.Cmd {
		// Alertmanager's alerts: every environment's, or one pair's.
		if arg(a, 0) == "" {
			return common.Navigate(common.PageAlerts, "")
		}
		env, ok := m.findEnv(arg(a, 0))
		if !ok {
			return errFlash("no environment matches %q", arg(a, 0))
		}
		return common.Navigate(common.PageAlerts, env.Name)
	}},
	{names: []string{"monitor", "log", "logs", "mon"}, usage: "monitor [RUN]", run: func(m *Model, a []string) tea.Cmd {
		return common.Navigate(common.PageMonitor, arg(a, 0))
	}},
	{names: []string{"quit", "q", "exit"}, usage: "quit", run: func(m *Model, a []string) tea.Cmd { return tea.Quit }},
}

// paletteHelp lists the palette's commands (shown while typing).
var paletteHelp = func() string {
	us := make([]string, len(paletteCommands))
	for i, c := range paletteCommands {
		us[i] = c.usage
	}
	return strings.Join(us, " · ")
}()

// command turns a palette line into a command. It does no I/O itself:
// commands that need an update look it up in the returned tea.Cmd.
func (m *Model) command(line string) tea.Cmd {
	f := strings.Fields(line)
	if len(f) == 0 {
		return nil
	}
	if c, ok := lookupPalette(f[0]); ok {
		return c.run(m, f[1:])
	}
	return errFlash("unknown command %q: %s", f[0], paletteHelp)
}

func lookupPalette(name string) (paletteCommand, bool) {
	name = strings.ToLower(name)
	for _, c := range paletteCommands {
		if slices.Contains(c.names, name) {
			return c, true
		}
	}
	return paletteCommand{}, false
}

func arg(a []string, i int) string {
	if i < len(a) {
		return a[i]
	}
	return ""
}

func errFlash(format string, a ...any) tea.Cmd {
	return common.Flash(common.LevelError, fmt.Sprintf(format, a...))
}

func decideCommand(approve bool) func(m *Model, a []string) tea.Cmd {
	verb := map[bool]string{true: "approve", false: "reject"}[approve]
	return func(m *Model, a []string) tea.Cmd {
		if arg(a, 0) == "" {
			return errFlash("usage: %s CHG0030012", verb)
		}
		d := actions.Decide(m.svc, strings.ToUpper(arg(a, 0)), approve)
		if len(a) > 1 {
			d.Inputs[0].Value = strings.Join(a[1:], " ")
		}
		return common.Act(d)
	}
}

// updateCommand is run or cancel: the update is looked up in the command.
func updateCommand(run bool) func(m *Model, a []string) tea.Cmd {
	verb := map[bool]string{true: "run", false: "cancel"}[run]
	return func(m *Model, a []string) tea.Cmd {
		if arg(a, 0) == "" {
			return errFlash("usage: %s UPDATE-ID or CHG…", verb)
		}
		c, svc, envs, sink := m.common, m.svc, m.envList, m.monitor.Sink()
		id := arg(a, 0)
		return func() tea.Msg {
			ctx, cancel := c.Context()
			defer cancel()
			u, err := svc.GetUpdate(ctx, id)
			if err != nil {
				return common.FlashMsg{Level: common.LevelError, Text: err.Error()}
			}
			gated := requiresChange(envs, u.Environment)
			if run {
				return common.ActionMsg{Action: actions.Run(svc, u, gated, sink)}
			}
			return common.ActionMsg{Action: actions.Cancel(svc, u, gated)}
		}
	}
}

// findEnv finds an environment by name or unique prefix ("prod").
func (m *Model) findEnv(name string) (ops.Environment, bool) {
	if name == "" {
		return ops.Environment{}, false
	}
	var found []ops.Environment
	for _, e := range m.envList {
		if e.Name == name {
			return e, true
		}
		if strings.HasPrefix(e.Name, name) {
			found = append(found, e)
		}
	}
	if len(found) == 1 {
		return found[0], true
	}
	return ops.Environment{}, false
}

// requiresChange reports whether env is gated by a change.
func requiresChange(envs []ops.Environment, env string) bool {
	for _, e := range envs {
		if e.Name == env {
			return e.RequiresChange
		}
	}
	return false
}
