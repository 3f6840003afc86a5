package itsm

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// JournalEntry is one work note or comment (sys_journal_field).
type JournalEntry struct {
	SysID     string
	Element   string // work_notes or comments
	Value     string
	CreatedOn time.Time
	CreatedBy string
}

// ListJournal returns a change's work notes and comments, oldest first. The
// record's own work_notes field reads back empty in value mode (trap 5), so
// history comes from sys_journal_field.
func (c *Client) ListJournal(ctx context.Context, changeSysID string) ([]JournalEntry, error) {
	v, err := queryValue("sys_id", changeSysID)
	if err != nil {
		return nil, err
	}
	recs, err := c.listAll(ctx, TableJournal,
		"element_id="+v+"^elementINwork_notes,comments",
		[]string{"sys_id", "element", "element_id", "value", "sys_created_on", "sys_created_by"})
	if err != nil {
		return nil, fmt.Errorf("itsm: list journal of %s: %w", changeSysID, err)
	}
	out := make([]JournalEntry, 0, len(recs))
	for _, r := range recs {
		if id := r.Get("element_id"); id != "" && id != changeSysID {
			continue
		}
		out = append(out, JournalEntry{
			SysID: r.Get("sys_id"), Element: r.Get("element"), Value: r.Get("value"),
			CreatedOn: r.Time("sys_created_on"), CreatedBy: r.Get("sys_created_by"),
		})
	}
	sortJournal(out)
	return out, nil
}

// sortJournal orders by creation time, then sys_id (listAll pages by sys_id).
func sortJournal(es []JournalEntry) {
	slices.SortStableFunc(es, func(a, b JournalEntry) int {
		if c := a.CreatedOn.Compare(b.CreatedOn); c != 0 {
			return c
		}
		return strings.Compare(a.SysID, b.SysID)
	})
}
