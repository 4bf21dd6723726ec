package mysqlbinlog

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"

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
		schema, name, ok := strings.Cut(table, ".")
		if !ok {
			schema, name = s.dsn.DBName, table
		}
		cols, err := queryStrings(ctx, db, "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position", schema, name)
		if err != nil {
			return fmt.Errorf("read the columns of %s: %w", table, err)
		}
		if len(cols) == 0 {
			problems = append(problems, fmt.Sprintf("table %s does not exist in database %s (or the user may not read it)", name, schema))
			continue
		}
		key, err := queryStrings(ctx, db, "SELECT column_name FROM information_schema.key_column_usage WHERE constraint_name = 'PRIMARY' AND table_schema = ? AND table_name = ?", schema, name)
		if err != nil {
			return fmt.Errorf("read the primary key of %s: %w", table, err)
		}
		if len(key) == 0 {
			problems = append(problems, fmt.Sprintf("table %s has no primary key: a binlog source needs one to tell rows apart", table))
		}
		if s.opt.ColumnUsers == nil {
			continue
		}
		users := s.opt.ColumnUsers(table)
		for _, col := range slices.Sorted(maps.Keys(users)) {
			if col == "*" || slices.Contains(cols, col) {
				continue
			}
			msg := fmt.Sprintf("table %s has no column %s, read by rule(s) %s", table, col, strings.Join(users[col], ", "))
			if near := config.Suggest(col, cols); near != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", near)
			}
			problems = append(problems, msg+"; its columns are "+strings.Join(cols, ", "))
		}
	}
	if len(problems) > 0 {
		return &SetupError{fmt.Errorf("source %s: %s", s.name, strings.Join(problems, "; "))}
	}
	return nil
}

func queryStrings(ctx context.Context, db *sql.DB, q string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
