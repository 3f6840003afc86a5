package tui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/daytwo/daytwo/itsm"
	"github.com/daytwo/daytwo/itsm/snowsim"
	"github.com/daytwo/daytwo/ops"
	"github.com/daytwo/daytwo/ops/exec"
	"github.com/daytwo/daytwo/store"
)

// epoch is the fixed time of every test: goldens never see the wall clock.
var epoch = time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)

// fixture is a real daytwo: SQLite in t.TempDir(), the ServiceNow
// simulator on loopback (unless offline), the command executor running sh
// scripts that write files, and a health check that fails for versions
// containing "broken".
type fixture struct {
	svc *ops.Service
	db  *store.DB
	sim *snowsim.Server
	dir string
}

type fixtureOptions struct {
	// offline points the service at an address nobody listens on.
	offline bool
	// approver, if set, is the simulator user (password = user name) the
	// console decides as (servicenow.approver), with four eyes on.
	approver string
	// environments, if set, replaces testEnvironments.
	environments func(dir string) []ops.Environment
	// alertIncidents is alertmanager.open_incidents.
	alertIncidents bool
	// seedDB, if set, is a database file (and its -wal, if any) copied
	// into place before the store opens it.
	seedDB string
}

func testEnvironments(dir string) []ops.Environment {
	deploy := ops.DeploySpec{
		Command:  []string{"sh", "-c", `echo deploying {{ .Version }} to {{ .Target.Name }}; echo {{ .Version }} > "$FLEET/{{ .Target.Name }}"`},
		Rollback: []string{"sh", "-c", `echo restoring {{ .Version }} on {{ .Target.Name }}; echo {{ .Version }} > "$FLEET/{{ .Target.Name }}"`},
		Env:      map[string]string{"FLEET": dir},
		Timeout:  10 * time.Second,
	}
	health := []ops.HealthCheck{{
		Name: "version", Command: []string{"sh", "-c", "case {{ .Version }} in *broken*) echo unhealthy; exit 1;; esac; echo healthy"},
		Timeout: 5 * time.Second, Interval: 10 * time.Millisecond,
	}}
	return []ops.Environment{
		{
			Name: "staging", Targets: []ops.Target{{Name: "stg-1"}, {Name: "stg-2"}}, Deploy: deploy, Health: health,
			Strategy: ops.Strategy{BatchSize: ops.BatchSize{Count: 1}, MaxParallel: 1}, Config: map[string]string{"log_level": "info"},
		},
		{
			Name: "production", RequiresChange: true, PromoteFrom: "staging",
			Targets: []ops.Target{{Name: "prd-1"}, {Name: "prd-2"}}, Deploy: deploy, Health: health,
			Change:   ops.ChangeDefaults{Type: "normal", CmdbCI: "checkout-service", AssignmentGroup: "Platform Ops", Risk: "low", Window: 4 * time.Hour},
			Strategy: ops.Strategy{BatchSize: ops.BatchSize{Count: 1}, MaxParallel: 1}, Config: map[string]string{"log_level": "warn"},
		},
	}
}

