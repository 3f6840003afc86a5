package exec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	osexec "os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/daytwo/daytwo/ops"
)

// Compile-time checks that Ansible is what the engine expects.
var (
	_ ops.Executor        = (*Ansible)(nil)
	_ ops.Rollbacker      = (*Ansible)(nil)
	_ ops.BatchExecutor   = (*Ansible)(nil)
	_ ops.BatchRollbacker = (*Ansible)(nil)
)

// AnsibleCallback is the stdout callback daytwo asks ansible-playbook for:
// one JSON document with every task's result per host (shipped with the
// ansible package's ansible.posix collection).
const AnsibleCallback = "ansible.posix.json"

// maxAnsibleOutput bounds the JSON document read from one run.
const maxAnsibleOutput = 256 << 20

// Ansible is the Ansible executor: it puts a batch of targets on a release
// with one ansible-playbook run limited to them (--limit; a target's name
// is its inventory host), the release passed as extra vars, and reads each
// host's result from Ansible's JSON stdout callback. It is safe for
// concurrent use.
type Ansible struct {
	env       string
	playbook  string
	rollback  string
	inventory string
	forks     int
	extraVars map[string]tmpl
	timeout   time.Duration
	extraEnv  []string
	dir       string
	// Program is the ansible-playbook to run (default: found in PATH).
	Program string
}

// NewAnsible builds the Ansible executor of environment env from
// spec.Ansible. Only WithDir applies among the options.
func NewAnsible(env string, spec ops.DeploySpec, opts ...Option) (*Ansible, error) {
	o := newOptions(opts)
	as := spec.Ansible
	if as == nil {
		return nil, fmt.Errorf("exec: environment %s: deploy.ansible is not configured", env)
	}
	if as.Playbook == "" || as.Inventory == "" {
		return nil, fmt.Errorf("exec: environment %s: deploy.ansible needs a playbook and an inventory", env)
	}
	a := &Ansible{
		env: env, playbook: as.Playbook, rollback: as.RollbackPlaybook, inventory: as.Inventory,
		forks: as.Forks, timeout: as.Timeout, dir: o.dir, Program: "ansible-playbook", extraVars: map[string]tmpl{},
	}
	if a.timeout <= 0 {
		a.timeout = spec.Timeout
	}
	if a.timeout <= 0 {
		a.timeout = DefaultStepTimeout
	}
	for _, k := range slices.Sorted(maps.Keys(as.ExtraVars)) {
		if strings.HasPrefix(k, "daytwo_") {
			return nil, fmt.Errorf("exec: environment %s: deploy.ansible.extra_vars.%s: the daytwo_ prefix is reserved for the variables daytwo sets", env, k)
		}
		t, err := parseTmpl("deploy.ansible.extra_vars."+k, as.ExtraVars[k])
		if err != nil {
			return nil, fmt.Errorf("exec: environment %s: deploy.ansible.extra_vars.%s: %w", env, k, err)
		}
		a.extraVars[k] = t
	}
	var err error
	if a.extraEnv, err = parseExtraEnv("deploy.env", spec.Env); err != nil {
		return nil, fmt.Errorf("exec: environment %s: %w", env, err)
	}
	return a, nil
}

// Deploy puts one target on req.Version: a batch of one.
func (a *Ansible) Deploy(ctx context.Context, req ops.StepRequest, log ops.LogSink) error {
	return one(a.DeployBatch(ctx, []ops.StepRequest{req}, log), req.Target.Name)
}

// Rollback returns one target to req.PreviousVersion: a batch of one.
func (a *Ansible) Rollback(ctx context.Context, req ops.StepRequest, log ops.LogSink) error {
	return one(a.RollbackBatch(ctx, []ops.StepRequest{req}, log), req.Target.Name)
}

func one(m map[string]error, name string) error {
	if err, ok := m[name]; ok {
		return err
	}
	return fmt.Errorf("exec: ansible reported nothing for %s", name)
}

// DeployBatch runs the playbook once over the targets of reqs, which must
// share one release. Each target's result is its host's: ok, or the failed
// task's name and message, or unreachable (a failure too).
func (a *Ansible) DeployBatch(ctx context.Context, reqs []ops.StepRequest, log ops.LogSink) map[string]error {
	if len(reqs) == 0 {
		return map[string]error{}
	}
	return a.run(ctx, a.playbook, "deploy "+reqs[0].Version, reqs, log)
}

