// Package actions builds the console's actions (propose, approve, reject,
// run, cancel, roll back, retry the outbox, sync) as common.Action values:
// what they do, whether they are dangerous and what must be typed to
// confirm them. Screens and the command palette share these builders so
// that a key and a palette command behave the same.
package actions

import (
	"context"
	"errors"
	"fmt"
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/common"
)

// Service is what the actions call; *ops.Service implements it.
type Service interface {
	Propose(ctx context.Context, req ops.ProposeRequest) (ops.Proposal, error)
	Decide(ctx context.Context, req ops.DecideRequest) (ops.Change, error)
	DeliverOutbox(ctx context.Context, onlyKeys ...string) (ops.DeliveryStats, error)
	Run(ctx context.Context, req ops.RunRequest) (ops.RunResult, error)
	Cancel(ctx context.Context, idOrChange, reason string) (ops.Update, error)
	ProposeRollback(ctx context.Context, req ops.RollbackRequest) (ops.Proposal, error)
	RetryOutbox(ctx context.Context, id int64) (int, ops.DeliveryStats, error)
	Decision(ctx context.Context, number string) (ops.DecisionStatus, error)
	DecidesAs() string
	SyncOnce(ctx context.Context) (ops.SyncReport, error)
}

var _ Service = (*ops.Service)(nil)

// Propose proposes version (and key=value settings) for env. It is
// dangerous everywhere (an ungated proposal is approved and may be
// auto-run at once); on a gated environment the environment's name must
// be typed to confirm. With no version the dialog asks for one, filled
// in with suggest (the promotion candidate: what the environment promotes
// from runs now) when there is one. Once it succeeds the updates screen
// opens on the update it created.
func Propose(svc Service, env ops.Environment, version, suggest string, set map[string]string) common.Action {
	var created string // written by Do, read by After (one goroutine, in order)
	a := common.Action{
		Title:       "Propose " + env.Name + " " + orAsk(version),
		Description: "Plan the update, evaluate policies and (gated) raise a ServiceNow change.",
		Dangerous:   true,
		Do: func(ctx context.Context, values []string) (string, error) {
			v := version
			if v == "" && len(values) > 0 {
				v = strings.TrimSpace(values[0])
			}
			p, err := svc.Propose(ctx, ops.ProposeRequest{Environment: env.Name, Version: v, Set: set})
			if err != nil {
				return "", err
			}
			created = p.Update.ID
			if env.RequiresChange {
				return fmt.Sprintf("proposed %s: %s %s (change queued for ServiceNow)", p.Update.ID, env.Name, v), nil
			}
			return fmt.Sprintf("proposed %s: %s %s (approved: environment is not gated)", p.Update.ID, env.Name, v), nil
		},
	}
	if env.RequiresChange {
		a.Confirm = env.Name
		a.Description = "Raises a ServiceNow change for " + env.Name + ": it runs only once approved."
	}
	if version == "" {
		f := common.Field{Label: "Version", Placeholder: "version to roll out", Required: true, Value: suggest}
		if suggest != "" && env.PromoteFrom != "" {
			a.Description += " Suggested: " + suggest + ", what " + env.PromoteFrom + " runs now (the promotion candidate)."
		}
		a.Inputs = []common.Field{f}
	}
	a.After = func(string) *common.NavigateMsg {
		return &common.NavigateMsg{Page: common.PageUpdates, Arg: env.Name, Select: created}
	}
	return a
}

func orAsk(v string) string {
	if v == "" {
		return "(version)"
	}
	return v
}

