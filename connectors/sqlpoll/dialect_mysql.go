package sqlpoll

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

type mysqlDialect struct{}

// open pins the driver's loc to UTC and the session time_zone to +00:00:
// TIMESTAMP values then arrive as the right instant, and DATETIME values
// arrive as their wall-clock digits, which the source reads in its
// configured timezone (go-sql-driver/mysql#1114).
//
// The driver's own log lines (a connection closed under it, say) go to
// log, as every other line of the daemon does, not to stderr.
func (mysqlDialect) open(dsn string, log *slog.Logger) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	cfg.Logger = driverLog{log}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	// Parameters are interpolated client-side (with the driver's escaping):
	// one round trip per page instead of prepare, execute and close.
	cfg.InterpolateParams = true
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(conn), nil
}

// driverLog is the mysql driver's Logger on slog, at warn: the driver
// logs only what went wrong.
type driverLog struct{ log *slog.Logger }

func (l driverLog) Print(v ...any) {
	l.log.Warn(strings.TrimSpace(fmt.Sprint(v...)), "driver", "mysql")
}

func (mysqlDialect) quote(s string) string      { return "`" + s + "`" }
func (mysqlDialect) placeholder(n int) string   { return question(n) }
func (mysqlDialect) cursorExpr(q string) string { return plainCursor(q) }
func (mysqlDialect) zoneless(t string) bool     { return t == "DATETIME" || t == "DATE" }

// textual: the text protocol sends every value as text; with parseTime the
// driver makes time.Time values itself.
func (mysqlDialect) textual(k valueKind) bool { return !isTime(k) }

func (mysqlDialect) columns(ctx context.Context, db *sql.DB, table string) ([]string, error) {
	schema, name := splitQualified(table)
	if schema == "" {
		return queryColumns(ctx, db, "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position", name)
	}
	return queryColumns(ctx, db, "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position", schema, name)
}

func (mysqlDialect) primaryKey(ctx context.Context, db *sql.DB, table string) ([]string, error) {
	schema, name := splitQualified(table)
	q := "SELECT column_name FROM information_schema.key_column_usage WHERE constraint_name = 'PRIMARY' AND table_schema = %s AND table_name = ? ORDER BY ordinal_position"
	if schema == "" {
		return queryColumns(ctx, db, fmt.Sprintf(q, "DATABASE()"), name)
	}
	return queryColumns(ctx, db, fmt.Sprintf(q, "?"), schema, name)
}

func (mysqlDialect) kind(t string) valueKind {
	t = strings.TrimPrefix(t, "UNSIGNED ")
	switch t {
	case "TINYINT", "SMALLINT", "MEDIUMINT", "INT", "INTEGER", "BIGINT", "YEAR":
		return kInt
	case "FLOAT", "DOUBLE", "REAL":
		return kFloat
	case "DECIMAL", "NUMERIC":
		return kDecimal
	case "CHAR", "VARCHAR", "TEXT", "TINYTEXT", "MEDIUMTEXT", "LONGTEXT", "ENUM", "SET":
		return kText
	case "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "BINARY", "VARBINARY", "BIT", "GEOMETRY":
		return kBytes
	case "JSON":
		return kJSON
	case "DATETIME", "TIMESTAMP":
		return kMySQLDateTime
	case "DATE":
		return kMySQLDate
	case "BOOL", "BOOLEAN":
		return kBool
	}
	return kAny
}
