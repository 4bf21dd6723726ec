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

func init() {
	config.RegisterSource(Type, config.SourceType{
		DSN:           config.DSNPostgres,
		Keys:          []string{"slot", "publication", "create", "old_values", "heartbeat"},
		DefaultSchema: "public",
		Example:       "tables: [public.leads, public.orders]",
		Defaults:      defaults,
		Validate:      validate,
	})
}

func defaults(name string, s *config.Source, written func(string) bool) {
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
	if !slotRe.MatchString(s.Slot) {
		p.Add("slot", "slot name %q: use lower-case letters, digits and _ (at most 63)", s.Slot)
	}
	if !config.Ident(s.Publication) {
		p.Add("publication", "publication name %q is not a plain identifier", s.Publication)
	}
	p.OneOf("old_values", s.OldValues, "replica_identity", "shadow")
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
