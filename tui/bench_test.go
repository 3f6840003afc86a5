package tui

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/tui/common"
)

// mirror100k fills the store with 100k mirrored changes.
func mirror100k(b testing.TB, f *fixture) {
	b.Helper()
	ctx := context.Background()
	const n, batch = 100_000, 5_000
	for i := 0; i < n; i += batch {
		chs := make([]ops.Change, 0, batch)
		for j := i; j < i+batch; j++ {
			chs = append(chs, ops.Change{SysID: fmt.Sprintf("%032x", j), Number: fmt.Sprintf("CHG%07d", j), Type: "normal",
				State: ops.ChangeClosed, Approval: "approved", CmdbCI: "ci-" + fmt.Sprint(j%50), ShortDescription: fmt.Sprintf("change %d", j),
				SysUpdatedOn: epoch.Add(time.Duration(j) * time.Second), Active: j%10 == 0})
		}
		if _, err := f.db.UpsertChanges(ctx, chs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFirstFrame measures console start to the first full frame of
// the changes screen over a 100k-change mirror (target ≤150 ms).
func BenchmarkFirstFrame(b *testing.B) {
	f := newFixture(b, fixtureOptions{offline: true})
	mirror100k(b, f)
	b.ResetTimer()
	for b.Loop() {
		m := New(context.Background(), f.svc, modelOptionsB())
		m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
		drive(m, m.show(common.NavigateMsg{Page: common.PageChanges}), 0)
		_ = m.View()
	}
}

// BenchmarkChangesScroll measures keystroke to frame (Update + View) while
// scrolling a 100k-change mirror, including the window loads the cursor
// triggers (target p99 ≤16 ms).
func BenchmarkChangesScroll(b *testing.B) {
	f := newFixture(b, fixtureOptions{offline: true})
	mirror100k(b, f)
	m := New(context.Background(), f.svc, modelOptionsB())
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	drive(m, m.show(common.NavigateMsg{Page: common.PageChanges}), 0)
	keys := []tea.KeyMsg{{Type: tea.KeyRunes, Runes: []rune("j")}, {Type: tea.KeyPgDown}}
	var lat []time.Duration
	b.ResetTimer()
	i := 0
	for b.Loop() {
		start := time.Now()
		_, cmd := m.Update(keys[i%len(keys)])
		_ = m.View()
		lat = append(lat, time.Since(start))
		drive(m, cmd, 0) // a window load, off the keystroke path in the real program
		i++
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs/frame")
	}
}

func modelOptionsB() Options {
	o := testOptions()
	o.FlashFor = time.Millisecond
	return o
}
