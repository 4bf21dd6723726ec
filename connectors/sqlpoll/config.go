package sqlpoll

import (
	"time"

	"github.com/capisync/capisync/internal/config"
)

// The source types read by polling.
const (
	TypeMySQL    = "mysql"         // MySQL / MariaDB
	TypeSQLite   = "sqlite"        // a SQLite file
	TypePostgres = "postgres_poll" // PostgreSQL (replicas, no replication slot)
)

// Polling defaults.
const (
	DefaultPageSize = 5000
	DefaultLookback = time.Minute
)

// Config is a polling source's own keys under sources.NAME (the tables'
// options are in config.PollTable).
type Config struct {
	Schedule        string `yaml:"schedule"`         // a cron spec
	PageSize        int    `yaml:"page_size"`        // rows per query (default DefaultPageSize)
	Initial         string `yaml:"initial"`          // baseline (default) or emit
	Deletes         string `yaml:"deletes"`          // none (default) or full_scan
	DeletesSchedule string `yaml:"deletes_schedule"` // a cron spec, for full_scan
}

func init() {
	for typ, dsn := range map[string]string{TypeMySQL: config.DSNMySQL, TypeSQLite: config.DSNSQLite, TypePostgres: config.DSNPostgres} {
		config.RegisterSource(typ, config.SourceType{
			DSN:          dsn,
			Options:      func() any { return new(Config) },
			TableOptions: true,
			Example:      "tables: {orders: {key: [id], cursor: updated_at}}",
			Defaults: func(_ string, s *config.Source, written func(string) bool) {
				defaults(s.Options.(*Config), s.Tables, written)
			},
			Validate: validate,
		})
	}
}

// configOf is the source's Config, defaulted when it was built in code.
func configOf(cfg config.Source) *Config {
	if c, ok := cfg.Options.(*Config); ok {
		return c
	}
	c := new(Config)
	defaults(c, cfg.Tables, func(string) bool { return false })
	return c
}

func defaults(c *Config, tables config.TableSet, written func(string) bool) {
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.Initial == "" {
		c.Initial = "baseline"
	}
	if c.Deletes == "" {
		c.Deletes = "none"
	}
	for name, t := range tables.Tables {
		if !written("tables." + name + ".lookback") {
			t.Lookback.Duration = DefaultLookback
		}
	}
}

func validate(src *config.Source, p config.SourceProblems) {
	s := src.Options.(*Config)
	if s.Schedule == "" {
		p.Add("schedule", `missing schedule: a cron spec such as "@every 30s" or "*/5 * * * *"`)
	} else if _, err := config.CronParser.Parse(s.Schedule); err != nil {
		p.Add("schedule", "invalid cron spec %q: %v", s.Schedule, err)
	}
	if s.PageSize < 1 {
		p.Add("page_size", "page_size must be at least 1, got %d", s.PageSize)
	}
	p.OneOf("initial", s.Initial, "baseline", "emit")
	if p.OneOf("deletes", s.Deletes, "none", "full_scan") && s.Deletes == "full_scan" {
		if s.DeletesSchedule == "" {
			p.Add("deletes_schedule", `deletes: full_scan needs deletes_schedule, e.g. "@every 1h"`)
		} else if _, err := config.CronParser.Parse(s.DeletesSchedule); err != nil {
			p.Add("deletes_schedule", "invalid cron spec %q: %v", s.DeletesSchedule, err)
		}
	}
	if src.Tables.Tables == nil {
		return // the shape of tables is reported
	}
	for _, name := range src.Tables.Names {
		t := src.Tables.Tables[name]
		key := "tables." + name
		if !config.Qualified(name) {
			p.Add(key, "table name %q: write table or schema.table with plain identifiers", name)
		}
		if len(t.Key) == 0 {
			p.Add(key+".key", "missing key: the table's primary-key columns, e.g. key: [id]")
		}
		if t.Cursor == "" {
			p.Add(key+".cursor", "missing cursor: a column that grows when a row changes, e.g. cursor: updated_at")
		}
		for i, col := range append(append(append([]string{}, t.Key...), t.Cursor), t.Track...) {
			if col != "" && !config.Ident(col) {
				p.Add(key, "column %q (entry %d) is not a plain identifier", col, i)
			}
		}
	}
}
