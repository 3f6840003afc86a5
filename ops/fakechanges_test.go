package ops_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// fakeChanges is an in-memory change system for the domain's own tests:
// it keeps changes, their approvals, work notes and incidents, and can be
// told to fail the next calls (unavailable or refused). The end-to-end
// suites run the real client against the simulator; this one lets ops be
// tested on its own.
type fakeChanges struct {
	mu        sync.Mutex
	now       func() time.Time
	seq       int
	changes   map[string]*ops.Change // by sys_id
	notes     map[string][]string
	files     map[string][]string
	approvals map[string][]ops.Approval
	incidents []ops.IncidentRequest
	created   []ops.ChangeRequest
	calls     []string
	// failNext makes the next n write calls fail with err.
	failNext int
	failErr  error
	// refuse makes every call whose name is a key fail with ErrRefused.
	refuse map[string]bool
	// conflict is what conflict checks come to (zero: clear), conflicts
	// what a check that found some lists.
	conflict  ops.ConflictState
	conflicts []ops.Conflict
}

func newFakeChanges(now func() time.Time) *fakeChanges {
	return &fakeChanges{
		now: now, changes: map[string]*ops.Change{}, notes: map[string][]string{},
		files: map[string][]string{}, approvals: map[string][]ops.Approval{}, refuse: map[string]bool{},
	}
}

var _ ops.ChangeSystem = (*fakeChanges)(nil)

func (f *fakeChanges) write(name string) error {
	f.calls = append(f.calls, name)
	if f.refuse[name] {
		return fmt.Errorf("fake: %s not allowed: %w", name, ops.ErrRefused)
	}
	if f.failNext > 0 {
		f.failNext--
		return f.failErr
	}
	return nil
}

func (f *fakeChanges) touch(ch *ops.Change) ops.Change {
	f.seq++
	ch.SysUpdatedOn = f.now().UTC().Truncate(time.Second).Add(time.Duration(f.seq) * time.Millisecond)
	ch.SysModCount++
	return *ch
}

func (f *fakeChanges) CreateChange(_ context.Context, req ops.ChangeRequest) (ops.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.write("create"); err != nil {
		return ops.Change{}, err
	}
	for _, ch := range f.changes {
		if ch.CorrelationID == req.CorrelationID {
			return *ch, nil
		}
	}
	f.created = append(f.created, req)
	n := len(f.changes) + 1
	ch := &ops.Change{
		SysID: fmt.Sprintf("sys-%03d", n), Number: fmt.Sprintf("CHG%07d", n), Type: req.Type, State: ops.ChangeNew,
		Approval: "not requested", ShortDescription: req.ShortDescription, CmdbCI: req.CmdbCI, CorrelationID: req.CorrelationID,
		StartDate: req.Start, EndDate: req.End, Active: true, RequestedBy: "daytwo", RequestedByID: "sys-user-daytwo",
	}
	f.changes[ch.SysID] = ch
	return f.touch(ch), nil
}

func (f *fakeChanges) RequestApproval(_ context.Context, sysID string) (ops.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.write("request_approval"); err != nil {
		return ops.Change{}, err
	}
	ch := f.changes[sysID]
	if ch.State == ops.ChangeNew {
		ch.State, ch.Approval = ops.ChangeAssess, "requested"
		if ch.Type == ops.ChangeEmergency {
			ch.State = ops.ChangeAuthorize
		}
		f.approvals[sysID] = []ops.Approval{{SysID: "appr-" + sysID, ChangeSysID: sysID, Approver: "ops.lead", State: "requested"}}
	}
	return f.touch(ch), nil
}

// approve approves a change as its approver would in ServiceNow.
func (f *fakeChanges) approve(number string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.changes {
		if ch.Number == number {
			ch.State, ch.Approval = ops.ChangeScheduled, "approved"
			for i := range f.approvals[ch.SysID] {
				f.approvals[ch.SysID][i].State = "approved"
			}
			f.touch(ch)
		}
	}
}

func (f *fakeChanges) MoveChange(_ context.Context, sysID string, to ops.ChangeState) (ops.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.write("move"); err != nil {
		return ops.Change{}, err
	}
	ch := f.changes[sysID]
	ch.State = to
	return f.touch(ch), nil
}

func (f *fakeChanges) AddWorkNote(_ context.Context, sysID, note string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.write("note"); err != nil {
		return err
	}
	f.notes[sysID] = append(f.notes[sysID], note)
	return nil
}

func (f *fakeChanges) AttachFile(_ context.Context, sysID, name, _ string, _ []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.write("attach"); err != nil {
		return err
	}
	f.files[sysID] = append(f.files[sysID], name)
	return nil
}

func (f *fakeChanges) CloseChange(_ context.Context, sysID, code, _ string) (ops.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.write("close"); err != nil {
		return ops.Change{}, err
	}
	ch := f.changes[sysID]
	ch.State, ch.CloseCode, ch.Active = ops.ChangeClosed, code, false
	return f.touch(ch), nil
}

