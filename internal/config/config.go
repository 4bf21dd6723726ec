// Package config loads, expands, decodes and validates capisync's YAML
// configuration.
//
// Loading is strict: an unknown key is an error (with a "did you mean" when a
// known key is close), a value of the wrong type is an error, and an unset
// ${VAR} without a default is an error. Every problem is reported at once, as
// FILE:LINE:COL: path.to.field: message, so an analyst fixes a config in one
// pass. Defaults are filled in one place (defaults.go) before validation.
//
// Secrets (access tokens, DSNs) are held in the Secret type, which never
// prints its value; error messages about a DSN name its host, user and
// database, never its password.
//
// Rule expressions are kept as Expr values carrying their source position;
// compiling them is the job of the rules package, which is the only package
// that knows the expression language.
package config

import "time"

// Destination types.
const (
	TypeMetaCAPI = "meta_capi"
)

// Config is the whole configuration file after expansion, defaults and
// validation. File is the path it was read from.
type Config struct {
	File string `yaml:"-"`

	State           State                   `yaml:"state"`
	HTTP            HTTP                    `yaml:"http"`
	Log             Log                     `yaml:"log"`
	ShutdownTimeout Duration                `yaml:"shutdown_timeout"`
	Sources         map[string]*Source      `yaml:"sources"`
	Destinations    map[string]*Destination `yaml:"destinations"`
	Rules           []*Rule                 `yaml:"rules"`

	pos   positions
	notes Problems
}

// Notes are what validation found worth saying that is not an error: the
// config works, but probably not as meant (validate prints them, run logs
// them).
func (c *Config) Notes() Problems { return c.notes }

// State configures the embedded store.
type State struct {
	// Type is bolt (one file at Path, the default) or postgres (DSN and
	// Schema; two or more daemons may share it, one leading at a time).
	Type string `yaml:"type"`
	Path string `yaml:"path"`
	DSN  Secret `yaml:"dsn"`
	// Schema holds the PostgreSQL state's tables (default capisync).
	Schema string `yaml:"schema"`
	// LeaseTTL is how long a leader's lease lasts unrenewed (postgres;
	// default 10s): a standby takes over within about that long.
	LeaseTTL Duration `yaml:"lease_ttl"`
}

// The state types.
const (
	StateBolt     = "bolt"
	StatePostgres = "postgres"
)

// HTTP configures the operations listener (/metrics, /healthz, /readyz).
type HTTP struct {
	Listen string `yaml:"listen"` // empty: off
	// Token, when set, is needed (as "Authorization: Bearer TOKEN") by the
	// endpoints that change state or expose internals; without it those are
	// served only on a loopback listener.
	Token Secret `yaml:"token"`
}

// Log configures structured logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text, json
}

// Source is one database capisync reads changes from: the keys every
// type has, and the type's own in Options. The connector package that
// reads a type declares its options, defaults and checks
// (RegisterSource); a key of another type is refused, naming the types
// that read it.
type Source struct {
	Type     string `yaml:"type"`
	DSN      Secret `yaml:"dsn"`
	Timezone string `yaml:"timezone"` // zone of timestamps without one; default UTC
	// DefaultCountry is the ISO 3166-1 alpha-2 country assumed for phone
	// numbers without a country code, for every rule on this source.
	DefaultCountry string `yaml:"default_country"`

	Tables TableSet `yaml:"tables"`

	// Options holds the type's own keys, decoded into the struct its
	// connector declares (SourceType.Options; *postgres.Config for type
	// postgres) and defaulted. A Source built in code may leave it nil:
	// the connector then takes its defaults.
	Options any `yaml:"-"`
}

// TableSet holds a source's tables: a list of names for logical replication
// (`tables: [public.leads]`) or a map of name -> polling options.
type TableSet struct {
	Names  []string              // in config order
	Tables map[string]*PollTable // polling options by name; nil entries never occur after Load
}

