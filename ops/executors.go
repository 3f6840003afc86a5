package ops

import (
	"context"
	"time"
)

// AnsibleSpec configures the Ansible executor: one ansible-playbook run per
// batch, limited to the batch's targets (target name = inventory host).
type AnsibleSpec struct {
	// Playbook is the playbook a deploy runs.
	Playbook string `koanf:"playbook" json:"playbook"`
	// Inventory is an inventory file or directory.
	Inventory string `koanf:"inventory" json:"inventory"`
	// RollbackPlaybook, if set, is the playbook a rollback runs; without it
	// Playbook runs with the previous release and daytwo_rollback true.
	RollbackPlaybook string `koanf:"rollback_playbook" json:"rollback_playbook,omitempty"`
	// ExtraVars are templated like commands and passed as extra vars, the
	// same for every host of the batch.
	ExtraVars map[string]string `koanf:"extra_vars" json:"extra_vars,omitempty"`
	// Forks is ansible-playbook's --forks (0: Ansible's own default).
	Forks int `koanf:"forks" json:"forks,omitempty"`
	// Timeout bounds one ansible-playbook run (0: deploy.timeout).
	Timeout time.Duration `koanf:"timeout" json:"timeout,omitempty"`
}

// SSHSpec configures the SSH executor: the command runs on the target over
// SSH, host keys verified.
type SSHSpec struct {
	// Host is templated; empty means the target's name.
	Host string `koanf:"host" json:"host,omitempty"`
	User string `koanf:"user" json:"user,omitempty"`
	Port int    `koanf:"port" json:"port,omitempty"`
	// KeyFile is the private key to authenticate with (it must not be
	// readable by others).
	KeyFile string `koanf:"key_file" json:"key_file,omitempty"`
	// KnownHosts holds the host keys to verify against (empty: the user's
	// ~/.ssh/known_hosts and the system's).
	KnownHosts string `koanf:"known_hosts" json:"known_hosts,omitempty"`
	// Command and Rollback are argv templates run on the target; each
	// argument is quoted for the remote shell. An empty Rollback deploys
	// the previous release with Command.
	Command  []string `koanf:"command" json:"command,omitempty"`
	Rollback []string `koanf:"rollback" json:"rollback,omitempty"`
}

// BatchExecutor is implemented by executors that put a whole batch on a
// release at once (one Ansible run for all of its targets). The engine
// still journals a step per target: each request carries that target's
// RunID, Epoch and OnStart, and the executor calls every OnStart with the
// pid of the one program it starts. The result holds an entry per
// request's target, nil for success; a target without an entry failed.
type BatchExecutor interface {
	DeployBatch(ctx context.Context, reqs []StepRequest, log LogSink) map[string]error
}

// BatchRollbacker rolls a set of targets back at once; reqs are the
// forward requests, as for Rollbacker.
type BatchRollbacker interface {
	RollbackBatch(ctx context.Context, reqs []StepRequest, log LogSink) map[string]error
}
