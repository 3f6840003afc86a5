package pg

import (
	"context"
	"fmt"

	"github.com/daytwo/daytwo/store"
)

// Heartbeat records that daemon d is alive (inserting it the first time).
func (db *DB) Heartbeat(ctx context.Context, d store.Daemon) error {
	now := formatTime(db.clock())
	_, err := db.quiet.ExecContext(ctx, `INSERT INTO daemons (id, host, pid, version, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, version = excluded.version`,
		d.ID, d.Host, d.PID, d.Version, now, now)
	if err != nil {
		return fmt.Errorf("store: heartbeat of %s: %w", d.ID, mapErr(err))
	}
	return nil
}

// DaemonStopped removes a daemon that stopped cleanly.
func (db *DB) DaemonStopped(ctx context.Context, id string) error {
	if _, err := db.sql.ExecContext(ctx, `DELETE FROM daemons WHERE id = ?`, id); err != nil {
		return fmt.Errorf("store: daemon %s stopped: %w", id, mapErr(err))
	}
	return nil
}

// Daemons lists the daemons on this database, with the leases each holds.
func (db *DB) Daemons(ctx context.Context) ([]store.Daemon, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT d.id, d.host, d.pid, d.version, d.started_at, d.heartbeat_at, COALESCE(l.environment, '')
		FROM daemons d LEFT JOIN leases l ON l.holder = d.id AND l.expires_at > ? ORDER BY d.id, l.environment`, formatTime(db.clock()))
	if err != nil {
		return nil, fmt.Errorf("store: daemons: %w", err)
	}
	defer rows.Close()
	out := []store.Daemon{}
	for rows.Next() {
		var (
			d                 store.Daemon
			started, hb, held string
		)
		if err := rows.Scan(&d.ID, &d.Host, &d.PID, &d.Version, &started, &hb, &held); err != nil {
			return nil, fmt.Errorf("store: scan daemon: %w", err)
		}
		if n := len(out); n > 0 && out[n-1].ID == d.ID {
			out[n-1].Holds = append(out[n-1].Holds, held)
			continue
		}
		if d.StartedAt, err = parseTime(started); err != nil {
			return nil, err
		}
		if d.HeartbeatAt, err = parseTime(hb); err != nil {
			return nil, err
		}
		d.Holds = []string{}
		if held != "" {
			d.Holds = append(d.Holds, held)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
