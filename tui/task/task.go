// Package task runs the console's actions as tasks (gh-dash's
// components/tasks): each runs in a command with the spinner on and ends
// in one common.TaskDoneMsg; the status line lists what is running.
package task

import (
	"context"
	"errors"
	"strings"

	"github.com/charmbracelet/bubbles/spinner"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/common"
)

// Model is the set of running tasks and their spinner.
type Model struct {
	common  common.Common
	spinner spinner.Model
	titles  map[int]string
	next    int
}

// New builds an idle task list.
func New(c common.Common) Model {
	return Model{
		common: c, titles: map[int]string{},
		spinner: spinner.New(spinner.WithSpinner(spinner.MiniDot), spinner.WithStyle(c.Styles.Prompt)),
	}
}

// Start runs a with the inputs' values in a command. Short actions are
// bounded by the read timeout, long ones (a run) only by the console's
// context.
func (m *Model) Start(a common.Action, values []string) tea.Cmd {
	m.next++
	id := m.next
	m.titles[id] = a.Title
	ctx, timeout := m.common.Ctx, m.common.Timeout
	if ctx == nil {
		ctx = context.Background()
	}
	run := func() tea.Msg {
		c, cancel := ctx, context.CancelFunc(func() {})
		if !a.Long {
			c, cancel = context.WithTimeout(ctx, timeout)
		}
		defer cancel()
		res, err := a.Do(c, values)
		done := common.TaskDoneMsg{ID: id, Title: a.Title, Result: res, Err: err}
		if err == nil && a.After != nil {
			done.After = a.After(res)
		}
		return done
	}
	if len(m.titles) == 1 {
		return tea.Batch(run, m.spinner.Tick)
	}
	return run
}

// Len is how many tasks run.
func (m Model) Len() int { return len(m.titles) }

// Update ends a task on its TaskDoneMsg and turns the spinner while any
// runs.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case common.TaskDoneMsg:
		delete(m.titles, msg.ID)
	case spinner.TickMsg:
		if len(m.titles) == 0 {
			return m, nil
		}
		var cmd tea.Cmd
		m.spinner, cmd = m.spinner.Update(msg)
		return m, cmd
	}
	return m, nil
}

// View is the spinner and the running tasks' titles, oldest first ("" when
// idle).
func (m Model) View() string {
	if len(m.titles) == 0 {
		return ""
	}
	titles := make([]string, 0, len(m.titles))
	for id := 1; id <= m.next; id++ {
		if t, ok := m.titles[id]; ok {
			titles = append(titles, t)
		}
	}
	return m.spinner.View() + " " + strings.Join(titles, ", ") + "…"
}

// Describe turns a task's error into words an operator can act on.
func Describe(err error) string {
	if h, ok := ops.HintOf(err); ok {
		if t := hintText(h); t != "" {
			return describeCause(err) + "; " + t
		}
	}
	return describeCause(err)
}

// hintText phrases a domain hint in the console's terms (palette commands).
func hintText(h ops.Hint) string {
	switch h.Kind {
	case ops.HintSync:
		return "sync first (:sync)"
	case ops.HintForce:
		return "the release is already there: nothing to redeploy from the console"
	case ops.HintSupersede:
		return "cancel it first (:cancel " + h.Subject + ")"
	case ops.HintComment:
		return "type a comment"
	case ops.HintConfigKey:
		return "check the key " + h.Subject
	case ops.HintReleaseHistory:
		return "see the environment's releases"
	}
	return ""
}

func describeCause(err error) string {
	switch {
	case errors.Is(err, ops.ErrApprovalPending):
		return "waiting for approval: " + err.Error()
	case errors.Is(err, ops.ErrBlocked):
		return "blocked: " + err.Error()
	case errors.Is(err, ops.ErrRunFailed):
		return err.Error() + " (see the run monitor and the update's incident)"
	case errors.Is(err, ops.ErrNotFound):
		return "not found: " + err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return "ServiceNow or the store did not answer in time; the write waits in the outbox if it was queued"
	default:
		return err.Error()
	}
}
