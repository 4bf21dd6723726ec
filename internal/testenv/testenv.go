// Package testenv gives tests the real services they run against. The DSNs
// come from CAPISYNC_TEST_PG_DSN and CAPISYNC_TEST_MYSQL_DSN, which the
// README's test command (make test) sets after scripts/services.sh has made
// sure the servers run. Without them a test skips on a laptop and fails
// under CI=true, so a missing server is never mistaken for a pass in CI.
package testenv

import (
	"os"
	"testing"
)

// PostgresDSN returns the test PostgreSQL DSN (a superuser that may
// replicate, on a server with wal_level=logical).
func PostgresDSN(t testing.TB) string { return dsn(t, "CAPISYNC_TEST_PG_DSN") }

// MySQLDSN returns the test MariaDB/MySQL DSN in go-sql-driver form.
func MySQLDSN(t testing.TB) string { return dsn(t, "CAPISYNC_TEST_MYSQL_DSN") }

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
