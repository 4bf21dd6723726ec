package sqlpoll

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/capisync/capisync/internal/config"
)

// TableSample is what `capisync init` reads of a table to draft a config:
// its columns in order, its primary key, and some rows with their values
// in the common forms (internal/cdc). It stays in memory: nothing here
// prints or stores a value.
type TableSample struct {
	Table   string
	Columns []string
	Key     []string
	Rows    [][]any // values in Columns order
}

// Sample reads up to n rows of each table through a read-only session
// (sourceType is mysql, postgres_poll or sqlite; a logical postgres source
// is read as postgres_poll).
func Sample(ctx context.Context, sourceType string, dsn config.Secret, tables []string, n int) ([]TableSample, error) {
	if sourceType == "postgres" { // a logical source's tables
		sourceType = TypePostgres
	}
	d, err := newDialect(sourceType)
	if err != nil {
		return nil, err
	}
	db, err := d.open(dsn.Reveal(), slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, fmt.Errorf("%s: %s", config.DescribeDSN(sourceType, dsn), config.Scrub(err.Error(), dsn.Reveal()))
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %s", config.DescribeDSN(sourceType, dsn), config.Scrub(err.Error(), dsn.Reveal()))
	}
	defer conn.Close()
	if sourceType != TypeSQLite {
		// Read-only: nothing of the session can write.
		stmt := "SET SESSION TRANSACTION READ ONLY"
		if sourceType == TypePostgres {
			stmt = "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"
		}
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("make the session read-only: %s", config.Scrub(err.Error(), dsn.Reveal()))
		}
	}
	var out []TableSample
	for _, t := range tables {
		if !validTable(t) {
			return nil, fmt.Errorf("table %q: write table or schema.table with plain identifiers", t)
		}
		s, err := sample(ctx, d, db, conn, t, n)
		if err != nil {
			return nil, fmt.Errorf("table %s: %s", t, config.Scrub(err.Error(), dsn.Reveal()))
		}
		out = append(out, s)
	}
	return out, nil
}

func validTable(t string) bool {
	for _, part := range strings.Split(t, ".") {
		if part == "" || strings.ContainsFunc(part, func(r rune) bool {
			return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}) {
			return false
		}
	}
	return strings.Count(t, ".") <= 1
}

func sample(ctx context.Context, d dialect, db *sql.DB, conn *sql.Conn, table string, n int) (TableSample, error) {
	s := TableSample{Table: table}
	var err error
	if s.Columns, err = d.columns(ctx, db, table); err != nil {
		return s, err
	}
	if len(s.Columns) == 0 {
		return s, fmt.Errorf("it does not exist (or the user may not read it)")
	}
	if s.Key, err = d.primaryKey(ctx, db, table); err != nil {
		return s, err
	}
	rows, err := conn.QueryContext(ctx, fmt.Sprintf("SELECT * FROM %s LIMIT %d", quoteQualified(d, table), n))
	if err != nil {
		return s, err
	}
	defer rows.Close()
	// A value that does not convert is not needed to draft a config.
	err = convertRows(rows, d, time.UTC, true, func(_ []string, vals []any) error {
		s.Rows = append(s.Rows, vals)
		return nil
	})
	return s, err
}

// OpenMySQL opens a MySQL or MariaDB database as the polling reader does
// (the session in UTC, times parsed by the driver), for another reader of
// the same server whose values must be the polling reader's (the binlog
// source's initial load).
func OpenMySQL(dsn string, log *slog.Logger) (*sql.DB, error) {
	return mysqlDialect{}.open(dsn, log)
}

// MySQLTable reads a MySQL/MariaDB table's columns, in order, and its
// primary key, as the polling reader does (table or database.table; no
// columns: it does not exist, or the user may not read it).
func MySQLTable(ctx context.Context, db *sql.DB, table string) (columns, key []string, err error) {
	d := mysqlDialect{}
	if columns, err = d.columns(ctx, db, table); err != nil || len(columns) == 0 {
		return columns, nil, err
	}
	key, err = d.primaryKey(ctx, db, table)
	return columns, key, err
}

// ConvertRows reads rows (of a database opened as the polling source of
// sourceType opens it) as the polling reader does: fn gets the column
// names and each row's values in the common forms (internal/cdc), times
// without a zone read in loc. The values are fn's to keep.
func ConvertRows(rows *sql.Rows, sourceType string, loc *time.Location, fn func(columns []string, values []any) error) error {
	d, err := newDialect(sourceType)
	if err != nil {
		return err
	}
	return convertRows(rows, d, loc, false, fn)
}

// convertRows is ConvertRows; lenient makes a value that does not convert
// nil instead of an error.
func convertRows(rows *sql.Rows, d dialect, loc *time.Location, lenient bool, fn func(columns []string, values []any) error) error {
	types, err := rows.ColumnTypes()
	if err != nil {
		return err
	}
	names := make([]string, len(types))
	kinds := make([]valueKind, len(types))
	zoneless := make([]bool, len(types))
	for i, ct := range types {
		name := strings.ToUpper(ct.DatabaseTypeName())
		names[i], kinds[i], zoneless[i] = ct.Name(), d.kind(name), d.zoneless(name)
	}
	for rows.Next() {
		raw := make([]any, len(types))
		ptrs := make([]any, len(types))
		for i := range raw {
			ptrs[i] = &raw[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		for i, v := range raw {
			if raw[i], err = convert(kinds[i], zoneless[i], loc, v); err != nil {
				if !lenient {
					return fmt.Errorf("column %s: %w", names[i], err)
				}
				raw[i] = nil
			}
		}
		if err := fn(names, raw); err != nil {
			return err
		}
	}
	return rows.Err()
}