// RollbackBatch returns the targets of reqs (the forward requests, as
// for Rollback) to their previous release: the rollback playbook if one
// is configured, else the deploy playbook, with the versions and configs
// swapped and daytwo_rollback true.
func (a *Ansible) RollbackBatch(ctx context.Context, reqs []ops.StepRequest, log ops.LogSink) map[string]error {
	if len(reqs) == 0 {
		return map[string]error{}
	}
	back := make([]ops.StepRequest, len(reqs))
	for i, req := range reqs {
		if req.PreviousVersion == "" {
			return failAll(reqs, fmt.Errorf("exec: roll back %s: %w", req.Target.Name, errNoPrevious))
		}
		b := req
		b.Version, b.PreviousVersion = req.PreviousVersion, req.Version
		b.Config, b.PreviousConfig = req.PreviousConfig, req.Config
		b.Rollback = true
		back[i] = b
	}
	pb := a.playbook
	if a.rollback != "" {
		pb = a.rollback
	}
	return a.run(ctx, pb, "roll back to "+back[0].Version, back, log)
}

func failAll(reqs []ops.StepRequest, err error) map[string]error {
	out := make(map[string]error, len(reqs))
	for _, r := range reqs {
		out[r.Target.Name] = err
	}
	return out
}

// run runs playbook once over reqs' targets. what names the step in errors.
func (a *Ansible) run(ctx context.Context, playbook, what string, reqs []ops.StepRequest, log ops.LogSink) map[string]error {
	first := reqs[0]
	hosts := make([]string, len(reqs))
	for i, r := range reqs {
		hosts[i] = r.Target.Name
		if err := a.sameRelease(first, r); err != nil {
			return failAll(reqs, fmt.Errorf("exec: ansible %s: %w", what, err))
		}
	}
	fail := func(err error) map[string]error {
		return failAll(reqs, fmt.Errorf("exec: ansible %s: %w", what, err))
	}
	vars, err := a.vars(first, hosts)
	if err != nil {
		return fail(err)
	}
	varsFile, err := writeVars(vars)
	if err != nil {
		return fail(err)
	}
	defer os.Remove(varsFile)

	prog := a.Program
	if p, err := osexec.LookPath(prog); err == nil {
		prog = p
	}
	argv := []string{prog, "-i", a.inventory, "--limit", strings.Join(hosts, ","), "-e", "@" + varsFile}
	if a.forks > 0 {
		argv = append(argv, "--forks", strconv.Itoa(a.forks))
	}
	argv = append(argv, playbook)
	env, err := stepEnv(a.extraEnv, &TemplateData{
		Env: ops.StageOf(a.env), Service: first.Service, Version: first.Version, PreviousVersion: first.PreviousVersion,
		Change: first.Change, Config: first.Config, Rollback: first.Rollback,
	})
	if err != nil {
		return fail(err)
	}
	env = append(env, "ANSIBLE_STDOUT_CALLBACK="+AnsibleCallback, "ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0",
		"ANSIBLE_RETRY_FILES_ENABLED=false")

	// The run's own lines (its argv, Ansible's stderr) are the batch's, in
	// the run's log once; each host's tasks go to that target's log below.
	sl := newStepLog(log, "")
	sl.emit("daytwo", "run "+quoteArgv(argv))
	for _, h := range hosts {
		emitTo(log, h, "daytwo", fmt.Sprintf("ansible-playbook %s: %s with %d host(s) of the batch", playbook, what, len(hosts)))
	}
	var stdout limitedBuffer
	stdout.max = maxAnsibleOutput
	p := proc{argv: argv, env: env, dir: a.dir, timeout: a.timeout, log: sl, stdout: &stdout}
	p.forStep(first)
	p.onStart = func(pid int) error {
		var errs []error
		for _, r := range reqs {
			if r.OnStart != nil {
				if err := r.OnStart(pid); err != nil {
					errs = append(errs, err)
				}
			}
		}
		return errors.Join(errs...)
	}
	runErr := p.run(ctx)
	var xe *ExitError
	if runErr != nil && !errors.As(runErr, &xe) {
		return fail(runErr) // timed out, canceled, or could not start: no result to trust
	}
	if stdout.truncated {
		return fail(fmt.Errorf("its JSON output exceeds %d MiB", maxAnsibleOutput>>20))
	}
	report, perr := parseAnsibleJSON(stdout.buf.Bytes())
	if perr != nil {
		if runErr != nil {
			return fail(runErr)
		}
		return fail(perr)
	}
	out := make(map[string]error, len(reqs))
	for _, r := range reqs {
		h := r.Target.Name
		hr := report.host(h)
		for _, l := range hr.lines {
			emitTo(log, h, "stdout", l)
		}
		var err error
		switch {
		case !hr.seen:
			err = fmt.Errorf("host %s has no result in the playbook's output: not in inventory %s, or not matched by the playbook's hosts", h, a.inventory)
			if runErr != nil {
				err = fmt.Errorf("%w (%v)", err, runErr)
			}
		case hr.unreachable > 0:
			err = fmt.Errorf("host %s unreachable: %s", h, hr.failure())
		case hr.failures > 0:
			err = fmt.Errorf("%s", hr.failure())
		}
		if err != nil {
			emitTo(log, h, "daytwo", "ansible: "+err.Error())
			out[h] = fmt.Errorf("exec: ansible %s on %s: %w", what, h, err)
			continue
		}
		emitTo(log, h, "daytwo", fmt.Sprintf("ansible: ok (%d ok, %d changed, %d skipped)", hr.ok, hr.changed, hr.skipped))
		out[h] = nil
	}
	return out
}