func newFixture(t testing.TB, o fixtureOptions) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	clock := func() time.Time { return epoch }
	if o.seedDB != "" {
		for _, suffix := range []string{"", "-wal"} {
			if err := copyFile(o.seedDB+suffix, filepath.Join(dir, "daytwo.db"+suffix)); err != nil && !(suffix != "" && errors.Is(err, fs.ErrNotExist)) {
				t.Fatal(err)
			}
		}
	}
	db, err := store.Open(ctx, filepath.Join(dir, "daytwo.db"), store.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	envs := testEnvironments(dir)
	if o.environments != nil {
		envs = o.environments(dir)
	}
	if err := db.SyncEnvironments(ctx, envs, "test"); err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, dir: dir}
	instance := "http://127.0.0.1:1" // nothing listens: offline
	if !o.offline {
		f.sim, err = snowsim.Listen(ctx, "127.0.0.1:0", snowsim.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.sim.Close() })
		instance = f.sim.URL()
	}
	// The console acts as ops.lead: a member and the manager of Platform
	// Ops, so one approval schedules a low-risk change.
	client, err := itsm.New(itsm.Config{
		Instance: instance, Auth: itsm.AuthConfig{Username: "ops.lead", Password: "ops.lead"},
		Timeout: 2 * time.Second, PageSize: 500,
	}, itsm.WithSleep(func(ctx context.Context, d time.Duration) error { return ctx.Err() }))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	ids := func() string {
		mu.Lock()
		defer mu.Unlock()
		n++
		return fmt.Sprintf("u-%04d", n)
	}
	cfg := ops.Config{Environments: envs, CorrelationPrefix: "daytwo", Actor: "operator", Username: "ops.lead", AlertIncidents: o.alertIncidents}
	var extra []ops.Option
	if o.approver != "" {
		ac, err := itsm.New(itsm.Config{
			Instance: instance, Auth: itsm.AuthConfig{Username: o.approver, Password: o.approver},
			Timeout: 2 * time.Second, PageSize: 500,
		}, itsm.WithSleep(func(ctx context.Context, d time.Duration) error { return ctx.Err() }))
		if err != nil {
			t.Fatal(err)
		}
		cfg.ApproverUsername, cfg.FourEyes = o.approver, true
		extra = append(extra, ops.WithApprover(itsm.NewBridge(ac)))
	}
	f.svc, err = ops.New(cfg, db, itsm.NewBridge(client), append(extra, ops.WithClock(clock), ops.WithIDs(ids), ops.WithHolder("console-test"),
		ops.WithExecutors(func(env ops.Environment) (ops.Executor, ops.HealthChecker, error) {
			c, err := exec.NewCommand(env.Name, env.Deploy)
			if err != nil {
				return nil, nil, err
			}
			h, err := exec.NewHealth(env.Name, env.Health)
			if err != nil {
				return nil, nil, err
			}
			return c, h, nil
		}))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.svc.Wait)
	return f
}

// copyFile copies the file at from to a new file at to.
func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// release puts env on version through the whole flow outside the console
// (propose, approve as ops.lead in the simulator, sync, run).
func (f *fixture) release(t testing.TB, env, version string) ops.Update {
	t.Helper()
	ctx := context.Background()
	p, err := f.svc.Propose(ctx, ops.ProposeRequest{Environment: env, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	u := f.approve(t, p.Update.ID)
	if _, err := f.svc.Run(ctx, ops.RunRequest{Update: u.ID}); err != nil && !errors.Is(err, ops.ErrRunFailed) {
		t.Fatal(err)
	}
	f.svc.Wait()
	return u
}

// approve syncs the update's change into ServiceNow, approves it there and
// syncs the approval back (a no-op for ungated updates).
func (f *fixture) approve(t testing.TB, id string) ops.Update {
	t.Helper()
	ctx := context.Background()
	u, err := f.svc.GetUpdate(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if u.State == ops.UpdateApproved {
		return u
	}
	f.sync(t)
	if u, err = f.svc.GetUpdate(ctx, id); err != nil || u.ChangeNumber == "" {
		t.Fatalf("no change for %s: %v", id, err)
	}
	if err := f.sim.Sim().Approve(ctx, u.ChangeNumber, "ops.lead", "looks good"); err != nil {
		t.Fatal(err)
	}
	f.sync(t)
	if u, err = f.svc.GetUpdate(ctx, id); err != nil || u.State != ops.UpdateApproved {
		t.Fatalf("%s not approved: %s %v", id, u.State, err)
	}
	return u
}

func (f *fixture) sync(t testing.TB) {
	t.Helper()
	if _, err := f.svc.SyncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
}

var (
	runIDRE   = regexp.MustCompile(`r-[a-z2-7]{8}`)
	logTimeRE = regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d `)
	elapsedRE = regexp.MustCompile(`(?m)in \d+(\.\d+)?(ms|µs|s) *$`)
)

// stable masks what the service makes random or takes from the wall
// clock: run ids (ops has no WithRunIDs option), log line times (the run
// log is stamped with time.Now, not the injected clock), check durations
// and the temporary directory.
func (f *fixture) stable(b []byte) []byte {
	b = runIDRE.ReplaceAll(b, []byte("r-XXXXXXXX"))
	b = logTimeRE.ReplaceAll(b, []byte("hh:mm:ss "))
	b = elapsedRE.ReplaceAll(b, []byte("in N"))
	return bytes.ReplaceAll(b, []byte(f.dir), []byte("$DIR"))
}

func proposeReq(env, version string) ops.ProposeRequest {
	return ops.ProposeRequest{Environment: env, Version: version}
}
