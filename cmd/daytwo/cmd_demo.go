package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/fixtures/demofleet"
	"github.com/daytwo/daytwo/itsm/snowsim"
	"github.com/daytwo/daytwo/ops"
)

// demoLoad is the requests per second the demo's load generator sends to
// each target, so that metric analysis has traffic to judge.
const demoLoad = 20

// demoWorld is everything `daytwo demo` starts: a workspace, the simulator,
// the fleet, a configuration, the service and the engine loop.
type demoWorld struct {
	dir   string
	sim   *snowsim.Server
	fleet *demofleet.Fleet
	svc   *ops.Service
	stop  func() // stops the engine loop and waits for it
	// banner is what the demo printed, shown again inside the console
	// (the alternate screen hides it).
	banner bytes.Buffer
}

func (a *app) demoCommand() *cobra.Command {
	var (
		dir          string
		headless     bool
		manual       bool
		approveAfter time.Duration
		keep         bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "The whole story on this machine: ServiceNow simulator, a demo fleet, three environments, the console",
		Long: `Start a throw-away workspace with the ServiceNow simulator and a live demo
fleet (small HTTP services on loopback, switched by the same command executor
and checked by the same health checks a real fleet uses), three environments
(dev and staging unattended, production gated by a normal change), some
history, and the engine running as the daemon would. Then open the console.

The simulator approves normal changes as "CAB Manager" a few seconds after
they are requested (--approve-after), or never with --manual-approval so you
approve each stage in the console or with ` + "`daytwo change approve`" + `, as
ops.lead (a member of both stages' approval groups). --headless runs the scripted story instead of the
console and exits 0 only if every step ended as expected.

Everything is stopped and removed on exit (--keep or --dir keeps the files).`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			w, err := a.startDemo(ctx, dir, keep, manual, approveAfter, headless)
			if err != nil {
				return err
			}
			defer w.close(a.stdout)
			if headless {
				return a.demoStory(ctx, w, manual)
			}
			return a.console(ctx, w.svc, w.banner.String())
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "workspace directory (kept on exit; default: a temporary one, removed)")
	f.BoolVar(&headless, "headless", false, "run the scripted story without the console (CI runs this)")
	f.BoolVar(&manual, "manual-approval", false, "the simulator does not approve: approve each stage in the console, as servicenow.approver (ops.lead); with --headless the story does it the same way")
	f.DurationVar(&approveAfter, "approve-after", 3*time.Second, "how long CAB Manager takes to approve a normal change")
	f.BoolVar(&keep, "keep", false, "keep the temporary workspace on exit")
	return cmd
}

