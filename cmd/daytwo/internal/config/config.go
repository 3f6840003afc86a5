// Package config loads daytwo's configuration in layers — built-in
// defaults, the YAML file, DAYTWO_* environment variables, then flags — and
// validates it strictly: an unknown key, a wrong type or an invalid value is
// an error naming the file, the key path and the problem, and all problems
// are reported at once.
//
// Only cmd/daytwo reads configuration; the other packages receive typed
// values built from it.
package config

import (
	"time"

	"github.com/daytwo/daytwo/ops"
)

// Config is daytwo's whole configuration. Key names (the koanf tags) are a
// contract with users: extend, never rename.
type Config struct {
	Store        Store             `koanf:"store"`
	ServiceNow   ServiceNow        `koanf:"servicenow"`
	Sync         Sync              `koanf:"sync"`
	Console      Console           `koanf:"console"`
	Audit        Audit             `koanf:"audit"`
	Alertmanager Alertmanager      `koanf:"alertmanager"`
	Environments []ops.Environment `koanf:"environments"`
	// Services, if set, are the applications the environments above are
	// shared by. After loading, Environments holds one entry per (service,
	// environment) pair and Stages the environments as written.
	Services []Service `koanf:"services"`
	// Stages are the environments as the file declares them: with
	// services the shared stages, without them the same as Environments.
	Stages   []ops.Environment `koanf:"-"`
	Freezes  []ops.Freeze      `koanf:"freezes"`
	Policies []ops.Policy      `koanf:"policies"`

	// File is the configuration file that was loaded ("" if none).
	File string `koanf:"-"`
	// Secrets were read from the environment or from files; they are never
	// part of the koanf tree, so nothing that prints the tree can leak them.
	Secrets Secrets `koanf:"-"`

	// merged is the tree after all layers, as written (durations as "30s"),
	// for `daytwo config show`.
	merged map[string]any
}

// Merged returns the configuration tree after all layers, before
// per-element defaults. It never holds secrets.
func (c *Config) Merged() map[string]any { return c.merged }

// Store configures the database: the SQLite file at Path, unless URL names
// a PostgreSQL database (postgres://…).
type Store struct {
	Path string `koanf:"path"`
	// URL (or DAYTWO_DB_URL) selects the PostgreSQL store. It must not
	// carry a password: that comes from DAYTWO_DB_PASSWORD, PGPASSWORD or
	// PasswordFile.
	URL          string `koanf:"url"`
	PasswordFile string `koanf:"password_file"`
}

// ServiceNow configures the connection to the ServiceNow instance.
type ServiceNow struct {
	Instance          string        `koanf:"instance"`
	Auth              Auth          `koanf:"auth"`
	CAFile            string        `koanf:"ca_file"`
	Timeout           time.Duration `koanf:"timeout"`
	PageSize          int           `koanf:"page_size"`
	AssignmentGroup   string        `koanf:"assignment_group"`
	CorrelationPrefix string        `koanf:"correlation_prefix"`
	MirrorCIChanges   bool          `koanf:"mirror_ci_changes"`
	FourEyes          bool          `koanf:"four_eyes"`
	// Approver is the person daytwo approves and rejects as (`change
	// approve`, the console). Empty: the integration user.
	Approver Approver `koanf:"approver"`
}

// Approver is a ServiceNow identity for decisions, separate from the
// integration user that raises changes (so four-eyes can hold).
type Approver struct {
	Username     string `koanf:"username"`
	PasswordFile string `koanf:"password_file"`
}

// Auth says how daytwo authenticates to ServiceNow. Secrets are not here:
// they come from DAYTWO_SN_PASSWORD / DAYTWO_SN_CLIENT_SECRET or from the
// files named by PasswordFile / ClientSecretFile.
type Auth struct {
	Method           string `koanf:"method"`
	Username         string `koanf:"username"`
	PasswordFile     string `koanf:"password_file"`
	Grant            string `koanf:"grant"`
	ClientID         string `koanf:"client_id"`
	ClientSecretFile string `koanf:"client_secret_file"`
}

// Sync configures the headless daemon.
type Sync struct {
	Interval time.Duration `koanf:"interval"`
	Listen   string        `koanf:"listen"`
	// LeaseTTL is how long a run's lease lasts without renewal: how soon
	// another process takes over a run whose runner died or stopped
	// answering.
	LeaseTTL time.Duration `koanf:"lease_ttl"`
}

// Console configures the terminal console.
type Console struct {
	// ReadOnly disables every action that changes ServiceNow or an
	// environment.
	ReadOnly bool `koanf:"read_only"`
	// LogFile receives the console's logs (never the terminal).
	LogFile string `koanf:"log_file"`
	// Theme is the console's colours: auto (follow the terminal's
	// background), dark, light or none (no colour; NO_COLOR forces it).
	Theme string `koanf:"theme"`
}

