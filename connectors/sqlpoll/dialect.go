package sqlpoll

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// dialect is what differs between databases.
type dialect interface {
	// open returns a connection pool for the DSN.
	open(dsn string, log *slog.Logger) (*sql.DB, error)
	// quote quotes an identifier (already checked to be plain).
	quote(ident string) string
	// placeholder is the n-th (1-based) bind parameter.
	placeholder(n int) string
	// columns lists the table's columns, or none when it does not exist.
	columns(ctx context.Context, db *sql.DB, table string) ([]string, error)
	// primaryKey lists the table's primary-key columns, in key order.
	primaryKey(ctx context.Context, db *sql.DB, table string) ([]string, error)
	// cursorExpr selects the cursor's value in a form that compares
	// correctly when bound back as a parameter.
	cursorExpr(quoted string) string
	// zoneless reports whether a column type holds wall-clock time.
	zoneless(dbType string) bool
	// kind names how to read a column type.
	kind(dbType string) valueKind
	// textual reports whether the driver hands values of a kind as text
	// in its own buffer (MySQL's text protocol): those are scanned as
	// sql.RawBytes and copied once, not cloned by database/sql first.
	textual(k valueKind) bool
}

type valueKind int

const (
	kAny valueKind = iota
	kInt
	kFloat
	kDecimal
	kText
	kBytes
	kJSON
	kTime
	kBool
	// MySQL's DATETIME and TIMESTAMP, and its DATE: times that may hold
	// a zero date, which the driver makes time.Time{} and which are kept
	// as MySQL writes them ("0000-00-00 00:00:00", "0000-00-00"), as the
	// binlog source keeps them.
	kMySQLDateTime
	kMySQLDate
)

// isTime says whether values of kind k are times.
func isTime(k valueKind) bool { return k == kTime || k == kMySQLDateTime || k == kMySQLDate }

func newDialect(typ string) (dialect, error) {
	switch typ {
	case TypeMySQL:
		return mysqlDialect{}, nil
	case TypePostgres:
		return postgresDialect{}, nil
	case TypeSQLite:
		return sqliteDialect{}, nil
	}
	return nil, fmt.Errorf("no polling dialect for source type %q", typ)
}

// quoteQualified quotes schema.table or table.
func quoteQualified(d dialect, name string) string {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = d.quote(p)
	}
	return strings.Join(parts, ".")
}

// splitQualified returns schema and table ("" schema when not given).
func splitQualified(name string) (schema, table string) {
	if i := strings.IndexByte(name, '.'); i >= 0 {
		return name[:i], name[i+1:]
	}
	return "", name
}

func dollar(n int) string         { return fmt.Sprintf("$%d", n) }
func question(int) string         { return "?" }
func plainCursor(q string) string { return q }

// queryColumns runs a catalog query returning one column name per row.
func queryColumns(ctx context.Context, db *sql.DB, q string, args ...any) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}
