#!/usr/bin/env bash
# The one test command (README: make test): real services, vet, race tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
export CAPISYNC_TEST_PG_DSN="${CAPISYNC_TEST_PG_DSN:-postgres://capisync:capisync@127.0.0.1:5432/capisync_test?sslmode=disable}"
export CAPISYNC_TEST_MYSQL_DSN="${CAPISYNC_TEST_MYSQL_DSN:-capisync:capisync@tcp(127.0.0.1:3306)/capisync_test}"
# The same server as a user that may connect only over TLS.
export CAPISYNC_TEST_MYSQL_TLS_DSN="${CAPISYNC_TEST_MYSQL_TLS_DSN:-capisync_tls:capisync@tcp(127.0.0.1:3306)/capisync_test?tls=skip-verify}"
go vet ./...
# No test restarts the shared servers: the PostgreSQL restart test starts a
# private server of its own.
go test -race -count=1 "$@" ./...
