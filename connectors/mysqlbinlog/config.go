package mysqlbinlog

import "github.com/capisync/capisync/internal/config"

// Type is the source type that reads the binlog.
const Type = "mysql_binlog"

func init() {
	config.RegisterSource(Type, config.SourceType{
		DSN:      config.DSNMySQL,
		Keys:     []string{"server_id", "initial"},
		Example:  "tables: [leads, shop.orders]",
		Defaults: defaults,
		Validate: validate,
	})
}

func defaults(_ string, s *config.Source, _ func(string) bool) {
	if s.Initial == "" {
		s.Initial = "skip"
	}
}

func validate(s *config.Source, p config.SourceProblems) {
	for i, t := range s.Tables.Names {
		if !config.Qualified(t) {
			p.Add(config.IndexKey("tables", i), "table %q: write table (in the DSN's database) or database.table with plain identifiers", t)
		}
	}
	if s.ServerID == 0 {
		p.Add("server_id", "missing server_id: a number unique among the server's replicas and binlog readers, e.g. server_id: 4201")
	}
	p.OneOf("initial", s.Initial, "skip", "emit")
}
