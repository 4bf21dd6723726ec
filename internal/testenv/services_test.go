package testenv_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/capisync/capisync/internal/testenv"
)

// TestPostgresIsReadyForLogicalReplication proves the PostgreSQL the tests
// use is real and set up for logical decoding.
func TestPostgresIsReadyForLogicalReplication(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testenv.PostgresDSN(t))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)

	var wal string
	if err := conn.QueryRow(ctx, "show wal_level").Scan(&wal); err != nil {
		t.Fatal(err)
	}
	if wal != "logical" {
		t.Fatalf("wal_level = %q, want logical", wal)
	}
	slot := fmt.Sprintf("capisync_envtest_%d", time.Now().UnixNano()%1e9)
	var lsn string
	if err := conn.QueryRow(ctx, "select lsn::text from pg_create_logical_replication_slot($1, 'pgoutput')", slot).Scan(&lsn); err != nil {
		t.Fatalf("create logical slot: %v", err)
	}
	if _, err := conn.Exec(ctx, "select pg_drop_replication_slot($1)", slot); err != nil {
		t.Fatalf("drop slot: %v", err)
	}
	if lsn == "" {
		t.Fatal("slot created without a consistent point")
	}
}

// TestMariaDBIsReachable proves the MariaDB the tests use is real and
// reachable over TCP with a writable test database.
func TestMariaDBIsReachable(t *testing.T) {
	db, err := sql.Open("mysql", testenv.MySQLDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var version string
	if err := db.QueryRowContext(ctx, "select version()").Scan(&version); err != nil {
		t.Fatalf("query MariaDB: %v", err)
	}
	if _, err := db.ExecContext(ctx, "create table if not exists envtest (id int primary key)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	if _, err := db.ExecContext(ctx, "drop table envtest"); err != nil {
		t.Fatalf("drop table: %v", err)
	}
	t.Logf("MariaDB %s", version)
}
