package pg

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daytwo/daytwo/ops"
)

// notifyChannel is the LISTEN/NOTIFY channel on which every daytwo process
// on a database announces its commits.
const notifyChannel = "daytwo_changes"

var _ ops.ChangeFeed = (*DB)(nil)

// startNotifier starts the goroutine that sends one NOTIFY for each burst
// of commits (changed kicks it). Writes never wait for it; Close sends a
// pending one before it returns, so that a short-lived command's last
// write is announced too.
func (db *DB) startNotifier() {
	db.kick = make(chan struct{}, 1)
	db.stopNotify = make(chan struct{})
	db.notifyDone = make(chan struct{})
	go func() {
		defer close(db.notifyDone)
		for {
			select {
			case <-db.kick:
				db.sendNotify()
			case <-db.stopNotify:
				select {
				case <-db.kick:
					db.sendNotify()
				default:
				}
				return
			}
		}
	}()
}

func (db *DB) sendNotify() {
	// Bounded: Close waits for a pending notification.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// A failed NOTIFY costs a reader its early refresh only: it still polls.
	if _, err := db.sql.db.ExecContext(ctx, `SELECT pg_notify($1, '')`, notifyChannel); err != nil {
		db.log.Debug("change notification not sent", "err", db.scrub(err))
	}
}

// changed records that a commit changed something readers show.
func (db *DB) changed() {
	if db.kick == nil {
		return
	}
	select {
	case db.kick <- struct{}{}:
	default: // one is pending already: it covers this commit too
	}
}

// Changes implements ops.ChangeFeed with LISTEN on a connection of its own
// (outside the pool), reconnecting with backoff while the server is away
// and signalling once after each reconnect.
func (db *DB) Changes(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	signal := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	go func() {
		defer close(ch)
		backoff := 100 * time.Millisecond
		connected := false
		for ctx.Err() == nil {
			err := db.listen(ctx, func() {
				if connected {
					signal() // reconnected: commits may have been missed
				}
				connected, backoff = true, 100*time.Millisecond
			}, signal)
			if ctx.Err() != nil {
				return
			}
			db.log.Debug("change feed lost its connection; reconnecting", "err", db.scrub(err), "in", backoff.String())
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}()
	return ch
}

// listen holds one LISTEN connection until it fails or ctx ends.
func (db *DB) listen(ctx context.Context, listening, notified func()) error {
	cfg := db.pool.Config().ConnConfig.Copy()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = c.Close(cctx)
	}()
	if _, err := c.Exec(ctx, "LISTEN "+pgx.Identifier{notifyChannel}.Sanitize()); err != nil {
		return err
	}
	listening()
	for {
		if _, err := c.WaitForNotification(ctx); err != nil {
			return err
		}
		notified()
	}
}

// writes reports whether a statement run through QueryContext or
// QueryRowContext writes (INSERT … RETURNING and the like).
func writes(q string) bool {
	q = strings.ToUpper(strings.TrimSpace(q))
	for _, w := range []string{"INSERT", "UPDATE", "DELETE", "WITH"} {
		if strings.HasPrefix(q, w) {
			return w != "WITH" || strings.Contains(q, "INSERT") || strings.Contains(q, "UPDATE") || strings.Contains(q, "DELETE")
		}
	}
	return false
}
