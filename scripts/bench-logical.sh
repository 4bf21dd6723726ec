#!/usr/bin/env bash
# Logical replication benchmark: a 200,000-row UPDATE (one transaction) of a
# 14-column REPLICA IDENTITY FULL table; capisync end to end next to
# pg_recvlogical on an identical slot, and capisync's peak RSS.
# Usage: scripts/bench-logical.sh [rows]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
export CAPISYNC_TEST_PG_DSN="${CAPISYNC_TEST_PG_DSN:-postgres://capisync:capisync@127.0.0.1:5432/capisync_test?sslmode=disable}"
CAPISYNC_BENCH=1 CAPISYNC_BENCH_ROWS="${1:-200000}" go test -count=1 -timeout 30m -run TestBenchLogical -v ./cmd/capisync/ | grep -E "bench_logical_test|ok|FAIL"
