package sqlpoll

import (
	"context"
	"database/sql"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

type postgresDialect struct{}

// open pins the session TimeZone to UTC so that timestamptz values print
// and compare as instants.
func (postgresDialect) open(dsn string, _ *slog.Logger) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["timezone"] = "UTC"
	cfg.RuntimeParams["application_name"] = "capisync"
	return stdlib.OpenDB(*cfg), nil
}

func (postgresDialect) quote(s string) string      { return `"` + s + `"` }
func (postgresDialect) placeholder(n int) string   { return dollar(n) }
func (postgresDialect) cursorExpr(q string) string { return plainCursor(q) }
func (postgresDialect) zoneless(t string) bool     { return t == "TIMESTAMP" || t == "DATE" }
func (postgresDialect) textual(valueKind) bool     { return false } // typed values, already the driver's own copies

func (postgresDialect) columns(ctx context.Context, db *sql.DB, table string) ([]string, error) {
	schema, name := splitQualified(table)
	if schema == "" {
		schema = "public"
	}
	return queryColumns(ctx, db, "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position", schema, name)
}

func (postgresDialect) primaryKey(ctx context.Context, db *sql.DB, table string) ([]string, error) {
	schema, name := splitQualified(table)
	if schema == "" {
		schema = "public"
	}
	return queryColumns(ctx, db, `SELECT a.attname FROM pg_index i
		JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)
		WHERE i.indisprimary AND n.nspname = $1 AND c.relname = $2 ORDER BY array_position(i.indkey, a.attnum)`, schema, name)
}

func (postgresDialect) kind(t string) valueKind {
	switch {
	case t == "INT2" || t == "INT4" || t == "INT8" || t == "OID":
		return kInt
	case t == "FLOAT4" || t == "FLOAT8":
		return kFloat
	case t == "NUMERIC" || t == "MONEY":
		return kDecimal
	case t == "JSON" || t == "JSONB":
		return kJSON
	case t == "BYTEA":
		return kBytes
	case t == "TIMESTAMP" || t == "TIMESTAMPTZ" || t == "DATE":
		return kTime
	case t == "BOOL":
		return kBool
	case strings.HasPrefix(t, "_"): // arrays arrive as their text form
		return kText
	}
	return kText
}
