package sqlpoll

import (
	"context"
	"database/sql"
	"log/slog"
	"strings"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver
)

type sqliteDialect struct{}

func (sqliteDialect) open(dsn string, _ *slog.Logger) (*sql.DB, error) {
	if !strings.Contains(dsn, "busy_timeout") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		if !strings.HasPrefix(dsn, "file:") {
			dsn = "file:" + dsn
		}
		dsn += sep + "_pragma=busy_timeout(5000)"
	}
	return sql.Open("sqlite", dsn)
}

func (sqliteDialect) quote(s string) string    { return `"` + s + `"` }
func (sqliteDialect) placeholder(n int) string { return question(n) }

// cursorExpr reads the cursor as the text SQLite stores, so that binding it
// back compares text with text in the same format (the driver would turn a
// DATETIME column into a time.Time and bind it in another format).
func (sqliteDialect) cursorExpr(q string) string { return "CAST(" + q + " AS TEXT)" }
func (sqliteDialect) zoneless(t string) bool {
	return t == "DATETIME" || t == "DATE" || t == "TIMESTAMP"
}
func (sqliteDialect) textual(valueKind) bool { return false } // typed values, already the driver's own copies

func (sqliteDialect) columns(ctx context.Context, db *sql.DB, table string) ([]string, error) {
	_, name := splitQualified(table)
	return queryColumns(ctx, db, "SELECT name FROM pragma_table_info(?) ORDER BY cid", name)
}

func (sqliteDialect) primaryKey(ctx context.Context, db *sql.DB, table string) ([]string, error) {
	_, name := splitQualified(table)
	return queryColumns(ctx, db, "SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk", name)
}

func (sqliteDialect) kind(t string) valueKind {
	switch {
	case strings.Contains(t, "INT"):
		return kInt
	case strings.Contains(t, "REAL"), strings.Contains(t, "FLOA"), strings.Contains(t, "DOUB"):
		return kFloat
	case t == "DATETIME" || t == "DATE" || t == "TIMESTAMP":
		return kTime
	case strings.Contains(t, "BLOB"):
		return kBytes
	case t == "JSON":
		return kJSON
	case t == "BOOLEAN" || t == "BOOL":
		return kBool
	}
	return kAny
}
