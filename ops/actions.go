package ops

import (
	"context"
	"fmt"
)

// Cancel withdraws an update that has not started running. For a gated
// environment its change is moved to Canceled through the outbox.
func (s *Service) Cancel(ctx context.Context, idOrChange, reason string) (Update, error) {
	u, err := s.store.GetUpdate(ctx, idOrChange)
	if err != nil {
		return u, err
	}
	if !u.State.CanTransition(UpdateCanceled) {
		return u, fmt.Errorf("update %s is %s and cannot be canceled: %w", u.ID, u.State, ErrIllegalTransition)
	}
	if u.BundleID != "" {
		return s.cancelBundle(ctx, u, reason) // bundle.go
	}
	env, _ := s.Environment(u.Environment)
	err = s.store.Atomic(ctx, func(tx Tx) error {
		cur, err := tx.GetUpdate(ctx, u.ID)
		if err != nil {
			return err
		}
		u, err = s.cancelTx(ctx, tx, env, cur, reason)
		return err
	})
	if err == nil {
		s.kickOutbox(ctx, u.ID)
	}
	return u, err
}

// RollbackRequest asks to return an environment to an earlier release.
type RollbackRequest struct {
	Environment string
	// To is the version to return to; empty means the release before the
	// current one.
	To string
	// ChangeType overrides the environment's change type (e.g. emergency).
	ChangeType ChangeType
	// Supersede cancels the environment's open update instead of refusing
	// (see ProposeRequest.Supersede).
	Supersede bool
}

// ProposeRollback proposes an update back to an earlier release of the
// environment, with that release's config. It is an update like any
// other: on a gated environment it raises its own change and runs only once
// approved. Rolling back never bypasses the change process.
func (s *Service) ProposeRollback(ctx context.Context, req RollbackRequest) (Proposal, error) {
	env, err := s.Environment(req.Environment)
	if err != nil {
		return Proposal{}, err
	}
	rels, err := s.store.Releases(ctx, env.Name, 0)
	if err != nil {
		return Proposal{}, err
	}
	if len(rels) == 0 {
		return Proposal{}, fmt.Errorf("%s has no release history to roll back to", env.Name)
	}
	current := rels[0]
	var target *Release
	for i := range rels {
		r := rels[i]
		if r.ID == current.ID || r.Status == ReleaseRolledBack {
			continue
		}
		if req.To == "" && r.Version != current.Version || r.Version == req.To {
			target = &rels[i]
			break
		}
	}
	if target == nil {
		if req.To != "" {
			return Proposal{}, withHint(fmt.Errorf("%s never ran %s", env.Name, req.To), HintReleaseHistory, env.Name)
		}
		return Proposal{}, fmt.Errorf("%s has no earlier release than %s", env.Name, current.Version)
	}
	return s.Propose(ctx, ProposeRequest{
		Environment: env.Name, Version: target.Version, ChangeType: req.ChangeType,
		Rollback: true, Config: target.Config, Supersede: req.Supersede,
	})
}

// cancelTx cancels cur inside tx: for a gated environment its change is
// moved to Canceled through the outbox, with a work note saying why.
func (s *Service) cancelTx(ctx context.Context, tx Tx, env Environment, cur Update, reason string) (Update, error) {
	expect := cur.State
	var err error
	if cur.State, err = cur.State.Transition(UpdateCanceled); err != nil {
		return cur, err
	}
	cur.Reason = reason
	if err := tx.SaveUpdate(ctx, cur, expect); err != nil {
		return cur, err
	}
	if env.RequiresChange && (cur.ChangeSysID != "" || expect == UpdateProposed) {
		if err := s.enqueue(ctx, tx, cur.ID, OutboxWorkNote, notePayload{UpdateID: cur.ID, Note: "Canceled in daytwo by " + s.cfg.Actor + ": " + orNone(reason)}); err != nil {
			return cur, err
		}
		if err := s.enqueue(ctx, tx, cur.ID, OutboxMoveChange, movePayload{UpdateID: cur.ID, To: ChangeCanceled}); err != nil {
			return cur, err
		}
	}
	return cur, s.audit(ctx, tx, Event{
		Action: "update.canceled", Subject: cur.ID, Environment: cur.Environment, UpdateID: cur.ID,
		ChangeNumber: cur.ChangeNumber, Result: "ok", Detail: map[string]any{"reason": reason, "from": string(expect)},
	})
}
