package mysqlbinlog

import (
	"context"
	"database/sql"
	"fmt"
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
		key, err := primaryKey(ctx, db, schema, name)
		if err != nil {
			return fmt.Errorf("read the primary key of %s: %w", table, err)
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

// querier is a *sql.DB or a *sql.Conn.
type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// queryStrings runs a query returning one string per row.
// primaryKey lists a table's primary-key columns, in order.
func primaryKey(ctx context.Context, db querier, schema, table string) ([]string, error) {
	return queryStrings(ctx, db, `SELECT column_name FROM information_schema.key_column_usage
		WHERE constraint_name = 'PRIMARY' AND table_schema = ? AND table_name = ? ORDER BY ordinal_position`, schema, table)
}

func queryStrings(ctx context.Context, db querier, q string, args ...any) ([]string, error) {
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
