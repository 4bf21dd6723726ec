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

func init() {
	for typ, dsn := range map[string]string{TypeMySQL: config.DSNMySQL, TypeSQLite: config.DSNSQLite, TypePostgres: config.DSNPostgres} {
		config.RegisterSource(typ, config.SourceType{
			DSN:          dsn,
			Keys:         []string{"schedule", "page_size", "initial", "deletes", "deletes_schedule"},
			TableOptions: true,
			Example:      "tables: {orders: {key: [id], cursor: updated_at}}",
			Defaults:     defaults,
			Validate:     validate,
		})
	}
}

func defaults(_ string, s *config.Source, written func(string) bool) {
	if s.PageSize == 0 {
		s.PageSize = DefaultPageSize
	}
	if s.Initial == "" {
		s.Initial = "baseline"
	}
	if s.Deletes == "" {
		s.Deletes = "none"
	}
	for name, t := range s.Tables.Tables {
		if !written("tables." + name + ".lookback") {
			t.Lookback.Duration = DefaultLookback
		}
	}
}

func validate(s *config.Source, p config.SourceProblems) {
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
	if s.Tables.Tables == nil {
		return // the shape of tables is reported
	}
	for _, name := range s.Tables.Names {
		t := s.Tables.Tables[name]
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