func emitTo(log ops.LogSink, target, stream, line string) {
	if log != nil {
		log(target, stream, strings.ToValidUTF8(line, "\uFFFD"))
	}
}

func (a *Ansible) sameRelease(first, r ops.StepRequest) error {
	if r.Environment != "" && r.Environment != a.env {
		return fmt.Errorf("request for environment %q sent to the executor of %q", r.Environment, a.env)
	}
	if r.Version != first.Version || r.PreviousVersion != first.PreviousVersion || r.Rollback != first.Rollback ||
		r.Change != first.Change || !maps.Equal(r.Config, first.Config) {
		return fmt.Errorf("the targets of one batch must share one release (%s differs from %s)", r.Target.Name, first.Target.Name)
	}
	if err := ops.ValidateVersion(r.Version); err != nil {
		return err
	}
	if r.PreviousVersion != "" {
		if err := ops.ValidateVersion(r.PreviousVersion); err != nil {
			return fmt.Errorf("previous %w", err)
		}
	}
	return nil
}

// vars builds the extra vars of a run: the configured ones, rendered
// with the batch's release (.Target is empty: extra vars are the same for
// every host; per-host values belong in the inventory), and daytwo's.
func (a *Ansible) vars(req ops.StepRequest, hosts []string) (map[string]any, error) {
	d := newData(a.env, req)
	d.Target = ops.Target{}
	vars := make(map[string]any, len(a.extraVars)+12)
	for k, t := range a.extraVars {
		s, err := t.render(d)
		if err != nil {
			return nil, fmt.Errorf("deploy.ansible.extra_vars.%s: %w (extra vars are the same for every host of a batch: .Target is empty there; per-host values belong in the inventory)", k, err)
		}
		vars[k] = s
	}
	cfg := map[string]string{}
	for k, v := range req.Config {
		cfg[k] = v
		name, err := envName(k)
		if err != nil {
			return nil, fmt.Errorf("config key %q: %w", k, err)
		}
		vars["daytwo_cfg_"+strings.ToLower(name)] = v
	}
	prev := map[string]string{}
	maps.Copy(prev, req.PreviousConfig)
	vars["daytwo_env"] = a.env
	vars["daytwo_version"] = req.Version
	vars["daytwo_previous_version"] = req.PreviousVersion
	vars["daytwo_change"] = req.Change
	vars["daytwo_rollback"] = req.Rollback
	vars["daytwo_config"] = cfg
	vars["daytwo_previous_config"] = prev
	vars["daytwo_run"] = req.RunID
	vars["daytwo_targets"] = hosts
	return vars, nil
}