// Decide approves or rejects a change as the configured ServiceNow user,
// then pushes the decision at once. The change number must be typed. A
// refusal (the user holds no pending approval, four eyes, ServiceNow said
// no) is the action's error, shown where the operator acted.
func Decide(svc Service, change string, approve bool) common.Action {
	verb, past := "Approve", "approved"
	if !approve {
		verb, past = "Reject", "rejected"
	}
	as := svc.DecidesAs()
	return common.Action{
		Title:       verb + " " + change + " as " + as,
		Description: "The decision is made in ServiceNow as " + as + " (servicenow.approver) and audited.",
		Dangerous:   true,
		Confirm:     change,
		Inputs:      []common.Field{{Label: "Comment", Placeholder: "why", Required: !approve}},
		Do: func(ctx context.Context, values []string) (string, error) {
			comment := ""
			if len(values) > 0 {
				comment = strings.TrimSpace(values[0])
			}
			ch, err := svc.Decide(ctx, ops.DecideRequest{Change: change, Approve: approve, Comment: comment})
			if err != nil {
				return "", err
			}
			_, derr := svc.DeliverOutbox(ctx, ch.Number)
			st, err := svc.Decision(ctx, ch.Number)
			if err != nil {
				return "", err
			}
			it := st.Item
			switch {
			case it.State == ops.OutboxDelivered:
				return fmt.Sprintf("%s %s in ServiceNow", past, ch.Number), nil
			case it.State == ops.OutboxFailed:
				return "", fmt.Errorf("%s of %s not delivered (outbox #%d): %s", strings.ToLower(verb), ch.Number, it.ID, it.LastError)
			case st.BlockedBy != nil:
				return "", fmt.Errorf("%s of %s queued (outbox #%d) but held back: #%d (%s) ahead of it was refused: %s; retry or discard it on the outbox screen",
					strings.ToLower(verb), ch.Number, it.ID, st.BlockedBy.ID, st.BlockedBy.Kind, st.BlockedBy.LastError)
			case derr != nil:
				return fmt.Sprintf("%s of %s queued; delivery deferred: %v", strings.ToLower(verb), ch.Number, derr), nil
			}
			return fmt.Sprintf("%s of %s queued in the outbox (ServiceNow did not take it yet)", strings.ToLower(verb), ch.Number), nil
		},
	}
}

// DiscardOutbox gives up an undelivered write so the writes behind it go
// on. The item's number must be typed.
func DiscardOutbox(svc Discarder, it ops.OutboxItem) common.Action {
	id := fmt.Sprint(it.ID)
	return common.Action{
		Title:       fmt.Sprintf("Discard outbox item #%d (%s on %s)", it.ID, it.Kind, it.Key),
		Description: "It will never be sent to ServiceNow; the writes queued after it on " + it.Key + " go on. Audited.",
		Dangerous:   true,
		Confirm:     id,
		Inputs:      []common.Field{{Label: "Reason", Placeholder: "why"}},
		Do: func(ctx context.Context, values []string) (string, error) {
			reason := ""
			if len(values) > 0 {
				reason = strings.TrimSpace(values[0])
			}
			d, err := svc.DiscardOutbox(ctx, it.ID, reason)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("discarded #%d (%s on %s): it will never be sent", d.ID, d.Kind, d.Key), nil
		},
	}
}

// Discarder gives up outbox items; *ops.Service implements it.
type Discarder interface {
	DiscardOutbox(ctx context.Context, id int64, reason string) (ops.OutboxItem, error)
}

var _ Discarder = (*ops.Service)(nil)

// Run runs an update. On a gated environment its change number (or the
// update id when there is none) must be typed. progress receives the run's
// events; it must not block.
func Run(svc Service, u ops.Update, gated bool, progress func(ops.RunEvent)) common.Action {
	a := common.Action{
		Title:       "Run " + u.ID + " (" + u.Environment + " " + u.Version + ")",
		Description: "Roll " + u.Environment + " out to " + u.Version + " batch by batch; roll back on failure.",
		Dangerous:   true,
		Long:        true,
		Follow:      &common.NavigateMsg{Page: common.PageMonitor},
		Do: func(ctx context.Context, _ []string) (string, error) {
			res, err := svc.Run(ctx, ops.RunRequest{Update: u.ID, Progress: progress})
			switch {
			case errors.Is(err, ops.ErrRunFailed):
				return "", fmt.Errorf("run %s of %s %s failed and was rolled back: %w", res.Run.ID, u.Environment, u.Version, err)
			case err != nil:
				return "", err
			}
			return fmt.Sprintf("run %s: %s is on %s (%s)", res.Run.ID, u.Environment, u.Version, res.Run.State), nil
		},
	}
	if gated {
		a.Confirm = common.Or(u.ChangeNumber, u.ID)
	}
	return a
}

// Cancel withdraws an update that has not started.
func Cancel(svc Service, u ops.Update, gated bool) common.Action {
	a := common.Action{
		Title:       "Cancel " + u.ID + " (" + u.Environment + " " + u.Version + ")",
		Description: "Withdraw the update; a gated update's change is canceled in ServiceNow.",
		Dangerous:   true,
		Inputs:      []common.Field{{Label: "Reason", Placeholder: "why"}},
		Do: func(ctx context.Context, values []string) (string, error) {
			reason := ""
			if len(values) > 0 {
				reason = values[0]
			}
			up, err := svc.Cancel(ctx, u.ID, reason)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("canceled %s", up.ID), nil
		},
	}
	if gated {
		a.Confirm = common.Or(u.ChangeNumber, u.ID)
	}
	return a
}

