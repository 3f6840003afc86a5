package config

import (
	"encoding"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// DefaultFile is read from the working directory when neither --config nor
// DAYTWO_CONFIG names a file.
const DefaultFile = "daytwo.yaml"

// EnvKeys maps the environment variables daytwo always honours onto
// configuration keys. DAYTWO_CONFIG (which file) and the secrets
// DAYTWO_SN_PASSWORD, DAYTWO_SN_CLIENT_SECRET and DAYTWO_AUDIT_KEY are
// handled apart: secrets never enter the configuration tree.
var EnvKeys = map[string]string{
	"DAYTWO_DB":                "store.path",
	"DAYTWO_DB_URL":            "store.url",
	"DAYTWO_SN_INSTANCE":       "servicenow.instance",
	"DAYTWO_SN_USER":           "servicenow.auth.username",
	"DAYTWO_SN_AUTH":           "servicenow.auth.method",
	"DAYTWO_SN_CLIENT_ID":      "servicenow.auth.client_id",
	"DAYTWO_SN_APPROVER_USER":  "servicenow.approver.username",
	"DAYTWO_SYNC_LISTEN":       "sync.listen",
	"DAYTWO_SYNC_INTERVAL":     "sync.interval",
	"DAYTWO_SYNC_LEASE_TTL":    "sync.lease_ttl",
	"DAYTWO_READ_ONLY":         "console.read_only",
	"DAYTWO_LOG_FILE":          "console.log_file",
	"DAYTWO_AUDIT_ANCHOR_FILE": "audit.anchor_file",
}

// Source says where Load finds each layer.
type Source struct {
	// File is the --config flag ("" = DAYTWO_CONFIG, else ./daytwo.yaml if
	// it exists, else no file).
	File string
	// Getenv and Environ read the process environment; nil means the real
	// one. Tests inject their own.
	Getenv  func(string) string
	Environ func() []string
	// Flags are the parsed command-line flags; FlagKeys maps the names of
	// those that override configuration keys (e.g. "db" → "store.path").
	Flags    *pflag.FlagSet
	FlagKeys map[string]string
}

// Problem is one thing wrong with the configuration.
type Problem struct {
	Key     string `json:"key"`
	Message string `json:"message"`
}

// Error lists every problem found in a configuration.
type Error struct {
	File     string    `json:"file"`
	Problems []Problem `json:"problems"`
}

func (e *Error) Error() string {
	var b strings.Builder
	where := e.File
	if where == "" {
		where = "configuration"
	}
	if len(e.Problems) == 1 {
		fmt.Fprintf(&b, "%s: %s", where, e.Problems[0])
		return b.String()
	}
	fmt.Fprintf(&b, "%s: %d problems:", where, len(e.Problems))
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n  %s", strings.ReplaceAll(p.String(), "\n", "\n    "))
	}
	return b.String()
}

func (p Problem) String() string {
	if p.Key == "" {
		return p.Message
	}
	return p.Key + ": " + p.Message
}