// Has reports whether the set holds the table name.
func (t TableSet) Has(name string) bool {
	for _, n := range t.Names {
		if n == name {
			return true
		}
	}
	return false
}

// PollTable is how one table is polled.
type PollTable struct {
	Key      []string `yaml:"key"`
	Cursor   string   `yaml:"cursor"`
	Lookback Duration `yaml:"lookback"`
	Track    []string `yaml:"track"` // empty: every column the table's rules reference
}

// Destination is where events are delivered.
type Destination struct {
	Type        string `yaml:"type"`
	PixelID     string `yaml:"pixel_id"`
	AccessToken Secret `yaml:"access_token"`
	// AppSecret, for an app that requires appsecret_proof, signs every
	// request (HMAC-SHA256 of the access token); a secret like the token.
	AppSecret  Secret `yaml:"app_secret"`
	APIVersion string `yaml:"api_version"`
	BaseURL    string `yaml:"base_url"`
	// Endpoint, when set, is the whole URL events are posted to (a
	// Conversions API Gateway or a proxy): base_url, api_version and
	// pixel_id then do not make the path.
	Endpoint      string   `yaml:"endpoint"`
	TestEventCode string   `yaml:"test_event_code"`
	PartnerAgent  string   `yaml:"partner_agent"`
	BatchSize     int      `yaml:"batch_size"`
	FlushInterval Duration `yaml:"flush_interval"`
	InFlight      int      `yaml:"in_flight"`
	Timeout       Duration `yaml:"timeout"`
	ProbeInterval Duration `yaml:"probe_interval"` // how often a paused destination tries again
	MaxOutbox     int      `yaml:"max_outbox"`
	DryRun        bool     `yaml:"dry_run"`
	DryRunFile    string   `yaml:"dry_run_file"` // empty: stdout
}

// Rule turns matching changes into one server event each.
type Rule struct {
	Name        string `yaml:"name"`
	Source      string `yaml:"source"`
	Table       string `yaml:"table"`
	Destination string `yaml:"destination"` // empty: every destination
	Event       string `yaml:"event"`
	// ActionSource is a literal; default system_generated.
	ActionSource   string `yaml:"action_source"`
	DefaultCountry string `yaml:"default_country"`

	When                         Expr            `yaml:"when"`
	EventTime                    Expr            `yaml:"event_time"`
	EventID                      Expr            `yaml:"event_id"`
	EventSourceURL               Expr            `yaml:"event_source_url"`
	ReferrerURL                  Expr            `yaml:"referrer_url"`
	OptOut                       Expr            `yaml:"opt_out"`
	MessagingChannel             Expr            `yaml:"messaging_channel"`
	DataProcessingOptions        Expr            `yaml:"data_processing_options"`
	DataProcessingOptionsCountry Expr            `yaml:"data_processing_options_country"`
	DataProcessingOptionsState   Expr            `yaml:"data_processing_options_state"`
	OriginalEventData            map[string]Expr `yaml:"original_event_data"`
	UserData                     map[string]Expr `yaml:"user_data"`
	CustomData                   map[string]Expr `yaml:"custom_data"`
	AppData                      map[string]Expr `yaml:"app_data"`
	AttributionData              map[string]Expr `yaml:"attribution_data"`

	// Index is the rule's position in the rules list.
	Index int `yaml:"-"`
}

// Path is the rule's config path, e.g. "rules[2]".
func (r *Rule) Path() string { return indexPath("rules", r.Index) }

// Expr is an expression as written in the config, with where it was written.
type Expr struct {
	Src string
	Pos Pos
	// Offset is where the expression text starts relative to Pos.Col:
	// 1 for a quoted scalar, 0 for a plain one, -1 when the text does not
	// sit on one line of the file (block scalars).
	Offset int
}

// IsSet reports whether the expression was given.
func (e Expr) IsSet() bool { return e.Src != "" }

// Duration is a Go duration written as in Go ("90s", "2m", "1h30m").
type Duration struct{ time.Duration }

// Bool returns the pointer's value, or def when it is nil.
func Bool(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}
