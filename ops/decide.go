package ops

import (
	"context"
	"fmt"
	"strings"
)

// DecideRequest approves or rejects a change as the configured ServiceNow
// user.
type DecideRequest struct {
	Change  string // number or sys_id of a mirrored change
	Approve bool
	Comment string
}

// Decide queues an approval or rejection of a mirrored change. With four
// eyes on, the configured user may not decide a change they requested.
// Rejections need a comment (ServiceNow requires one).
func (s *Service) Decide(ctx context.Context, req DecideRequest) (Change, error) {
	cs, err := s.decider()
	if err != nil {
		return Change{}, err
	}
	ch, err := s.store.GetChange(ctx, req.Change)
	if err != nil {
		return Change{}, fmt.Errorf("change %s is not in the local mirror (run `daytwo sync --once`): %w", req.Change, err)
	}
	if !req.Approve && strings.TrimSpace(req.Comment) == "" {
		return ch, fmt.Errorf("rejecting %s needs a comment (--comment)", ch.Number)
	}
	if s.cfg.FourEyes {
		me, err := cs.WhoAmI(ctx)
		if err != nil {
			return ch, fmt.Errorf("four eyes: cannot tell who daytwo acts as, so it cannot check that %s was requested by someone else: %w", ch.Number, err)
		}
		if me == ch.RequestedByID || (ch.RequestedByID == "" && strings.EqualFold(ch.RequestedBy, s.cfg.Username)) {
			return ch, fmt.Errorf("four eyes: %s was requested by %s, who may not also decide it; decide as another user (servicenow.approver or DAYTWO_SN_APPROVER_USER) or turn off servicenow.four_eyes: %w",
				ch.Number, orUnknown(ch.RequestedBy), ErrBlocked)
		}
	}
	if ch.State != ChangeAssess && ch.State != ChangeAuthorize {
		return ch, fmt.Errorf("%s is in state %s: only changes in Assess or Authorize await a decision: %w", ch.Number, ch.State, ErrBlocked)
	}
	item, err := NewOutboxItem(ch.Number, OutboxDecide, decidePayload{
		ChangeSysID: ch.SysID, Number: ch.Number, Approve: req.Approve, Comment: req.Comment, Actor: s.cfg.Actor,
	})
	if err != nil {
		return ch, err
	}
	err = s.store.Atomic(ctx, func(tx Tx) error {
		_, err := tx.Enqueue(ctx, item)
		return err
	})
	return ch, err
}
