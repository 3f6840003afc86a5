package main

// Shell completion (`daytwo completion bash|zsh|fish|powershell`): the
// names of environments, updates, change numbers and -o values, from the
// configuration and the local store only. Completion never calls
// ServiceNow and never creates the database.

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/daytwo/daytwo/ops"
)

// completeLimit bounds how many updates or changes completion offers.
const completeLimit = 500

// completion kinds of a command's positional arguments.
type argKind int

const (
	argEnv argKind = iota
	argUpdate
	argChange
)

// argCompletions names, by command path, what each positional argument
// is; the last kind repeats when variadic is set.
var argCompletions = map[string]struct {
	kinds    [][]argKind
	variadic bool
}{
	"daytwo env show":       {kinds: [][]argKind{{argEnv}}},
	"daytwo env diff":       {kinds: [][]argKind{{argEnv}, {argEnv}}},
	"daytwo propose":        {kinds: [][]argKind{{argEnv}}},
	"daytwo rollback":       {kinds: [][]argKind{{argEnv}}},
	"daytwo drift":          {kinds: [][]argKind{{argEnv}}, variadic: true},
	"daytwo policy check":   {kinds: [][]argKind{{argEnv}}, variadic: true},
	"daytwo run":            {kinds: [][]argKind{{argUpdate, argEnv}}},
	"daytwo update show":    {kinds: [][]argKind{{argUpdate}}},
	"daytwo update cancel":  {kinds: [][]argKind{{argUpdate}}},
	"daytwo update logs":    {kinds: [][]argKind{{argUpdate}}},
	"daytwo change show":    {kinds: [][]argKind{{argChange}}},
	"daytwo change approve": {kinds: [][]argKind{{argChange}}},
	"daytwo change reject":  {kinds: [][]argKind{{argChange}}},
}

// addCompletions gives every command under root its argument completion
// and every --env flag the environment names.
func (a *app) addCompletions(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if spec, ok := argCompletions[c.CommandPath()]; ok {
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
				i := len(args)
				if i >= len(spec.kinds) {
					if !spec.variadic {
						return nil, cobra.ShellCompDirectiveNoFileComp
					}
					i = len(spec.kinds) - 1
				}
				return a.complete(cmd.Context(), spec.kinds[i], args, prefix), cobra.ShellCompDirectiveNoFileComp
			}
		}
		if c.Flags().Lookup("env") != nil {
			_ = c.RegisterFlagCompletionFunc("env", func(cmd *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
				return a.complete(cmd.Context(), []argKind{argEnv}, nil, prefix), cobra.ShellCompDirectiveNoFileComp
			})
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// complete lists the candidates of kinds that start with prefix, leaving
// out what args already name. Errors (no configuration, no database yet)
// complete nothing.
func (a *app) complete(ctx context.Context, kinds []argKind, args []string, prefix string) []cobra.Completion {
	if ctx == nil {
		ctx = context.Background()
	}
	cfg, err := a.config()
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	add := func(value, desc string) {
		if !strings.HasPrefix(value, prefix) {
			return
		}
		for _, a := range args {
			if a == value {
				return
			}
		}
		if desc != "" {
			value += "\t" + desc
		}
		out = append(out, value)
	}
	var svc *ops.Service
	needStore := func() bool {
		if svc != nil {
			return true
		}
		if cfg.Store.URL == "" {
			if _, err := os.Stat(cfg.Store.Path); errors.Is(err, fs.ErrNotExist) {
				return false // nothing recorded yet, and completion creates no database
			}
		}
		svc, err = a.service(ctx)
		return err == nil
	}
	for _, k := range kinds {
		switch k {
		case argEnv:
			for _, e := range cfg.Environments {
				desc := e.Tier
				if e.RequiresChange {
					desc = strings.TrimSpace(desc + ", gated")
				}
				add(e.Name, desc)
			}
		case argUpdate:
			if !needStore() {
				continue
			}
			us, err := svc.Updates(ctx, ops.UpdateFilter{Limit: completeLimit})
			if err != nil {
				continue
			}
			for _, u := range us {
				add(u.ID, u.Environment+" "+u.Version+" "+string(u.State))
			}
			for _, u := range us {
				if u.ChangeNumber != "" {
					add(u.ChangeNumber, "change of "+u.ID)
				}
			}
		case argChange:
			if !needStore() {
				continue
			}
			cs, err := svc.Changes(ctx, ops.ChangeFilter{ActiveOnly: true, Limit: completeLimit})
			if err != nil {
				continue
			}
			for _, c := range cs {
				add(c.Number, c.State.String()+" "+truncate(c.ShortDescription, 40))
			}
		}
	}
	return out
}
