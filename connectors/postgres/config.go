package postgres

import (
	"regexp"
	"strings"
	"time"

	"github.com/capisync/capisync/internal/config"
)

// Type is the source type read by logical replication.
const Type = "postgres"

// DefaultHeartbeat is how often an idle source writes a heartbeat message
// (heartbeat: 0 turns it off).
const DefaultHeartbeat = 5 * time.Minute

// Config is a postgres source's own keys under sources.NAME.
type Config struct {
	Slot        string          `yaml:"slot"`        // default capisync_NAME
	Publication string          `yaml:"publication"` // default capisync_NAME
	Create      *bool           `yaml:"create"`      // create the slot and publication when missing (default true)
	OldValues   string          `yaml:"old_values"`  // replica_identity (default) or shadow
	Heartbeat   config.Duration `yaml:"heartbeat"`   // default DefaultHeartbeat; 0: none
}

func init() {
	config.RegisterSource(Type, config.SourceType{
		DSN:           config.DSNPostgres,
		Options:       func() any { return new(Config) },
		DefaultSchema: "public",
		Example:       "tables: [public.leads, public.orders]",
		Defaults: func(name string, s *config.Source, written func(string) bool) {
			defaults(name, s.Options.(*Config), written)
		},
		Validate: validate,
	})
}

// configOf is the source's Config, defaulted when it was built in code.
func configOf(name string, cfg config.Source) *Config {
	if c, ok := cfg.Options.(*Config); ok {
		return c
	}
	c := new(Config)
	defaults(name, c, func(string) bool { return false })
	return c
}

func defaults(name string, s *Config, written func(string) bool) {
	if s.Slot == "" {
		s.Slot = "capisync_" + identSafe(name)
	}
	if s.Publication == "" {
		s.Publication = "capisync_" + identSafe(name)
	}
	if s.Create == nil {
		t := true
		s.Create = &t
	}
	if s.OldValues == "" {
		s.OldValues = "replica_identity"
	}
	if !written("heartbeat") {
		s.Heartbeat.Duration = DefaultHeartbeat
	}
}

var slotRe = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

func validate(s *config.Source, p config.SourceProblems) {
	o := s.Options.(*Config)
	if !slotRe.MatchString(o.Slot) {
		p.Add("slot", "slot name %q: use lower-case letters, digits and _ (at most 63)", o.Slot)
	}
	if !config.Ident(o.Publication) {
		p.Add("publication", "publication name %q is not a plain identifier", o.Publication)
	}
	p.OneOf("old_values", o.OldValues, "replica_identity", "shadow")
	for i, t := range s.Tables.Names {
		schema, table, _ := strings.Cut(t, ".")
		if !config.Ident(schema) || !config.Ident(table) {
			p.Add(config.IndexKey("tables", i), "table %q: write schema.table with plain identifiers", t)
		}
	}
}

// identSafe turns a source name into something usable in a slot name.
func identSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '_'
	}, s)
}