// Alertmanager configures the daemon's webhook receiver (POST
// /alertmanager on sync.listen). It is off until a token is set
// (DAYTWO_ALERTMANAGER_TOKEN or token_file): requests must carry it as a
// bearer token.
type Alertmanager struct {
	TokenFile string `koanf:"token_file"`
	// EnvironmentLabel and ServiceLabel name the alert labels that map an
	// alert to an environment ("environment") and a service ("service").
	EnvironmentLabel string `koanf:"environment_label"`
	ServiceLabel     string `koanf:"service_label"`
	// OpenIncidents makes a firing alert for a gated environment that is
	// not in a run (outside a verification window) open an incident
	// caused by the change of the release the environment runs.
	OpenIncidents bool `koanf:"open_incidents"`
}

// Audit anchors the audit chain outside the database.
type Audit struct {
	// KeyFile holds the key that HMACs every audit event (or set
	// DAYTWO_AUDIT_KEY). Keep it off the database's disk and its backups.
	KeyFile string `koanf:"key_file"`
	// AnchorFile receives the chain head (JSON lines, append-only) at every
	// run's close, besides the change's work notes.
	AnchorFile string `koanf:"anchor_file"`
}

// MinAuditKeyLen is the shortest audit key accepted, in bytes.
const MinAuditKeyLen = 16

// Secrets holds credentials. Its String and GoString never reveal them.
type Secrets struct {
	Password         string
	ClientSecret     string
	ApproverPassword string
	// DBPassword is the PostgreSQL password (store.url); DBPasswordSource
	// says where it came from.
	DBPassword       string
	DBPasswordSource string
	// AlertmanagerToken is the bearer token webhook requests must carry.
	AlertmanagerToken string
	// AuditKey keys the audit chain (HMAC-SHA256); nil when not configured.
	AuditKey []byte
	// AuditKeySource says where it came from, for display.
	AuditKeySource string
	// PasswordSource and ClientSecretSource say where each secret came from
	// (an environment variable or a file), for display; "" when unset.
	PasswordSource     string
	ClientSecretSource string
}

// String redacts the secrets.
func (s Secrets) String() string { return "[redacted]" }

// GoString redacts the secrets in %#v.
func (s Secrets) GoString() string { return "config.Secrets{[redacted]}" }

// Environment returns the named environment.
func (c *Config) Environment(name string) (ops.Environment, bool) {
	for _, e := range c.Environments {
		if e.Name == name {
			return e, true
		}
	}
	return ops.Environment{}, false
}

// defaults are the built-in first layer.
func defaults() map[string]any {
	return map[string]any{
		"store.path":                    "daytwo.db",
		"servicenow.auth.method":        "basic",
		"servicenow.auth.grant":         "password",
		"servicenow.timeout":            "30s",
		"servicenow.page_size":          1000,
		"servicenow.correlation_prefix": "daytwo",
		"servicenow.mirror_ci_changes":  true,
		"servicenow.four_eyes":          true,
		"sync.interval":                 "30s",
		"sync.listen":                   "127.0.0.1:9464",
		"sync.lease_ttl":                "60s",
	}
}

// Per-element defaults that a flat defaults map cannot express. Those where
// an explicit zero means something (retries: 0) are applied to the raw tree
// instead; see elementDefaults in load.go.
const (
	defaultDeployTimeout = 10 * time.Minute
	defaultChangeWindow  = 2 * time.Hour
	defaultProbeTimeout  = 5 * time.Second
)

func applyElementDefaults(c *Config) {
	for i := range c.Environments {
		e := &c.Environments[i]
		if e.Tier == "" {
			e.Tier = e.StageName()
		}
		if e.Deploy.Timeout == 0 {
			e.Deploy.Timeout = defaultDeployTimeout
		}
		if e.VersionProbe.Timeout == 0 {
			e.VersionProbe.Timeout = defaultProbeTimeout
		}
		if e.RequiresChange {
			if e.Change.Type == "" {
				e.Change.Type = "normal"
			}
			if e.Change.Window == 0 {
				e.Change.Window = defaultChangeWindow
			}
			if e.Change.AssignmentGroup == "" {
				e.Change.AssignmentGroup = c.ServiceNow.AssignmentGroup
			}
		}
		if e.Strategy.MaxParallel == 0 {
			e.Strategy.MaxParallel = 1
		}
	}
	for i := range c.Policies {
		if c.Policies[i].Action == "" {
			c.Policies[i].Action = ops.PolicyBlock
		}
	}
}
