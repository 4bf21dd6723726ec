// Package testenv gives tests the real services they run against. The DSNs
// come from CAPISYNC_TEST_PG_DSN and CAPISYNC_TEST_MYSQL_DSN, which the
// README's test command (make test) sets after scripts/services.sh has made
// sure the servers run. Without them a test skips on a laptop and fails
// under CI=true, so a missing server is never mistaken for a pass in CI.
package testenv

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresDSN returns the test PostgreSQL DSN (a superuser that may
// replicate, on a server with wal_level=logical).
func PostgresDSN(t testing.TB) string { return dsn(t, "CAPISYNC_TEST_PG_DSN") }

// MySQLDSN returns the test MariaDB/MySQL DSN in go-sql-driver form.
func MySQLDSN(t testing.TB) string { return dsn(t, "CAPISYNC_TEST_MYSQL_DSN") }

// MySQLTLSDSN returns a DSN of the same server for a user that may connect
// only over TLS, with tls= set.
func MySQLTLSDSN(t testing.TB) string { return dsn(t, "CAPISYNC_TEST_MYSQL_TLS_DSN") }

func dsn(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set under CI: run the tests with `make test`", name)
		}
		t.Skipf("%s not set: run `make test` to test against real servers", name)
	}
	return v
}

// SameSet reports whether a and b hold the same strings the same number of
// times, in any order (events received versus events expected).
func SameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return true
}

// DropSlots removes the named logical replication slots from the test
// PostgreSQL. A slot still held by a walsender that has not noticed its
// client left cannot be dropped, and a slot left behind holds one of the
// server's max_replication_slots for good, so the walsender is terminated and
// the drop retried until the slot is gone (or ten seconds pass, which fails
// the test naming the slot).
func DropSlots(t testing.TB, dsn string, names ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Errorf("drop slots %v: connect: %v", names, err)
		return
	}
	defer conn.Close(context.Background())
	for {
		var left []string
		err := conn.QueryRow(ctx, `SELECT coalesce(array_agg(slot_name::text), '{}') FROM pg_replication_slots WHERE slot_name = ANY($1)`, names).Scan(&left)
		if err == nil && len(left) == 0 {
			return
		}
		for _, s := range left {
			conn.Exec(ctx, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL", s)
			conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", s)
		}
		select {
		case <-ctx.Done():
			t.Errorf("replication slots %v still there after 10 s (last error: %v)", left, err)
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// BenchRows gates a benchmark test: it skips unless CAPISYNC_BENCH is set
// (naming the script that runs it) and returns CAPISYNC_BENCH_ROWS, or def.
func BenchRows(t testing.TB, script string, def int) int {
	t.Helper()
	if os.Getenv("CAPISYNC_BENCH") == "" {
		t.Skip("a benchmark: run " + script)
	}
	if n, err := strconv.Atoi(os.Getenv("CAPISYNC_BENCH_ROWS")); err == nil {
		return n
	}
	return def
}