// Rollback proposes returning env to an earlier release: to, else
// target (the release before the current one, as the caller read it),
// else whatever ops picks as the previous release. The dialog names the
// version it will propose. On a gated environment it raises its own
// change and the environment's name must be typed. Once it succeeds the
// updates screen opens on the update it created.
func Rollback(svc Service, env ops.Environment, to, current string) common.Action {
	what := "the previous release"
	if to != "" {
		what = to
	}
	var created string
	a := common.Action{
		Title:       "Roll back " + env.Name + " to " + what,
		Description: "Propose an update back to an earlier release; it goes through the change process like any other.",
		Dangerous:   true,
		Do: func(ctx context.Context, _ []string) (string, error) {
			p, err := svc.ProposeRollback(ctx, ops.RollbackRequest{Environment: env.Name, To: to})
			if err != nil {
				return "", err
			}
			created = p.Update.ID
			return fmt.Sprintf("proposed rollback %s: %s back to %s", p.Update.ID, env.Name, p.Update.Version), nil
		},
	}
	if current != "" && to != "" {
		a.Description = "Propose " + env.Name + " " + current + " → " + to + "; it goes through the change process like any other."
	}
	if env.RequiresChange {
		a.Confirm = env.Name
	}
	a.After = func(string) *common.NavigateMsg {
		return &common.NavigateMsg{Page: common.PageUpdates, Arg: env.Name, Select: created}
	}
	return a
}

// RetryOutbox makes a failed write (or all, id 0) pending again and
// delivers what is due.
func RetryOutbox(svc Service, id int64) common.Action {
	what := "every failed write"
	if id > 0 {
		what = fmt.Sprintf("outbox item #%d", id)
	}
	return common.Action{
		Title:       "Retry " + what,
		Description: "Send the write(s) to ServiceNow again.",
		Dangerous:   true,
		Do: func(ctx context.Context, _ []string) (string, error) {
			n, st, err := svc.RetryOutbox(ctx, id)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("retried %d: %d delivered, %d retrying, %d failed", n, st.Delivered, st.Retrying, st.Failed), nil
		},
	}
}

// Sync runs one sync cycle now (deliver the outbox, mirror changes and
// approvals). It only pushes writes that were already decided, so it needs
// no confirmation, but it does write: disabled in read-only mode.
func Sync(svc Service) common.Action {
	return common.Action{
		Title:  "Sync with ServiceNow",
		Writes: true,
		Do: func(ctx context.Context, _ []string) (string, error) {
			r, err := svc.SyncOnce(ctx)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("synced: %d delivered, %d changes fetched, %d approvals, %d updates moved",
				r.Outbox.Delivered, r.Fetched, r.Approvals, r.Transitions), nil
		},
	}
}

// ReleaseHistory reads a pair's releases, newest first; *ops.Service
// implements it.
type ReleaseHistory interface {
	Releases(ctx context.Context, env string, limit int) ([]ops.Release, error)
}

var _ ReleaseHistory = (*ops.Service)(nil)

// RollbackTarget is the release a rollback returns to, picked the way
// ops.Service.ProposeRollback picks it from the same history (rels, newest
// first, rels[0] the current one): the newest earlier release that was
// not rolled back and runs another version. ok is false when there is
// none.
func RollbackTarget(rels []ops.Release) (ops.Release, bool) {
	if len(rels) == 0 {
		return ops.Release{}, false
	}
	for _, r := range rels[1:] {
		if r.Status != ops.ReleaseRolledBack && r.Version != rels[0].Version {
			return r, true
		}
	}
	return ops.Release{}, false
}

// RollbackFromHistory is a command that reads env's release history and
// asks for its rollback (Rollback) naming the current version and the one
// it returns to, which the proposal then asks for by name: the dialog says
// exactly what will be proposed. A pair with nothing to roll back to is
// said in a flash instead of a dialog.
func RollbackFromHistory(c common.Common, hist ReleaseHistory, svc Service, env ops.Environment) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := c.Context()
		defer cancel()
		rels, err := hist.Releases(ctx, env.Name, 0)
		if err != nil {
			return common.FlashMsg{Level: common.LevelError, Text: "roll back " + env.Name + ": " + err.Error()}
		}
		if len(rels) == 0 {
			return common.FlashMsg{Level: common.LevelWarn, Text: env.Name + " has no release history to roll back to"}
		}
		to, ok := RollbackTarget(rels)
		if !ok {
			return common.FlashMsg{Level: common.LevelWarn, Text: env.Name + " has no earlier release than " + rels[0].Version + " to roll back to"}
		}
		return common.ActionMsg{Action: Rollback(svc, env, to.Version, rels[0].Version)}
	}
}