func (a *app) startDemo(ctx context.Context, dir string, keep, manual bool, approveAfter time.Duration, headless bool) (w *demoWorld, err error) {
	w = &demoWorld{stop: func() {}}
	cleanup := []func(){}
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	if dir == "" {
		if dir, err = os.MkdirTemp("", "daytwo-demo-"); err != nil {
			return nil, err
		}
		if !keep {
			tmp := dir
			cleanup = append(cleanup, func() { os.RemoveAll(tmp) })
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("demo: --dir %s: %w", dir, err)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	w.dir = dir
	logFile, err := os.OpenFile(filepath.Join(dir, "daytwo.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { logFile.Close() })
	// Logs go to the workspace, never to the terminal the console owns.
	a.logger = slog.New(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo}))

	opts := snowsim.Options{Logger: a.logger.With("component", "snowsim"), StatePath: filepath.Join(dir, "snowsim.json")}
	if !manual {
		opts.AutoApprove = snowsim.AutoApprove{Standard: true, NormalAfter: approveAfter, NormalApprover: "cab.manager"}
	}
	if w.sim, err = snowsim.Listen(ctx, "127.0.0.1:0", opts); err != nil {
		return nil, fmt.Errorf("demo: start the simulator: %w", err)
	}
	cleanup = append(cleanup, func() { w.sim.Close() })
	if w.fleet, err = demofleet.Start(ctx, demofleet.Options{
		StateDir: filepath.Join(dir, "fleet"),
		Targets:  demofleet.DemoTargets(nil), Logger: a.logger.With("component", "fleet"), Load: demoLoad,
	}); err != nil {
		return nil, fmt.Errorf("demo: start the fleet: %w", err)
	}
	cleanup = append(cleanup, func() { w.fleet.Close() })

	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	pw, apw := filepath.Join(dir, "sn-password"), filepath.Join(dir, "approver-password")
	for path, secret := range map[string]string{pw: "daytwo", apw: "ops.lead"} {
		if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	yaml, err := demofleet.DemoConfig(demofleet.DemoParams{
		DaytwoBin: exe, StateDir: filepath.Join(dir, "fleet"), DBPath: filepath.Join(dir, "daytwo.db"),
		Instance: w.sim.URL(), Ports: w.fleet.Ports(), PasswordFile: pw, LogFile: filepath.Join(dir, "daytwo.log"),
		ApproverPasswordFile: apw,
	})
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "daytwo.yaml")
	if err := os.WriteFile(cfgPath, yaml, 0o600); err != nil {
		return nil, err
	}
	a.configFile, a.cfg = cfgPath, nil
	if w.svc, err = a.service(ctx); err != nil {
		return nil, err
	}
	// A little release history, so the screens are not empty: 0.9.0
	// then 1.0.0 (what the fleet starts on).
	if err := w.svc.SeedHistory(ctx, "demo", "0.9.0", "1.0.0"); err != nil {
		return nil, err
	}
	engineCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.engineLoop(engineCtx, w.svc, newSyncMetrics(), a.cfg.Sync.Interval, a.logger)
	}()
	w.stop = func() { cancel(); <-done }
	cleanup = append(cleanup, w.stop)

	out := a.stdout
	fmt.Fprintf(out, "daytwo demo workspace: %s\n", dir)
	fmt.Fprintf(out, "  ServiceNow simulator: %s (users daytwo/daytwo, ops.lead/ops.lead, cab.manager/cab.manager; see README)\n", w.sim.URL())
	fmt.Fprintln(out, "  services: checkout (dev, staging, production), payments (staging, production), web (dev, staging, production)")
	for _, t := range demofleet.DemoTargets(nil) {
		if u := w.fleet.URLs()[t.Name]; u != "" {
			fmt.Fprintf(out, "  %s %s\n", t.Name, u)
		}
	}
	fmt.Fprintf(out, "  config: %s\n  logs:   %s\n", cfgPath, filepath.Join(dir, "daytwo.log"))
	if manual {
		fmt.Fprintln(out, "  approvals: manual: approve each stage in the console (A) or with `daytwo change approve CHG`, as ops.lead (Ops Lead)")
	} else {
		fmt.Fprintf(out, "  approvals: CAB Manager approves normal changes after %s\n", approveAfter)
	}
	if !headless {
		fmt.Fprintf(out, "  try it from another terminal: DAYTWO_CONFIG=%s %s update list\n", cfgPath, exe)
		// What the console repeats on its connection screen and help.
		fmt.Fprintf(&w.banner, "config: %s\nCLI from another terminal: DAYTWO_CONFIG=%s %s update list\nlogs: %s\nServiceNow simulator: %s (users daytwo, ops.lead, cab.manager; password = user name)\n",
			cfgPath, cfgPath, exe, filepath.Join(dir, "daytwo.log"), w.sim.URL())
	}
	finalCleanup := cleanup
	w.stop = func() {
		for i := len(finalCleanup) - 1; i >= 0; i-- {
			finalCleanup[i]()
		}
	}
	return w, nil
}

func (w *demoWorld) close(out io.Writer) {
	w.stop()
	fmt.Fprintln(out, "demo stopped: simulator, fleet and engine are down")
}

// demoStory is the scripted story of `daytwo demo --headless`.
func (a *app) demoStory(ctx context.Context, w *demoWorld, manual bool) error {
	step := 0
	say := func(format string, args ...any) {
		step++
		fmt.Fprintf(a.stdout, "\n[%d] %s\n", step, fmt.Sprintf(format, args...))
	}
	ok := func(format string, args ...any) { fmt.Fprintf(a.stdout, "    ok: %s\n", fmt.Sprintf(format, args...)) }
	svc := w.svc

	propose := func(env, version string, set map[string]string) (ops.Proposal, error) {
		p, err := svc.Propose(ctx, ops.ProposeRequest{Environment: env, Version: version, Set: set})
		if err == nil && len(p.Queued) > 0 {
			dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			_, _ = svc.DeliverOutbox(dctx, p.Update.ID)
			cancel()
		}
		return p, err
	}
	wait := func(id string, want ...ops.UpdateState) (ops.Update, error) {
		return waitForUpdate(ctx, svc, id, 90*time.Second, want...)
	}
	fleetOn := func(version string, targets ...string) error {
		for _, t := range targets {
			v, err := demofleet.Version(filepath.Join(w.dir, "fleet"), t)
			if err != nil {
				return err
			}
			if v != version {
				return fmt.Errorf("%s runs %s, want %s", t, v, version)
			}
		}
		return nil
	}

	for _, env := range []struct {
		name    string
		targets []string
	}{{"dev", []string{"dev-1", "dev-2"}}, {"staging", []string{"stg-1", "stg-2"}}} {
		say("propose 1.1.0 to %s (ungated, auto-run by the engine)", env.name)
		p, err := propose(env.name, "1.1.0", nil)
		if err != nil {
			return err
		}
		if _, err := wait(p.Update.ID, ops.UpdateSucceeded); err != nil {
			return err
		}
		if err := fleetOn("1.1.0", env.targets...); err != nil {
			return err
		}
		ok("%s rolled out and healthy: %s", env.name, strings.Join(env.targets, ", "))
	}

	say("promote 1.1.0 to production with debug logging: a blocking CEL policy refuses it before any change is raised")
	if _, err := propose("production", "1.1.0", map[string]string{"log_level": "debug"}); !errors.Is(err, ops.ErrBlocked) {
		return fmt.Errorf("demo: a debug-logging proposal for production was not blocked (err = %v)", err)
	}
	ok("blocked by no-debug-logging-in-prod; nothing was raised in ServiceNow")

	say("promote 1.1.0 to production: a normal change is raised and waits for CAB approval")
	p, err := propose("production", "1.1.0", nil)
	if err != nil {
		return err
	}
	u, err := waitForUpdate(ctx, svc, p.Update.ID, 30*time.Second, ops.UpdateAwaitingApproval)
	if err != nil {
		return err
	}
	ok("change %s raised; gate: %s", u.ChangeNumber, gateText(ctx, svc, u))
	if manual {
		say("approve %s stage by stage as the configured approver, as `A` in the console does; the engine rolls production out", u.ChangeNumber)
		if err := a.demoApprove(ctx, svc, u.ID); err != nil {
			return err
		}
	} else {
		say("CAB Manager approves %s; the engine rolls production out batch by batch inside the window", u.ChangeNumber)
	}
	if u, err = wait(p.Update.ID, ops.UpdateSucceeded); err != nil {
		return err
	}
	if err := fleetOn("1.1.0", "prd-1", "prd-2", "prd-3"); err != nil {
		return err
	}
	ch, err := waitForChange(ctx, svc, u.ChangeSysID, 30*time.Second, func(c ops.Change) bool { return c.State == ops.ChangeClosed })
	if err != nil {
		return err
	}
	ok("production on 1.1.0; %s closed %s with a work note per batch and the run log attached", ch.Number, ch.CloseCode)

	// rolledBack proposes a bad production release (approving it in the
	// manual story) and waits until it is rolled back and every target is
	// on 1.1.0 again.
	rolledBack := func(version string) (ops.Update, error) {
		p, err := propose("production", version, nil)
		if err != nil {
			return ops.Update{}, err
		}
		if manual {
			if _, err := waitForUpdate(ctx, svc, p.Update.ID, 30*time.Second, ops.UpdateAwaitingApproval); err != nil {
				return ops.Update{}, err
			}
			if err := a.demoApprove(ctx, svc, p.Update.ID); err != nil {
				return ops.Update{}, err
			}
		}
		u, err := wait(p.Update.ID, ops.UpdateRolledBack)
		if err != nil {
			return u, err
		}
		return u, fleetOn("1.1.0", "prd-1", "prd-2", "prd-3")
	}

	say("propose 1.2.0-degraded to production: /healthz answers 200, but 20%% of requests fail; metric analysis compares the canary with the baseline")
	if u, err = rolledBack("1.2.0-degraded"); err != nil {
		return err
	}
	ch, err = waitForChange(ctx, svc, u.ChangeSysID, 30*time.Second, func(c ops.Change) bool { return c.State == ops.ChangeClosed })
	if err != nil {
		return err
	}
	note, err := waitForNote(ctx, svc, u.ID, 30*time.Second, `metrics "error-rate" on prd-1: failed`)
	if err != nil {
		return err
	}
	ok("the canary passed its health checks; the analysis failed it against the baseline and rolled it back: %s", note)
	ok("%s closed %s, with the verdict's numbers in its work notes", ch.Number, ch.CloseCode)

	say("propose 1.2.0-broken to production: approved, rolled out, its health check fails")
	if u, err = rolledBack("1.2.0-broken"); err != nil {
		return err
	}
	ok("automatic rollback: every touched target is back on 1.1.0")
	incident, err := waitForIncident(ctx, svc, u.ID, 30*time.Second)
	if err != nil {
		return err
	}
	ch, err = waitForChange(ctx, svc, u.ChangeSysID, 30*time.Second, func(c ops.Change) bool { return c.State == ops.ChangeClosed })
	if err != nil {
		return err
	}
	ok("%s closed %s; incident %s opened and linked to it", ch.Number, ch.CloseCode, incident.Number)

	say("ship a release train: payments 1.1.0 and web 1.1.0 to production as one bundle, under one normal change with both CIs attached")
	bp, err := svc.ProposeBundle(ctx, ops.BundleRequest{Stage: "production", Members: []ops.BundleMember{
		{Service: "payments", Version: "1.1.0"}, {Service: "web", Version: "1.1.0"},
	}})
	if err != nil {
		return err
	}
	first := bp.Members[0].Update.ID
	{
		dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, _ = svc.DeliverOutbox(dctx, first)
		cancel()
	}
	if u, err = waitForUpdate(ctx, svc, first, 30*time.Second, ops.UpdateAwaitingApproval); err != nil {
		return err
	}
	ok("one change %s for %d services; gate: %s", u.ChangeNumber, len(bp.Members), gateText(ctx, svc, u))
	if manual {
		if err := a.demoApprove(ctx, svc, first); err != nil {
			return err
		}
	}
	for _, m := range bp.Members {
		if _, err := wait(m.Update.ID, ops.UpdateSucceeded); err != nil {
			return err
		}
	}
	if err := fleetOn("1.1.0", "pay-prd-1", "pay-prd-2", "web-prd-1"); err != nil {
		return err
	}
	ch, err = waitForChange(ctx, svc, u.ChangeSysID, 30*time.Second, func(c ops.Change) bool { return c.State == ops.ChangeClosed })
	if err != nil {
		return err
	}
	ok("payments and web on 1.1.0, one after the other; %s closed %s once for the whole bundle", ch.Number, ch.CloseCode)
	cis, err := a.demoAffectedCIs(ctx, u.ChangeSysID, 2)
	if err != nil {
		return err
	}
	ok("%s's affected CIs in ServiceNow (task_ci): %s", ch.Number, strings.Join(cis, ", "))

	say("verify the audit chain")
	res, err := svc.VerifyAudit(ctx)
	if err != nil {
		return err
	}
	if !res.OK {
		return fmt.Errorf("demo: audit chain broken at %d: %s", res.BadSeq, res.Problem)
	}
	ok("%d events, hash chain intact", res.Events)
	fmt.Fprintln(a.stdout, "\ndemo story passed")
	return nil
}

// demoAffectedCIs reads the change's affected CIs back from ServiceNow
// until want of them are there (the association runs in the background).
func (a *app) demoAffectedCIs(ctx context.Context, changeSysID string, want int) ([]string, error) {
	c, err := a.itsmClient()
	if err != nil || c == nil {
		return nil, fmt.Errorf("demo: a ServiceNow client: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := c.AffectedCIs(ctx, changeSysID)
		if err != nil {
			return nil, err
		}
		names := make([]string, len(got))
		for i, ci := range got {
			names[i] = ci.Name
		}
		if len(names) >= want {
			return names, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("demo: change %s has affected CIs %v, want %d", changeSysID, names, want)
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// demoApprove approves an update's change through every stage of its
// approval, through the same Decide the console's A uses (as
// servicenow.approver), syncing between stages as the engine does.
func (a *app) demoApprove(ctx context.Context, svc *ops.Service, id string) error {
	for stage := 1; stage <= 4; stage++ {
		if _, err := svc.SyncOnce(ctx); err != nil {
			return err
		}
		u, err := svc.GetUpdate(ctx, id)
		if err != nil {
			return err
		}
		if u.State != ops.UpdateAwaitingApproval {
			return nil
		}
		ch, err := svc.Decide(ctx, ops.DecideRequest{Change: u.ChangeNumber, Approve: true, Comment: "demo: approved from daytwo"})
		if err != nil {
			return fmt.Errorf("demo: approve %s (stage %d): %w", u.ChangeNumber, stage, err)
		}
		dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, _ = svc.DeliverOutbox(dctx, ch.Number)
		cancel()
		st, err := svc.Decision(ctx, ch.Number)
		if err != nil {
			return err
		}
		if st.Item.State != ops.OutboxDelivered {
			return fmt.Errorf("demo: the approval of %s (stage %d) was not delivered: %s %s", ch.Number, stage, st.Item.State, st.Item.LastError)
		}
		fmt.Fprintf(a.stdout, "    ok: stage %d approved\n", stage)
	}
	return fmt.Errorf("demo: update %s still awaits approval after 4 stages", id)
}

func gateText(ctx context.Context, svc *ops.Service, u ops.Update) string {
	g, err := svc.Gate(ctx, u)
	if err != nil {
		return err.Error()
	}
	return g.Summary()
}

func waitForUpdate(ctx context.Context, svc *ops.Service, id string, timeout time.Duration, want ...ops.UpdateState) (ops.Update, error) {
	deadline := time.Now().Add(timeout)
	for {
		u, err := svc.GetUpdate(ctx, id)
		if err != nil {
			return u, err
		}
		for _, s := range want {
			if u.State == s {
				return u, nil
			}
		}
		if u.State.Terminal() || time.Now().After(deadline) {
			return u, fmt.Errorf("demo: update %s (%s %s) is %s (%s), want %v", u.ID, u.Environment, u.Version, u.State, u.Reason, want)
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return u, err
		}
	}
}

func waitForChange(ctx context.Context, svc *ops.Service, sysID string, timeout time.Duration, done func(ops.Change) bool) (ops.Change, error) {
	deadline := time.Now().Add(timeout)
	for {
		chs, err := svc.Changes(ctx, ops.ChangeFilter{})
		if err != nil {
			return ops.Change{}, err
		}
		for _, c := range chs {
			if c.SysID == sysID && done(c) {
				return c, nil
			}
		}
		if time.Now().After(deadline) {
			return ops.Change{}, fmt.Errorf("demo: change %s did not reach the expected state", sysID)
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return ops.Change{}, err
		}
	}
}

func waitForIncident(ctx context.Context, svc *ops.Service, updateID string, timeout time.Duration) (ops.Incident, error) {
	deadline := time.Now().Add(timeout)
	for {
		d, err := svc.UpdateDetail(ctx, updateID)
		if err != nil {
			return ops.Incident{}, err
		}
		if len(d.Incidents) > 0 {
			return d.Incidents[0], nil
		}
		if time.Now().After(deadline) {
			return ops.Incident{}, fmt.Errorf("demo: no incident for update %s", updateID)
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return ops.Incident{}, err
		}
	}
}

// waitForNote waits for a delivered work note of the update containing
// want, and returns its line that does.
func waitForNote(ctx context.Context, svc *ops.Service, updateID string, timeout time.Duration, want string) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		d, err := svc.UpdateDetail(ctx, updateID)
		if err != nil {
			return "", err
		}
		for _, n := range d.Notes {
			if !n.Delivered {
				continue
			}
			for line := range strings.SplitSeq(n.Text, "\n") {
				if strings.Contains(line, want) {
					return line, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("demo: no delivered work note of update %s says %q", updateID, want)
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return "", err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