// Load reads and validates the configuration. Any problem comes back as an
// *Error listing all of them.
func Load(src Source) (*Config, error) {
	if src.Getenv == nil {
		src.Getenv = os.Getenv
	}
	if src.Environ == nil {
		src.Environ = os.Environ
	}
	path, explicit := src.File, src.File != ""
	if !explicit {
		if path = src.Getenv("DAYTWO_CONFIG"); path != "" {
			explicit = true
		} else if _, err := os.Stat(DefaultFile); err == nil {
			path = DefaultFile
		}
	}
	fail := func(key, format string, args ...any) (*Config, error) {
		return nil, &Error{File: path, Problems: []Problem{{Key: key, Message: fmt.Sprintf(format, args...)}}}
	}

	k := koanf.NewWithConf(koanf.Conf{Delim: ".", StrictMerge: false})
	if err := k.Load(confmap.Provider(defaults(), "."), nil); err != nil {
		return nil, fmt.Errorf("config: defaults: %w", err)
	}
	var probs []Problem
	if path != "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			return fail("", "%v", err)
		}
		path = abs
		if _, err := os.Stat(path); err != nil {
			if explicit || !errors.Is(err, os.ErrNotExist) {
				return fail("", "cannot read configuration file: %v", errors.Unwrap(err))
			}
		}
		fk := koanf.New(".")
		if err := fk.Load(file.Provider(path), yaml.Parser()); err != nil {
			return fail("", "not valid YAML: %v", err)
		}
		tree := fk.Raw()
		probs = append(probs, unknownKeys("", tree, reflect.TypeOf(Config{}))...)
		resolvePaths(tree, filepath.Dir(path))
		elementDefaults(tree)
		stringifyMaps(tree)
		if err := k.Load(confmap.Provider(tree, ""), nil); err != nil {
			return fail("", "%v", err)
		}
	}
	envLayer := env.Provider(".", env.Opt{
		Prefix:      "DAYTWO_",
		EnvironFunc: src.Environ,
		TransformFunc: func(name, value string) (string, any) {
			key := EnvKeys[name]
			if key == "" || value == "" {
				return "", nil
			}
			return key, value
		},
	})
	if err := k.Load(envLayer, nil); err != nil {
		return nil, fmt.Errorf("config: environment: %w", err)
	}
	if src.Flags != nil {
		flagLayer := posflag.ProviderWithFlag(src.Flags, ".", nil, func(f *pflag.Flag) (string, any) {
			key := src.FlagKeys[f.Name]
			if key == "" {
				return "", nil
			}
			return key, posflag.FlagVal(src.Flags, f)
		})
		if err := k.Load(flagLayer, nil); err != nil {
			return nil, fmt.Errorf("config: flags: %w", err)
		}
	}

	var cfg Config
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		TagName: "koanf",
		Result:  &cfg,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			durationHook,
			mapstructure.StringToTimeHookFunc(time.RFC3339),
			textHook,
			boolStringHook,
		),
	})
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	// One copy of the merged tree serves the decode (which only reads it)
	// and the key checks after it.
	merged := k.Raw()
	if err := dec.Decode(merged); err != nil {
		probs = append(probs, decodeProblems(err)...)
	}
	cfg.File = path
	cfg.merged = merged
	// Validate even a tree that did not decode cleanly, so that one run
	// reports everything; skip what a decode problem already covers.
	origins := cfg.expand()
	applyElementDefaults(&cfg)
	for _, p := range append(validate(&cfg, origins), readSecrets(&cfg, src.Getenv)...) {
		if !coveredBy(p.Key, probs) {
			probs = append(probs, p)
		}
	}
	if len(probs) > 0 {
		sortProblems(probs)
		return nil, &Error{File: path, Problems: probs}
	}
	return &cfg, nil
}

// coveredBy reports whether a problem at key is a consequence of one
// already found at the same key or above it.
func coveredBy(key string, probs []Problem) bool {
	for _, p := range probs {
		if p.Key == "" {
			continue
		}
		if key == p.Key || strings.HasPrefix(key, p.Key+".") || strings.HasPrefix(key, p.Key+"[") || strings.HasPrefix(p.Key, key+".") {
			return true
		}
	}
	return false
}

// sortProblems orders problems by key, keeping the file's order for keys
// with an index (environments[10] after environments[9]).
func sortProblems(probs []Problem) {
	sort.SliceStable(probs, func(i, j int) bool { return keyLess(probs[i].Key, probs[j].Key) })
}

func keyLess(a, b string) bool {
	for a != "" && b != "" {
		ai, bi := strings.IndexAny(a, "[."), strings.IndexAny(b, "[.")
		if ai < 0 {
			ai = len(a)
		}
		if bi < 0 {
			bi = len(b)
		}
		pa, pb := a[:ai], b[:bi]
		if na, ea := strconv.Atoi(strings.TrimSuffix(pa, "]")); ea == nil {
			if nb, eb := strconv.Atoi(strings.TrimSuffix(pb, "]")); eb == nil && na != nb {
				return na < nb
			}
		}
		if pa != pb {
			return pa < pb
		}
		a, b = strings.TrimLeft(a[ai:], "[."), strings.TrimLeft(b[bi:], "[.")
	}
	return len(a) < len(b)
}