// writeVars writes the extra vars to a private temporary file (not the
// command line, which every local user can read).
func writeVars(vars map[string]any) (string, error) {
	b, err := json.Marshal(vars)
	if err != nil {
		return "", fmt.Errorf("extra vars: %w", err)
	}
	f, err := os.CreateTemp("", "daytwo-ansible-vars-*.json")
	if err != nil {
		return "", fmt.Errorf("extra vars: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", fmt.Errorf("extra vars: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("extra vars: %w", err)
	}
	return f.Name(), nil
}

// ansibleReport is what daytwo reads of the JSON callback's document.
type ansibleReport struct {
	Plays []struct {
		Play struct {
			Name string `json:"name"`
		} `json:"play"`
		Tasks []struct {
			Task struct {
				Name string `json:"name"`
			} `json:"task"`
			Hosts map[string]ansibleResult `json:"hosts"`
		} `json:"tasks"`
	} `json:"plays"`
	Stats map[string]struct {
		OK          int `json:"ok"`
		Changed     int `json:"changed"`
		Failures    int `json:"failures"`
		Unreachable int `json:"unreachable"`
		Skipped     int `json:"skipped"`
		Rescued     int `json:"rescued"`
		Ignored     int `json:"ignored"`
	} `json:"stats"`
}

type ansibleResult struct {
	Action      string          `json:"action"`
	Changed     bool            `json:"changed"`
	Failed      bool            `json:"failed"`
	Unreachable bool            `json:"unreachable"`
	Skipped     bool            `json:"skipped"`
	Msg         json.RawMessage `json:"msg"`
	Stderr      string          `json:"stderr"`
	RC          *int            `json:"rc"`
}

// hostResult is one host's outcome in a run.
type hostResult struct {
	seen                                        bool
	ok, changed, skipped, failures, unreachable int
	failedTask, failedMsg                       string
	lines                                       []string
}

func (h hostResult) failure() string {
	if h.failedTask == "" {
		return "the playbook failed on this host"
	}
	if h.failedMsg == "" {
		return fmt.Sprintf("task %q failed", h.failedTask)
	}
	return fmt.Sprintf("task %q failed: %s", h.failedTask, h.failedMsg)
}

func parseAnsibleJSON(b []byte) (*ansibleReport, error) {
	// Anything before the document (a warning a plugin printed) is skipped.
	i := bytes.IndexByte(b, '{')
	if i < 0 {
		return nil, errors.New("ansible-playbook printed no JSON (is the ansible.posix collection installed?)")
	}
	var r ansibleReport
	if err := json.Unmarshal(b[i:], &r); err != nil {
		return nil, fmt.Errorf("ansible-playbook's JSON output: %w", err)
	}
	if r.Stats == nil {
		return nil, errors.New("ansible-playbook's JSON output has no stats")
	}
	return &r, nil
}

// host reads one host's tasks and totals out of the report; its last
// failed or unreachable task is the one that stopped it.
func (r *ansibleReport) host(name string) hostResult {
	var h hostResult
	st, ok := r.Stats[name]
	if !ok {
		return h
	}
	h.seen = true
	h.ok, h.changed, h.skipped, h.failures, h.unreachable = st.OK, st.Changed, st.Skipped, st.Failures, st.Unreachable
	for _, p := range r.Plays {
		for _, t := range p.Tasks {
			res, ok := t.Hosts[name]
			if !ok {
				continue
			}
			state := "ok"
			switch {
			case res.Unreachable:
				state = "unreachable"
			case res.Failed:
				state = "failed"
			case res.Skipped:
				state = "skipped"
			case res.Changed:
				state = "changed"
			}
			line := fmt.Sprintf("TASK [%s] %s", t.Task.Name, state)
			msg := res.message()
			if msg != "" && state != "ok" && state != "changed" && state != "skipped" {
				line += ": " + msg
			}
			h.lines = append(h.lines, line)
			if res.Unreachable || res.Failed {
				h.failedTask, h.failedMsg = t.Task.Name, msg
			}
		}
	}
	return h
}

// message is a result's msg (a string, or whatever JSON it is), with the
// stderr of a failed command, bounded for logs and work notes.
func (r ansibleResult) message() string {
	var msg string
	if len(r.Msg) > 0 {
		if err := json.Unmarshal(r.Msg, &msg); err != nil {
			msg = string(r.Msg)
		}
	}
	if r.Failed && r.Stderr != "" {
		se := strings.TrimSpace(r.Stderr)
		if msg != "" {
			msg += "; "
		}
		msg += "stderr: " + se
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > 512 {
		msg = strings.ToValidUTF8(msg[:512], "") + "…"
	}
	return msg
}
