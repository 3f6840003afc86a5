package ops

import (
	"context"
	"sync"
	"time"
)

// Lease timing: a run holds its environment's lease for the lease TTL and
// renews it every third of it; a process that dies loses the lease within
// one TTL.
const defaultLeaseTTL = 60 * time.Second

// WithLeaseTTL sets how long a run's lease lasts without renewal (how soon
// another process may take over a run whose runner stopped answering).
func WithLeaseTTL(d time.Duration) Option {
	return func(s *Service) {
		if d > 0 {
			s.leaseTTL = d
		}
	}
}

// WithStepReaper sets how recovery stops a dead runner's programs.
func WithStepReaper(r StepReaper) Option { return func(s *Service) { s.reaper = r } }

// WithTargetLocker sets how steps on one target are serialised across
// processes (default: within this process only).
func WithTargetLocker(l TargetLocker) Option {
	return func(s *Service) {
		if l != nil {
			s.locks = l
		}
	}
}

// localLocks serialises steps per target within one process.
type localLocks struct {
	mu   sync.Mutex
	held map[string]chan struct{}
}

func newLocalLocks() *localLocks { return &localLocks{held: map[string]chan struct{}{}} }

func (l *localLocks) Lock(ctx context.Context, env, target string) (func(), error) {
	key := env + "\x00" + target
	for {
		l.mu.Lock()
		ch, busy := l.held[key]
		if !busy {
			ch = make(chan struct{})
			l.held[key] = ch
			l.mu.Unlock()
			var once sync.Once
			return func() {
				once.Do(func() {
					l.mu.Lock()
					delete(l.held, key)
					l.mu.Unlock()
					close(ch)
				})
			}, nil
		}
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
