#!/usr/bin/env bash
# Polling benchmark: a 1,000,000-row MariaDB table with 10,000 changed rows.
# Prints one poll's time next to the raw SELECT of the changed rows, and an
# idle poll next to a full-table read. Usage: scripts/bench-poll.sh [rows]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
export CAPISYNC_TEST_MYSQL_DSN="${CAPISYNC_TEST_MYSQL_DSN:-capisync:capisync@tcp(127.0.0.1:3306)/capisync_test}"
CAPISYNC_BENCH=1 CAPISYNC_BENCH_ROWS="${1:-1000000}" go test -count=1 -timeout 30m -run TestBenchPoll -v ./connectors/sqlpoll/ | grep -E "bench_test|^ok|FAIL"