// readSecrets fills cfg.Secrets from the environment, else from the files
// the configuration names. Problems name the key or variable, never the
// secret.
func readSecrets(cfg *Config, getenv func(string) string) []Problem {
	var probs []Problem
	read := func(envName, key, path string) (string, string) {
		if v := getenv(envName); v != "" {
			return v, envName
		}
		if path == "" {
			return "", ""
		}
		b, err := os.ReadFile(path)
		if err != nil {
			probs = append(probs, Problem{Key: key, Message: fmt.Sprintf("cannot read secret file %s: %v", path, errors.Unwrap(err))})
			return "", ""
		}
		return strings.TrimRight(string(b), "\r\n"), "file " + path
	}
	a := cfg.ServiceNow.Auth
	cfg.Secrets.Password, cfg.Secrets.PasswordSource = read("DAYTWO_SN_PASSWORD", "servicenow.auth.password_file", a.PasswordFile)
	cfg.Secrets.ClientSecret, cfg.Secrets.ClientSecretSource = read("DAYTWO_SN_CLIENT_SECRET", "servicenow.auth.client_secret_file", a.ClientSecretFile)
	cfg.Secrets.ApproverPassword, _ = read("DAYTWO_SN_APPROVER_PASSWORD", "servicenow.approver.password_file", cfg.ServiceNow.Approver.PasswordFile)
	cfg.Secrets.DBPassword, cfg.Secrets.DBPasswordSource = read("DAYTWO_DB_PASSWORD", "store.password_file", "")
	if cfg.Secrets.DBPassword == "" {
		cfg.Secrets.DBPassword, cfg.Secrets.DBPasswordSource = read("PGPASSWORD", "store.password_file", cfg.Store.PasswordFile)
	}
	cfg.Secrets.AlertmanagerToken, _ = read("DAYTWO_ALERTMANAGER_TOKEN", "alertmanager.token_file", cfg.Alertmanager.TokenFile)
	if key, src := read("DAYTWO_AUDIT_KEY", "audit.key_file", cfg.Audit.KeyFile); key != "" {
		if len(key) < MinAuditKeyLen {
			where := "audit.key_file"
			if src == "DAYTWO_AUDIT_KEY" {
				where = "DAYTWO_AUDIT_KEY"
			}
			probs = append(probs, Problem{Key: where, Message: fmt.Sprintf("the audit key (from %s) is %d bytes: use at least %d (e.g. openssl rand -hex 32)", src, len(key), MinAuditKeyLen)})
		} else {
			cfg.Secrets.AuditKey, cfg.Secrets.AuditKeySource = []byte(key), src
		}
	}
	return probs
}

// decodeProblems turns mapstructure's joined errors into problems.
func decodeProblems(err error) []Problem {
	var out []Problem
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		if de, ok := err.(*mapstructure.DecodeError); ok {
			inner := de.Unwrap()
			if _, nested := inner.(*mapstructure.DecodeError); nested {
				walk(inner)
				return
			}
			if _, joined := inner.(interface{ Unwrap() []error }); joined {
				walk(inner)
				return
			}
			msg := inner.Error()
			var ut *mapstructure.UnconvertibleTypeError
			if errors.As(inner, &ut) {
				msg = fmt.Sprintf("wrong type: want %s, got %s", friendlyType(ut.Expected.Type()), friendlyValue(ut.Value))
			}
			out = append(out, Problem{Key: de.Name(), Message: msg})
			return
		}
		var de *mapstructure.DecodeError
		if inner := errors.Unwrap(err); inner != nil && errors.As(inner, &de) {
			walk(inner) // mapstructure's "decoding failed" wrapper
			return
		}
		out = append(out, Problem{Message: err.Error()})
	}
	walk(err)
	return out
}

func friendlyType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	}
	return t.String()
}

func friendlyValue(v any) string {
	switch v := v.(type) {
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	case string:
		return strconv.Quote(v)
	default:
		return fmt.Sprint(v)
	}
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	textType     = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

// durationHook accepts "30s"-style strings for durations and refuses bare
// numbers, which would silently mean nanoseconds.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType {
		return data, nil
	}
	switch v := data.(type) {
	case string:
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration: want e.g. 30s, 5m or 2h", v)
		}
		if d < 0 {
			return nil, fmt.Errorf("%q: a duration cannot be negative", v)
		}
		return d, nil
	case time.Duration:
		return v, nil
	default:
		return nil, fmt.Errorf("%v is not a duration: write it with a unit, e.g. %vs", v, v)
	}
}

// textHook decodes strings and numbers into TextUnmarshalers (BatchSize).
func textHook(from, to reflect.Type, data any) (any, error) {
	if !reflect.PointerTo(to).Implements(textType) || to == reflect.TypeOf(time.Time{}) {
		return data, nil
	}
	var s string
	switch v := data.(type) {
	case string:
		s = v
	case int, int64, uint64, float64:
		s = fmt.Sprint(v)
	default:
		return data, nil
	}
	out := reflect.New(to)
	if err := out.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
		return nil, err
	}
	return out.Elem().Interface(), nil
}

// boolStringHook lets environment variables (always strings) set booleans.
func boolStringHook(from, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.Bool || from.Kind() != reflect.String {
		return data, nil
	}
	b, err := strconv.ParseBool(data.(string))
	if err != nil {
		return nil, fmt.Errorf("%q is not true or false", data)
	}
	return b, nil
}
