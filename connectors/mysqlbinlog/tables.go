package mysqlbinlog

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/capisync/capisync/connectors/sqlpoll"
	"github.com/capisync/capisync/internal/config"
)

// checkTables refuses, as a SetupError, a watched table that does not
// exist, has no primary key, or lacks a column a rule reads (a typo such as
// new.emial would otherwise read nil and drop the key silently). The
// binlog gives each row's columns as they are when it is written; this
// checks the tables as they are now.
func (s *Source) checkTables(ctx context.Context, db *sql.DB) error {
	var problems []string
	for _, table := range s.cfg.Tables.Names {
		cols, key, err := sqlpoll.MySQLTable(ctx, db, table)
		if err != nil {
			return fmt.Errorf("read the columns of %s: %w", table, err)
		}
		if len(cols) == 0 {
			schema, name, ok := strings.Cut(table, ".")
			if !ok {
				schema, name = s.dsn.DBName, table
			}
			problems = append(problems, fmt.Sprintf("table %s does not exist in database %s (or the user may not read it)", name, schema))
			continue
		}
		if len(key) == 0 {
			problems = append(problems, fmt.Sprintf("table %s has no primary key: a binlog source needs one to tell rows apart", table))
		}
		if s.opt.ColumnUsers == nil {
			continue
		}
		for _, msg := range config.MissingColumns(table, cols, s.opt.ColumnUsers(table)) {
			problems = append(problems, msg+"; its columns are "+strings.Join(cols, ", "))
		}
	}
	if len(problems) > 0 {
		return &SetupError{fmt.Errorf("source %s: %s", s.name, strings.Join(problems, "; "))}
	}
	return nil
}
