package ops

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/daytwo/daytwo/ops/policy"
)

// Config is what the service needs from daytwo's configuration.
type Config struct {
	Environments []Environment
	Freezes      []Freeze
	Policies     []Policy
	// CorrelationPrefix marks daytwo's changes: correlation_id is
	// "<prefix>:<update id>".
	CorrelationPrefix string
	// MirrorCIChanges also mirrors others' changes on the CIs daytwo's
	// environments use.
	MirrorCIChanges bool
	// FourEyes refuses approving a change the same user requested.
	FourEyes bool
	// AlertIncidents makes a firing alert for a gated environment outside
	// a run open an incident caused by the change of its current release.
	AlertIncidents bool
	// Actor is who the audit log names for this process's actions.
	Actor string
	// Username is the ServiceNow user daytwo acts as.
	Username string
	// ApproverUsername is the ServiceNow user decisions are made as, when
	// it is not Username (see WithApprover).
	ApproverUsername string
}

// Service is daytwo's use cases: propose, sync, gate, run, approve. The
// CLI, the console and the daemon all go through it.
type Service struct {
	cfg       Config
	store     Store
	changes   ChangeSystem
	clock     func() time.Time
	log       *slog.Logger
	policies  *policy.Set
	newID     func() string
	newRunID  func() string
	executors Executors
	approver  ChangeSystem
	// approverErr says why the configured approver cannot be used (e.g.
	// its password is missing); decisions report it, nothing else does.
	approverErr error
	probers     Probers
	reaper      StepReaper
	locks       TargetLocker
	leaseTTL    time.Duration
	holder      string
	outboxWG    sync.WaitGroup
	outboxMu    sync.Mutex
	// active holds the ids of runs this process is executing, so that
	// recovery never mistakes them for runs of a dead process.
	active sync.Map
	// endedPasses are the claimer ids of this process's delivery passes
	// that have returned: their claims are nobody's (a pass that lost the
	// store could not release them).
	endedPasses endedPasses
	// changesErr says why changes is nil (e.g. the ServiceNow settings are
	// incomplete), for commands that need it.
	changesErr error
	// bundlesSwept: this process's first AdvanceBundles pass has looked at
	// every unsettled bundle (bundle.go); later passes look at recent ones.
	bundlesSwept atomic.Bool
}

// Option customises a Service.
type Option func(*Service)

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.clock = now } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// WithChangeSystemError records why there is no change system (the
// ServiceNow settings did not validate): work that does not need ServiceNow
// goes on, work that does reports this error.
func WithChangeSystemError(err error) Option { return func(s *Service) { s.changesErr = err } }

// WithApprover sets the identity decisions (approve, reject) are made as;
// by default the change system's own user.
func WithApprover(cs ChangeSystem) Option { return func(s *Service) { s.approver = cs } }

// WithApproverError records why the configured approver identity cannot be
// used: decisions (approve, reject) fail with it; everything else works.
func WithApproverError(err error) Option { return func(s *Service) { s.approverErr = err } }

// WithRunIDs sets the run id generator (tests, goldens).
func WithRunIDs(next func() string) Option { return func(s *Service) { s.newRunID = next } }

// WithIDs sets the update id generator (tests).
func WithIDs(next func() string) Option { return func(s *Service) { s.newID = next } }

// New builds the service. changes may be nil when no ServiceNow instance is
// configured: gated environments then cannot be proposed to.
func New(cfg Config, st Store, changes ChangeSystem, opts ...Option) (*Service, error) {
	s := &Service{
		cfg: cfg, store: st, changes: changes, clock: time.Now, log: slog.New(slog.DiscardHandler), newID: newUpdateID, newRunID: newRunID,
		holder: defaultHolder(), leaseTTL: defaultLeaseTTL, locks: newLocalLocks(), executors: func(env Environment) (Executor, HealthChecker, error) {
			return nil, nil, errors.New("no executors configured")
		},
	}
	for _, o := range opts {
		o(s)
	}
	rules := make([]policy.Rule, len(cfg.Policies))
	for i, p := range cfg.Policies {
		rules[i] = policy.Rule{Name: p.Name, Environments: p.Environments, Services: p.Services, Expr: p.Expr, Block: p.Action != PolicyWarn, Message: p.Message}
	}
	set, err := policy.NewSet(rules)
	if err != nil {
		return nil, fmt.Errorf("ops: %w", err)
	}
	s.policies = set
	if s.cfg.CorrelationPrefix == "" {
		s.cfg.CorrelationPrefix = "daytwo"
	}
	return s, nil
}

