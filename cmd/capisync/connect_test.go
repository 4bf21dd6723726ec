package main

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/capisync/capisync/internal/testenv"
)

// TestValidateConnect reaches the sources without changing anything.
func TestValidateConnect(t *testing.T) {
	db := filepath.Join(t.TempDir(), "crm.db")
	t.Setenv("QUICKSTART_DB", db)
	t.Setenv("CAPISYNC_STATE", filepath.Join(t.TempDir(), "state.db"))
	code, out, errOut := runCLI(t, "validate", "--connect", "--config", "../../examples/quickstart/config.yaml")
	if code != 1 || !strings.Contains(out, "table leads does not exist") {
		t.Errorf("missing table: exit %d\n%s%s", code, out, errOut)
	}
	quickstartSQL(t, db, "")
	code, out, errOut = runCLI(t, "validate", "--connect", "--config", "../../examples/quickstart/config.yaml")
	if code != 0 || !strings.Contains(out, "source crm: ok") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}

	dsn := testenv.PostgresDSN(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	schema, _ := os.ReadFile("../../examples/whatsapp-ctwa/schema.sql")
	if _, err := conn.Exec(ctx, string(schema)); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, "DROP SCHEMA IF EXISTS ctwa CASCADE")
	t.Setenv("CTWA_PG_DSN", dsn)
	code, out, errOut = runCLI(t, "validate", "--connect", "--config", "../../examples/whatsapp-ctwa/config.yaml")
	if code != 0 || !strings.Contains(out, "capisync run creates them") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
	var slots int
	conn.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'capisync_example_ctwa'").Scan(&slots)
	if slots != 0 {
		t.Error("validate --connect created a slot")
	}

	// A binlog source: the server's settings and grants, and the table.
	t.Setenv("SHOP_MYSQL_DSN", testenv.MySQLDSN(t))
	t.Setenv("CAPISYNC_STATE", filepath.Join(t.TempDir(), "state.db"))
	code, out, errOut = runCLI(t, "validate", "--connect", "--config", "../../examples/mariadb-binlog/config.yaml")
	if code != 1 || !strings.Contains(out, "table binlog_orders does not exist") {
		t.Errorf("binlog source, missing table: exit %d\n%s%s", code, out, errOut)
	}
	my, err := sql.Open("mysql", testenv.MySQLDSN(t)+"?multiStatements=true")
	if err != nil {
		t.Fatal(err)
	}
	defer my.Close()
	mysqlSchema, _ := os.ReadFile("../../examples/mariadb-binlog/schema.sql")
	if _, err := my.Exec(string(mysqlSchema)); err != nil {
		t.Fatal(err)
	}
	defer my.Exec("DROP TABLE IF EXISTS binlog_orders")
	code, out, errOut = runCLI(t, "validate", "--connect", "--config", "../../examples/mariadb-binlog/config.yaml")
	if code != 0 || !strings.Contains(out, "source shop: ok (mariadb binlog: ROW, FULL row image and metadata, grants present; ") ||
		!strings.Contains(out, "purges binlog files after") && !strings.Contains(out, "kept until purged by hand") {
		t.Errorf("binlog source: exit %d\n%s%s", code, out, errOut)
	}
}
