package ops

import "context"

// ChangeFeed is a store that says when something was committed to it — by
// this process or any other on the same database (a daemon on another
// host, a console elsewhere) — so that a reader re-reads at once instead of
// waiting for its next poll. The PostgreSQL store implements it with
// LISTEN/NOTIFY; a reader keeps polling, more slowly, where the store does
// not.
type ChangeFeed interface {
	// Changes returns a channel that receives a value soon after each
	// commit that changed updates, runs, their steps or log, changes,
	// approvals or the outbox (several commits may arrive as one value), and
	// once after the feed reconnected (commits may have been missed). It is
	// closed when ctx ends.
	Changes(ctx context.Context) <-chan struct{}
}

// ChangeFeed returns the store's change feed, or false when the store has
// none (SQLite: readers poll).
func (s *Service) ChangeFeed() (ChangeFeed, bool) {
	f, ok := s.store.(ChangeFeed)
	return f, ok
}
