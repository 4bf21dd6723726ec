#!/usr/bin/env bash
# The one test command (README: make test): real services, vet, race tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
export CAPISYNC_TEST_PG_DSN="${CAPISYNC_TEST_PG_DSN:-postgres://capisync:capisync@127.0.0.1:5432/capisync_test?sslmode=disable}"
export CAPISYNC_TEST_MYSQL_DSN="${CAPISYNC_TEST_MYSQL_DSN:-capisync:capisync@tcp(127.0.0.1:3306)/capisync_test}"
go vet ./...
go test -race -count=1 "$@" ./...
# Restarting PostgreSQL would break the tests above that share the server,
# so the restart test runs alone, after them.
CAPISYNC_TEST_PG_RESTART=1 go test -race -count=1 -run TestServerRestart ./connectors/postgres/