func (f *fakeChanges) DecideChange(_ context.Context, sysID string, approve bool, _ string) (ops.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.write("decide"); err != nil {
		return ops.Change{}, err
	}
	ch := f.changes[sysID]
	if approve {
		ch.State, ch.Approval = ops.ChangeScheduled, "approved"
	} else {
		ch.State, ch.Approval = ops.ChangeCanceled, "rejected"
	}
	return f.touch(ch), nil
}

func (f *fakeChanges) CreateIncident(_ context.Context, req ops.IncidentRequest) (ops.Incident, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.write("incident"); err != nil {
		return ops.Incident{}, err
	}
	for i, in := range f.incidents {
		if in.CorrelationID == req.CorrelationID {
			return ops.Incident{SysID: fmt.Sprintf("inc-%d", i+1), Number: fmt.Sprintf("INC%07d", i+1)}, nil
		}
	}
	f.incidents = append(f.incidents, req)
	n := len(f.incidents)
	return ops.Incident{
		SysID: fmt.Sprintf("inc-%d", n), Number: fmt.Sprintf("INC%07d", n), ShortDescription: req.ShortDescription,
		SysUpdatedOn: f.now().UTC(),
	}, nil
}

func (f *fakeChanges) GetChange(_ context.Context, sysID string) (ops.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch, ok := f.changes[sysID]
	if !ok {
		return ops.Change{}, fmt.Errorf("fake: change %s: %w", sysID, ops.ErrNotFound)
	}
	return *ch, nil
}

func (f *fakeChanges) MirrorChanges(_ context.Context, req ops.MirrorRequest, fn func([]ops.Change, ops.Watermark) error) (ops.MirrorStats, error) {
	f.mu.Lock()
	var page []ops.Change
	for _, ch := range f.changes {
		if !strings.HasPrefix(ch.CorrelationID, req.CorrelationPrefix) {
			continue
		}
		if ch.SysUpdatedOn.After(req.Since.UpdatedOn) || (ch.SysUpdatedOn.Equal(req.Since.UpdatedOn) && ch.SysID > req.Since.SysID) {
			page = append(page, *ch)
		}
	}
	f.mu.Unlock()
	sort.Slice(page, func(i, j int) bool {
		if !page[i].SysUpdatedOn.Equal(page[j].SysUpdatedOn) {
			return page[i].SysUpdatedOn.Before(page[j].SysUpdatedOn)
		}
		return page[i].SysID < page[j].SysID
	})
	st := ops.MirrorStats{Requests: 1, Rows: len(page), Cursor: req.Since}
	if len(page) == 0 {
		return st, nil
	}
	last := page[len(page)-1]
	st.Cursor = ops.Watermark{UpdatedOn: last.SysUpdatedOn, SysID: last.SysID}
	return st, fn(page, st.Cursor)
}

func (f *fakeChanges) OpenApprovals(_ context.Context, prefix string) ([]ops.Approval, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ops.Approval
	for id, as := range f.approvals {
		if ch := f.changes[id]; ch != nil && ch.Active && strings.HasPrefix(ch.CorrelationID, prefix) {
			out = append(out, as...)
		}
	}
	return out, nil
}

func (f *fakeChanges) DeletedChanges(context.Context, time.Time) ([]string, error) { return nil, nil }
func (f *fakeChanges) Ping(context.Context) error                                  { return nil }
func (f *fakeChanges) WhoAmI(context.Context) (string, error)                      { return "sys-user-daytwo", nil }

func (f *fakeChanges) StartConflictCheck(_ context.Context, sysID string) (ops.ConflictCheck, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "conflict_start")
	return ops.ConflictCheck{ChangeSysID: sysID, State: ops.ConflictRunning, Worker: "worker-" + sysID, StartedAt: f.now(), Conflicts: []ops.Conflict{}}, nil
}

func (f *fakeChanges) PollConflictCheck(_ context.Context, chk ops.ConflictCheck, _ time.Duration) (ops.ConflictCheck, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "conflict_poll")
	chk.State, chk.LastRun = ops.ConflictClear, f.now()
	switch f.conflict {
	case ops.ConflictRunning:
		chk.State = ops.ConflictRunning
	case ops.ConflictFailed:
		chk.State, chk.Message = ops.ConflictFailed, "the worker is gone"
	case ops.ConflictFound:
		chk.State, chk.Conflicts = ops.ConflictFound, append([]ops.Conflict(nil), f.conflicts...)
	}
	return chk, nil
}

// setConflict sets what the next conflict checks come to.
func (f *fakeChanges) setConflict(st ops.ConflictState, cs ...ops.Conflict) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conflict, f.conflicts = st, cs
}

// edit changes a change as somebody in ServiceNow would.
func (f *fakeChanges) edit(number string, fn func(*ops.Change)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.changes {
		if ch.Number == number {
			fn(ch)
			f.touch(ch)
		}
	}
}

func (f *fakeChanges) change(number string) ops.Change {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.changes {
		if ch.Number == number {
			return *ch
		}
	}
	return ops.Change{}
}

func (f *fakeChanges) workNotes(number string) []string {
	ch := f.change(number)
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.notes[ch.SysID]...)
}
