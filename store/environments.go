package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/daytwo/daytwo/ops"
)

// SyncEnvironments records the configured environments. The configuration
// file is the source of truth; the store keeps a copy so that history (whose
// foreign keys point at environments) and other processes can see them.
// Every environment whose configuration is new or changed gets an
// "environment.configured" audit event by actor, in the same transaction.
// Environments removed from the configuration are kept with their history.
//
// Most processes find nothing to change: they read the stored copies and
// take no write lock (a console or `sync --once` starting beside a busy
// daemon used to queue behind its transaction for nothing).
func (db *DB) SyncEnvironments(ctx context.Context, envs []ops.Environment, actor string) error {
	specs := make([]string, len(envs))
	for i, e := range envs {
		spec, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("store: encode environment %s: %w", e.Name, err)
		}
		specs[i] = string(spec)
	}
	if same, err := db.environmentsAsStored(ctx, envs, specs); err != nil {
		return err
	} else if same {
		return nil
	}
	return db.WithTx(ctx, func(tx *Tx) error {
		stmt, err := tx.tx.PrepareContext(ctx, `INSERT INTO environments (name, tier, requires_change, spec_json, updated_at, service, stage)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET tier = excluded.tier, requires_change = excluded.requires_change,
				spec_json = excluded.spec_json, updated_at = excluded.updated_at,
				service = excluded.service, stage = excluded.stage
			WHERE spec_json <> excluded.spec_json OR tier <> excluded.tier OR requires_change <> excluded.requires_change`)
		if err != nil {
			return fmt.Errorf("store: sync environments: %w", err)
		}
		defer stmt.Close()
		for i, e := range envs {
			res, err := stmt.ExecContext(ctx, e.Name, e.Tier, e.RequiresChange, specs[i], formatTime(tx.now), e.Service, e.StageName())
			if err != nil {
				return fmt.Errorf("store: sync environment %s: %w", e.Name, mapErr(err))
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue
			}
			sum := sha256.Sum256([]byte(specs[i]))
			if _, err := tx.AppendEvent(ctx, ops.Event{
				Actor: actor, Action: "environment.configured", Subject: e.Name, Environment: e.Name, Result: "ok",
				Detail: map[string]any{"spec_sha256": hex.EncodeToString(sum[:]), "targets": len(e.Targets), "requires_change": e.RequiresChange},
			}); err != nil {
				return err
			}
		}
		return nil
	})
}

// environmentsAsStored reports whether every environment is stored with
// the same spec, tier and requires_change (what the upsert's WHERE
// compares), without a write lock.
func (db *DB) environmentsAsStored(ctx context.Context, envs []ops.Environment, specs []string) (bool, error) {
	type stored struct {
		tier, spec string
		gated      bool
	}
	rows, err := db.sql.QueryContext(ctx, `SELECT name, tier, requires_change, spec_json FROM environments`)
	if err != nil {
		return false, fmt.Errorf("store: read environments: %w", err)
	}
	defer rows.Close()
	have := make(map[string]stored, len(envs))
	for rows.Next() {
		var name string
		var st stored
		if err := rows.Scan(&name, &st.tier, &st.gated, &st.spec); err != nil {
			return false, fmt.Errorf("store: read environments: %w", err)
		}
		have[name] = st
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("store: read environments: %w", err)
	}
	for i, e := range envs {
		st, ok := have[e.Name]
		if !ok || st.spec != specs[i] || st.tier != e.Tier || st.gated != e.RequiresChange {
			return false, nil
		}
	}
	return true, nil
}

// EnvironmentNames lists every environment the store knows, sorted.
func (db *DB) EnvironmentNames(ctx context.Context) ([]string, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT name FROM environments ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: list environments: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// CurrentReleases returns the active release of every environment that has
// one, keyed by environment name.
func (db *DB) CurrentReleases(ctx context.Context) (map[string]ops.Release, error) {
	rows, err := db.sql.QueryContext(ctx, releaseColumns+` WHERE status = 'active'`)
	if err != nil {
		return nil, fmt.Errorf("store: current releases: %w", err)
	}
	defer rows.Close()
	out := map[string]ops.Release{}
	for rows.Next() {
		r, err := scanRelease(rows)
		if err != nil {
			return nil, err
		}
		out[r.Environment] = r
	}
	return out, rows.Err()
}

// Releases returns an environment's release history, newest first.
func (db *DB) Releases(ctx context.Context, env string, limit int) ([]ops.Release, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := db.sql.QueryContext(ctx, releaseColumns+` WHERE environment = ? ORDER BY id DESC LIMIT ?`, env, limit)
	if err != nil {
		return nil, fmt.Errorf("store: releases of %s: %w", env, err)
	}
	defer rows.Close()
	var out []ops.Release
	for rows.Next() {
		r, err := scanRelease(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RecordRelease makes r the active release of its environment inside tx,
// superseding the previous one.
func (tx *Tx) RecordRelease(ctx context.Context, r ops.Release) (ops.Release, error) {
	if r.Digest == "" {
		r.Digest = ops.ReleaseDigest(r.Version, r.Config)
	}
	cfg, err := json.Marshal(nonNilMap(r.Config))
	if err != nil {
		return r, err
	}
	if _, err := tx.tx.ExecContext(ctx, `UPDATE releases SET status = 'superseded' WHERE environment = ? AND status = 'active'`, r.Environment); err != nil {
		return r, fmt.Errorf("store: supersede release of %s: %w", r.Environment, mapErr(err))
	}
	r.Status, r.CreatedAt = ops.ReleaseActive, tx.now
	res, err := tx.tx.ExecContext(ctx, `INSERT INTO releases (environment, version, config_json, digest, update_id, status, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, r.Environment, r.Version, string(cfg), r.Digest, r.UpdateID, r.Status, formatTime(r.CreatedAt))
	if err != nil {
		return r, fmt.Errorf("store: record release of %s: %w", r.Environment, mapErr(err))
	}
	r.ID, err = res.LastInsertId()
	return r, err
}

const releaseColumns = `SELECT id, environment, version, config_json, digest, COALESCE(update_id, ''), status, created_at FROM releases`

func scanRelease(rows *sql.Rows) (ops.Release, error) {
	var (
		r       ops.Release
		cfg, ts string
	)
	if err := rows.Scan(&r.ID, &r.Environment, &r.Version, &cfg, &r.Digest, &r.UpdateID, &r.Status, &ts); err != nil {
		return r, fmt.Errorf("store: scan release: %w", err)
	}
	if err := json.Unmarshal([]byte(cfg), &r.Config); err != nil {
		return r, fmt.Errorf("store: release %d config: %w", r.ID, err)
	}
	var err error
	r.CreatedAt, err = parseTime(ts)
	return r, err
}

// nonNilMap makes a nil map encode as {} rather than null.
func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
