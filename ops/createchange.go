package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ResumableCreator is implemented by change systems that raise a change
// exactly once across attempts and processes when ops keeps, between
// attempts, what each one learnt (in the outbox item). Without it a create
// whose answer was lost is looked up at once and re-sent if not found,
// which duplicates the change on an instance that commits it late.
type ResumableCreator interface {
	// CreateSettle is how long after a create whose outcome is unknown a
	// look-up that finds nothing can be trusted (longer than any plausible
	// commit delay).
	CreateSettle() time.Duration
	// ResumeCreateChange looks the change up — known is the sys_id an
	// earlier answer named, if any — and creates it only when it is not
	// found and mayCreate holds. Once found or made, duplicates of the same
	// correlation id are canceled and the change's fields completed.
	ResumeCreateChange(ctx context.Context, req ChangeRequest, known string, mayCreate bool) (Change, CreateOutcome, error)
}

// CreateOutcome is what one ResumeCreateChange attempt did.
type CreateOutcome struct {
	// Sent reports a create whose outcome is still unknown.
	Sent bool
	// SysID and Number name the change once an answer named it, even when
	// the attempt then failed.
	SysID, Number string
	// Duplicates are the numbers of changes of the same create that were
	// canceled as duplicates of the one kept.
	Duplicates []string
}

// createProgress is what earlier attempts of a create learnt, kept in the
// pending outbox item's result.
type createProgress struct {
	SysID  string `json:"sys_id,omitempty"`
	Number string `json:"number,omitempty"`
	// UnknownSince is when the last create whose outcome is unknown was
	// sent; no create is sent again until the change system's settle time
	// has passed since.
	UnknownSince time.Time `json:"unknown_since,omitzero"`
	// Sends counts creates sent with an unknown outcome.
	Sends int `json:"sends,omitempty"`
}

// outboxProgressStore is implemented by stores that keep a pending item's
// progress between attempts.
type outboxProgressStore interface {
	SaveOutboxProgress(ctx context.Context, id int64, progress any) error
}

// errCreateWaiting explains a create held back while an earlier one may
// still commit.
var errCreateWaiting = errors.New("waiting for an earlier create to commit")

// raiseChange performs one attempt at the create of an outbox item. With a
// ResumableCreator and a store that keeps progress, a create whose outcome
// was unknown is not sent again before the settle time has passed —
// delivery passes meanwhile only look it up — and the sys_id an answer
// named is kept for the next attempt.
func (s *Service) raiseChange(ctx context.Context, it OutboxItem, req ChangeRequest) (Change, []string, error) {
	rc, ok := s.changes.(ResumableCreator)
	ps, pok := s.store.(outboxProgressStore)
	if !ok || !pok {
		ch, err := s.changes.CreateChange(ctx, req)
		return ch, nil, err
	}
	var prog createProgress
	if len(it.Result) > 0 {
		_ = json.Unmarshal(it.Result, &prog) // a result that is not progress means nothing learnt
	}
	until := prog.UnknownSince.Add(rc.CreateSettle())
	mayCreate := prog.UnknownSince.IsZero() || !s.now().Before(until)
	ch, out, err := rc.ResumeCreateChange(ctx, req, prog.SysID, mayCreate)
	if err == nil {
		return ch, out.Duplicates, nil
	}
	next := prog
	if out.SysID != "" {
		next.SysID, next.Number = out.SysID, out.Number
	}
	if out.Sent {
		next.UnknownSince = s.now()
		next.Sends++
	}
	if next != prog {
		// The instance may have acted: keep what we learnt even if the
		// caller gave up.
		if perr := ps.SaveOutboxProgress(context.WithoutCancel(ctx), it.ID, next); perr != nil {
			return Change{}, nil, errors.Join(err, perr)
		}
	}
	if !mayCreate {
		return Change{}, nil, fmt.Errorf("%w (sent %s; not sent again before %s): %w",
			errCreateWaiting, prog.UnknownSince.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339), err)
	}
	return Change{}, nil, err
}
