package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// feedRecords parses the feed's JSON lines, failing on a line that is not
// one record or on an id seen twice.
func feedRecords(t *testing.T, out string) []ops.FeedRecord {
	t.Helper()
	var recs []ops.FeedRecord
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r ops.FeedRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.ID == "" || r.Stream == "" || r.Time.IsZero() {
			t.Fatalf("feed line %q: not a record (%v)", sc.Text(), err)
		}
		if seen[r.ID] {
			t.Fatalf("feed repeats record %s", r.ID)
		}
		seen[r.ID] = true
		recs = append(recs, r)
	}
	return recs
}

func feedHas(recs []ops.FeedRecord, pred func(ops.FeedRecord) bool) bool {
	for _, r := range recs {
		if pred(r) {
			return true
		}
	}
	return false
}

// TestFeedWritesRunLogsAuditAndAlertsAsJSONLines: `daytwo feed` writes
// every run log line and audit event as one labelled JSON object per line;
// --follow with --cursor picks up a run made by another process, narrowed
// by --service, and a restart from the cursor repeats and loses nothing;
// the daemon's `sync --watch --feed` writes alerts it receives on its
// stdout, its JSON logs staying on stderr; bad flags and a torn cursor are
// refused by name.
func TestFeedWritesRunLogsAuditAndAlertsAsJSONLines(t *testing.T) {
	w := newServicesWorld(t)
	w.writeServicesConfig(t)
	pay := w.propose(t, "payments/staging", "3.0.1")
	if r := daytwo(t, w.env, "run", pay.ID); r.code != 0 {
		t.Fatalf("run payments/staging: %+v", r)
	}

	r := daytwo(t, w.env, "feed")
	if r.code != 0 {
		t.Fatalf("feed: %+v", r)
	}
	recs := feedRecords(t, r.stdout)
	var runID string
	for _, rec := range recs {
		if rec.Stream == ops.FeedRunLog {
			if rec.Service != "payments" || rec.Environment != "staging" || rec.Unit != "payments/staging" || rec.Update != pay.ID || rec.Run == "" || rec.Message == "" {
				t.Fatalf("run log record without its labels: %+v", rec)
			}
			runID = rec.Run
		}
	}
	if runID == "" {
		t.Fatalf("feed has no run log line:\n%s", r.stdout)
	}
	if !feedHas(recs, func(rec ops.FeedRecord) bool {
		return rec.Stream == ops.FeedAudit && rec.Action == "run.succeeded" && rec.Run == runID && rec.Service == "payments" && rec.Update == pay.ID
	}) {
		t.Fatalf("feed has no run.succeeded audit event of run %s:\n%s", runID, r.stdout)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Time.Before(recs[i-1].Time) {
			t.Fatalf("feed out of time order at %d: %s before %s", i, recs[i-1].ID, recs[i].ID)
		}
	}

	// Following from a cursor, only checkout: a run in another process appears.
	cursor := filepath.Join(w.dir, "feed.cursor")
	var out lockedBuffer
	follow := exec.Command(daytwoBin, "feed", "--follow", "--cursor", cursor, "--from", "now", "--service", "checkout", "--poll", "100ms")
	follow.Env = append(os.Environ(), w.env...)
	follow.Dir = w.dir
	follow.Stdout = &out
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = follow.Process.Kill(); _ = follow.Wait() })
	waitFor(t, "the follower's cursor file", 20*time.Second, func() bool { _, err := os.Stat(cursor); return err == nil })
	chk := w.propose(t, "staging", "1.2.0", "--service", "checkout")
	if r := daytwo(t, w.env, "run", chk.ID); r.code != 0 {
		t.Fatalf("run checkout staging: %+v", r)
	}
	waitFor(t, "checkout's run.succeeded in the followed feed", 30*time.Second, func() bool {
		return strings.Contains(out.String(), `"action":"run.succeeded"`)
	})
	_ = follow.Process.Signal(syscall.SIGTERM)
	if err := follow.Wait(); err != nil {
		t.Fatalf("feed --follow did not stop cleanly on SIGTERM: %v", err)
	}
	followed := feedRecords(t, out.String())
	for _, rec := range followed {
		if rec.Service != "checkout" {
			t.Fatalf("--service checkout let through %+v", rec)
		}
		if rec.Update == pay.ID {
			t.Fatalf("--from now repeated the earlier run: %+v", rec)
		}
	}
	if !feedHas(followed, func(rec ops.FeedRecord) bool { return rec.Stream == ops.FeedRunLog && rec.Update == chk.ID }) {
		t.Fatalf("followed feed has no run log of %s:\n%s", chk.ID, out.String())
	}

	// A restart from the cursor: everything after it, nothing before.
	r = daytwo(t, w.env, "feed", "--cursor", cursor, "--service", "checkout")
	if r.code != 0 {
		t.Fatalf("feed from the cursor: %+v", r)
	}
	again := feedRecords(t, r.stdout)
	for _, rec := range again {
		if feedHas(followed, func(f ops.FeedRecord) bool { return f.ID == rec.ID }) {
			t.Fatalf("restart from the cursor repeated %s", rec.ID)
		}
	}
	prd := w.propose(t, "payments/production", "3.0.1")
	r = daytwo(t, w.env, "feed", "--cursor", cursor, "--stream", "audit")
	if got := feedRecords(t, r.stdout); r.code != 0 || !feedHas(got, func(rec ops.FeedRecord) bool {
		return rec.Action == "update.proposed" && rec.Update == prd.ID && rec.Unit == "payments/production"
	}) || feedHas(got, func(rec ops.FeedRecord) bool { return rec.Stream != ops.FeedAudit }) {
		t.Fatalf("feed --stream audit after the cursor: %+v", r)
	}

	// The daemon's stdout carries the feed; an alert it receives is in it.
	var dout lockedBuffer
	env, listen := startDaemonWith(t, w.env, &dout, "--feed", "--feed-poll", "100ms")
	alert := strings.NewReplacer(`"environment":"production","service":"checkout"`, `"environment":"production","service":"payments"`).Replace(firing)
	if code, body := postWebhook(t, listen, webhookToken, alert); code != 200 {
		t.Fatalf("webhook: %d %s", code, body)
	}
	waitFor(t, "the alert on the daemon's stdout", 20*time.Second, func() bool {
		return feedHas(feedRecords(t, dout.String()), func(rec ops.FeedRecord) bool {
			return rec.Stream == ops.FeedAlert && rec.Action == "alert.firing" && rec.Subject == "HighErrorRate" && rec.Unit == "payments/production" && rec.Service == "payments"
		})
	})
	if strings.Contains(dout.String(), `"level"`) || strings.Contains(dout.String(), "daemon started") {
		t.Fatalf("the daemon's own log leaked onto its stdout feed:\n%s", dout.String())
	}
	_ = env

	// Bad input is named.
	if r := daytwo(t, w.env, "feed", "--stream", "metrics"); r.code != exitUsage || !strings.Contains(r.stderr, `--stream "metrics": want one of run_log, audit, alert`) {
		t.Fatalf("feed --stream metrics: %+v", r)
	}
	if r := daytwo(t, w.env, "feed", "--env", "prod"); r.code != exitUsage || !strings.Contains(r.stderr, `--env "prod"`) {
		t.Fatalf("feed --env prod: %+v", r)
	}
	if err := os.WriteFile(cursor, []byte(`{"audit_seq":12,`), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := daytwo(t, w.env, "feed", "--cursor", cursor); r.code != exitUsage || !strings.Contains(r.stderr, "feed cursor "+cursor+": not a daytwo feed cursor") {
		t.Fatalf("feed with a torn cursor: %+v", r)
	}
	if r := daytwo(t, w.env, "sync", "--once", "--feed"); r.code != exitUsage || !strings.Contains(r.stderr, "--feed needs --watch") {
		t.Fatalf("sync --once --feed: %+v", r)
	}
}