func newUpdateID() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return "u-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// changeSystem returns the change system, or why there is none.
func (s *Service) changeSystem() (ChangeSystem, error) {
	switch {
	case s.changes != nil:
		return s.changes, nil
	case s.changesErr != nil:
		return nil, s.changesErr
	default:
		return nil, errors.New("no ServiceNow instance configured (servicenow.instance or DAYTWO_SN_INSTANCE)")
	}
}

// decider returns the change system decisions are made through.
func (s *Service) decider() (ChangeSystem, error) {
	if s.approverErr != nil {
		return nil, s.approverErr
	}
	if s.approver != nil {
		return s.approver, nil
	}
	return s.changeSystem()
}

// deciderName is the ServiceNow user decisions are made as.
func (s *Service) deciderName() string {
	if s.approver != nil && s.cfg.ApproverUsername != "" {
		return s.cfg.ApproverUsername
	}
	return s.cfg.Username
}

// Environment returns the configured environment name.
func (s *Service) Environment(name string) (Environment, error) {
	for _, e := range s.cfg.Environments {
		if e.Name == name {
			return e, nil
		}
	}
	names := make([]string, len(s.cfg.Environments))
	for i, e := range s.cfg.Environments {
		names[i] = e.Name
	}
	return Environment{}, fmt.Errorf("no environment named %q (configured: %s): %w", name, strings.Join(names, ", "), ErrNotFound)
}

// ResolveEnvironment finds the (service, environment) pair a user named:
// its key ("checkout/production", or a plain name without services), or a
// stage together with service, or a stage alone when exactly one service
// runs there. Every failure says what would have matched and wraps
// ErrNotFound.
func (s *Service) ResolveEnvironment(service, name string) (Environment, error) {
	return ResolveEnvironment(s.cfg.Environments, service, name)
}

// ResolveEnvironment is Service.ResolveEnvironment over envs.
func ResolveEnvironment(envs []Environment, service, name string) (Environment, error) {
	var inStage, ofService []Environment
	known := false
	for _, e := range envs {
		if e.Name == name && (service == "" || e.Service == service) {
			return e, nil
		}
		if service != "" && e.Service != service {
			continue
		}
		known = true
		ofService = append(ofService, e)
		if e.StageName() == name {
			inStage = append(inStage, e)
		}
	}
	switch {
	case len(inStage) == 1:
		return inStage[0], nil
	case len(inStage) > 1:
		svcs := make([]string, len(inStage))
		for i, e := range inStage {
			svcs[i] = e.Service
		}
		return Environment{}, fmt.Errorf("%d services run in %q (%s): name one, e.g. %s or --service %s: %w",
			len(inStage), name, strings.Join(svcs, ", "), inStage[0].Name, inStage[0].Service, ErrNotFound)
	case service != "" && !known:
		return Environment{}, fmt.Errorf("no service named %q (configured: %s): %w", service, strings.Join(serviceNames(envs), ", "), ErrNotFound)
	case service != "":
		return Environment{}, fmt.Errorf("service %s does not run in %q (it runs in: %s): %w", service, name, strings.Join(stageNames(ofService), ", "), ErrNotFound)
	}
	names := make([]string, len(envs))
	for i, e := range envs {
		names[i] = e.Name
	}
	return Environment{}, fmt.Errorf("no environment named %q (configured: %s): %w", name, strings.Join(names, ", "), ErrNotFound)
}

// ServiceNames lists the configured services in configuration order.
func (s *Service) ServiceNames() []string { return serviceNames(s.cfg.Environments) }

func serviceNames(envs []Environment) []string {
	var out []string
	for _, e := range envs {
		if !slices.Contains(out, e.Service) {
			out = append(out, e.Service)
		}
	}
	return out
}

func stageNames(envs []Environment) []string {
	out := make([]string, len(envs))
	for i, e := range envs {
		out[i] = e.StageName()
	}
	return out
}

// Environments returns the configured environments in configuration order.
func (s *Service) Environments() []Environment { return s.cfg.Environments }

// correlationID is the idempotency key of an update's change.
func (s *Service) correlationID(updateID string) string {
	return s.cfg.CorrelationPrefix + ":" + updateID
}

// now is the service clock in UTC.
func (s *Service) now() time.Time { return s.clock().UTC() }

// audit appends an event by this process's actor inside tx.
func (s *Service) audit(ctx context.Context, tx Tx, ev Event) error {
	if ev.Actor == "" {
		ev.Actor = s.cfg.Actor
	}
	_, err := tx.AppendEvent(ctx, ev)
	return err
}

// GetUpdate returns an update by id or change number.
func (s *Service) GetUpdate(ctx context.Context, idOrChange string) (Update, error) {
	return s.store.GetUpdate(ctx, idOrChange)
}
