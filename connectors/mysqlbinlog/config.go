package mysqlbinlog

import "github.com/capisync/capisync/internal/config"

// Type is the source type that reads the binlog.
const Type = "mysql_binlog"

// Config is a mysql_binlog source's own keys under sources.NAME.
type Config struct {
	// ServerID is the server id this reader registers with, unique among
	// the server's replicas and readers.
	ServerID uint32 `yaml:"server_id"`
	Initial  string `yaml:"initial"` // skip (default) or emit
}

func init() {
	config.RegisterSource(Type, config.SourceType{
		DSN:      config.DSNMySQL,
		Options:  func() any { return new(Config) },
		Example:  "tables: [leads, shop.orders]",
		Defaults: func(_ string, s *config.Source, _ func(string) bool) { defaults(s.Options.(*Config)) },
		Validate: validate,
	})
}

// configOf is the source's Config, defaulted when it was built in code.
func configOf(cfg config.Source) *Config {
	if c, ok := cfg.Options.(*Config); ok {
		return c
	}
	c := new(Config)
	defaults(c)
	return c
}

func defaults(c *Config) {
	if c.Initial == "" {
		c.Initial = "skip"
	}
}

func validate(s *config.Source, p config.SourceProblems) {
	o := s.Options.(*Config)
	for i, t := range s.Tables.Names {
		if !config.Qualified(t) {
			p.Add(config.IndexKey("tables", i), "table %q: write table (in the DSN's database) or database.table with plain identifiers", t)
		}
	}
	if o.ServerID == 0 {
		p.Add("server_id", "missing server_id: a number unique among the server's replicas and binlog readers, e.g. server_id: 4201")
	}
	p.OneOf("initial", o.Initial, "skip", "emit")
}
