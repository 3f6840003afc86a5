package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/ops"
)

type statusReport struct {
	Version    string          `json:"version"`
	ConfigFile string          `json:"config_file"`
	Instance   string          `json:"servicenow_instance"`
	AuthMethod string          `json:"servicenow_auth"`
	ReadOnly   bool            `json:"read_only"`
	Store      ops.StoreStatus `json:"store"`
	// StoreCreated is false when no database exists yet at the store path
	// (status does not create one).
	StoreCreated bool `json:"store_created"`
}

func (a *app) statusCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Summarise configuration, local store, mirror and outbox",
		Args:  exactArgs(),
		RunE: a.runE(&out, nil, func(ctx context.Context, svc *ops.Service, _ []string) error {
			return a.runStatus(ctx, svc, out)
		}),
	}
	addOutputFlag(cmd, &out)
	return cmd
}

func (a *app) runStatus(ctx context.Context, svc *ops.Service, out string) error {
	cfg := a.cfg
	st, err := svc.StoreStatus(ctx)
	if err != nil {
		return err
	}
	rep := statusReport{
		Version: version, ConfigFile: cfg.File, Instance: cfg.ServiceNow.Instance,
		AuthMethod: cfg.ServiceNow.Auth.Method, ReadOnly: cfg.Console.ReadOnly, Store: st, StoreCreated: a.noStore == "",
	}
	if a.noStore != "" {
		rep.Store.Path = a.noStore
	}
	if out == outJSON {
		return a.printJSON(rep)
	}
	w := a.stdout
	fmt.Fprintf(w, "daytwo %s\n", rep.Version)
	fmt.Fprintf(w, "config:      %s\n", orDash(rep.ConfigFile))
	fmt.Fprintf(w, "servicenow:  %s (%s auth)\n", orDash(rep.Instance), rep.AuthMethod)
	if rep.StoreCreated {
		fmt.Fprintf(w, "store:       %s (schema %d)\n", rep.Store.Path, st.SchemaVersion)
	} else {
		fmt.Fprintf(w, "store:       %s (not created yet: the first sync or proposal creates it)\n", rep.Store.Path)
	}
	fmt.Fprintf(w, "environments %d, changes mirrored %d (%d active), audit events %d\n", st.Environments, st.Changes, st.ActiveChanges, st.AuditEvents)
	fmt.Fprintf(w, "outbox:      %d pending, %d failed\n", st.OutboxPending, st.OutboxFailed)
	var upd []string
	for _, k := range slices.Sorted(maps.Keys(st.Updates)) {
		upd = append(upd, fmt.Sprintf("%s %d", k, st.Updates[k]))
	}
	fmt.Fprintf(w, "updates:     %s\n", orDash(strings.Join(upd, ", ")))
	var syncs []string
	for _, k := range slices.Sorted(maps.Keys(st.LastSync)) {
		syncs = append(syncs, k+" "+st.LastSync[k])
	}
	fmt.Fprintf(w, "last sync:   %s\n", orDash(strings.Join(syncs, ", ")))
	for _, d := range st.Daemons {
		fmt.Fprintf(w, "daemon:      %s pid %d %s, heartbeat %s, holds %s\n", d.Host, d.PID, orDash(d.Version), formatTime(d.HeartbeatAt), orDash(strings.Join(d.Holds, ", ")))
	}
	if rep.ReadOnly {
		fmt.Fprintln(w, "mode:        read-only")
	}
	return nil
}
