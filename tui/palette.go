package tui

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/actions"
	"github.com/daytwo/daytwo/tui/common"
)

// paletteHelp lists the palette's commands (shown while typing).
const paletteHelp = "env NAME · chg CHG… · upd ID · propose ENV VERSION [k=v] · approve/reject CHG · run ID · cancel ID · rollback ENV [VERSION] · sync · retry · changes · audit · outbox · monitor · quit"

// command turns a palette line into a command. It does no I/O itself:
// commands that need an update look it up in the returned tea.Cmd.
func (m *Model) command(line string) tea.Cmd {
	f := strings.Fields(line)
	if len(f) == 0 {
		return nil
	}
	arg := func(i int) string {
		if i < len(f) {
			return f[i]
		}
		return ""
	}
	errf := func(format string, a ...any) tea.Cmd {
		return common.Flash(common.LevelError, fmt.Sprintf(format, a...))
	}
	act := func(a common.Action) tea.Cmd { return func() tea.Msg { return common.ActionMsg{Action: a} } }
	switch strings.ToLower(f[0]) {
	case "q", "quit", "exit":
		return tea.Quit
	case "env", "envs", "environments":
		return common.Navigate(common.PageEnvironments, arg(1))
	case "upd", "update", "updates", "u":
		if id := arg(1); strings.HasPrefix(id, "u-") || strings.HasPrefix(strings.ToUpper(id), "CHG") {
			return common.Navigate(common.PageDetail, id)
		}
		if arg(1) != "" {
			env, ok := m.findEnv(arg(1))
			if !ok {
				return errf("no environment matches %q", arg(1))
			}
			return common.Navigate(common.PageUpdates, env.Name)
		}
		return common.Navigate(common.PageUpdates, "")
	case "chg", "change", "show", "detail":
		if arg(1) == "" {
			return errf("usage: chg CHG0030012 (or an update id)")
		}
		id := arg(1)
		if !strings.HasPrefix(id, "u-") {
			id = strings.ToUpper(id)
		}
		return common.Navigate(common.PageDetail, id)
	case "changes", "mirror":
		return common.Navigate(common.PageChanges, "")
	case "audit":
		return common.Navigate(common.PageAudit, "")
	case "outbox", "conn", "connection":
		return common.Navigate(common.PageOutbox, "")
	case "monitor", "log", "logs", "mon":
		return common.Navigate(common.PageMonitor, arg(1))
	case "sync":
		return act(actions.Sync(m.svc))
	case "retry":
		id, _ := strconv.ParseInt(arg(1), 10, 64)
		return act(actions.RetryOutbox(m.svc, id))
	case "propose":
		env, ok := m.findEnv(arg(1))
		if !ok || arg(2) == "" {
			return errf("usage: propose ENV VERSION [key=value ...]")
		}
		set := map[string]string{}
		for _, kv := range f[3:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return errf("propose: %q is not key=value", kv)
			}
			set[k] = v
		}
		return act(actions.Propose(m.svc, env, arg(2), set))
	case "approve", "reject":
		if arg(1) == "" {
			return errf("usage: %s CHG0030012", f[0])
		}
		a := actions.Decide(m.svc, strings.ToUpper(arg(1)), strings.ToLower(f[0]) == "approve")
		if len(f) > 2 {
			a.Inputs[0].Value = strings.Join(f[2:], " ")
		}
		return act(a)
	case "rollback", "roll-back":
		env, ok := m.findEnv(arg(1))
		if !ok {
			return errf("usage: rollback ENV [VERSION]")
		}
		return act(actions.Rollback(m.svc, env, arg(2)))
	case "run", "cancel":
		if arg(1) == "" {
			return errf("usage: %s UPDATE-ID or CHG…", f[0])
		}
		run := strings.ToLower(f[0]) == "run"
		c, svc, gated, sink := m.common, m.svc, m.gated, m.monitor.Sink()
		id := arg(1)
		return func() tea.Msg {
			ctx, cancel := c.Context()
			defer cancel()
			u, err := svc.GetUpdate(ctx, id)
			if err != nil {
				return common.FlashMsg{Level: common.LevelError, Text: err.Error()}
			}
			if run {
				return common.ActionMsg{Action: actions.Run(svc, u, gated[u.Environment], sink)}
			}
			return common.ActionMsg{Action: actions.Cancel(svc, u, gated[u.Environment])}
		}
	}
	return errf("unknown command %q: %s", f[0], paletteHelp)
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

// updateGetter is the lookup the palette's run/cancel commands need.
type updateGetter interface {
	GetUpdate(ctx context.Context, idOrChange string) (ops.Update, error)
}

var _ updateGetter = (*ops.Service)(nil)
