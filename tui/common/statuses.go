package common

import (
	"context"

	"github.com/daytwo/daytwo/ops"
)

// StatusSource is what the screens listing (service, environment) pairs
// read; *ops.Service implements it.
type StatusSource interface {
	EnvironmentStatuses(ctx context.Context) ([]ops.EnvironmentStatus, error)
	UpdateStatuses(ctx context.Context, f ops.UpdateFilter) ([]ops.UpdateStatus, error)
}

// ReadStatuses reads every pair's status and every open update (one per
// pair at most, newest first): what the services matrix and the
// environments list both load. It runs inside a screen's load command.
func ReadStatuses(ctx context.Context, src StatusSource) ([]ops.EnvironmentStatus, []ops.UpdateStatus, error) {
	envs, err := src.EnvironmentStatuses(ctx)
	if err != nil {
		return nil, nil, err
	}
	open, err := src.UpdateStatuses(ctx, ops.UpdateFilter{States: ops.OpenUpdateStates()})
	if err != nil {
		return envs, nil, err
	}
	return envs, open, nil
}

// Candidate is the version a proposal for unit suggests: what the pair
// it promotes from runs now ("" when it promotes from none).
func Candidate(envs []ops.EnvironmentStatus, unit string) string {
	var from string
	for _, e := range envs {
		if e.Environment.Name == unit {
			from = e.Environment.PromoteFrom
		}
	}
	for _, e := range envs {
		if from != "" && e.Environment.Name == from {
			return e.Current.Version
		}
	}
	return ""
}
