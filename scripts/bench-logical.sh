#!/usr/bin/env bash
# Logical replication benchmark: a 200,000-row UPDATE (one transaction) of a
# 14-column REPLICA IDENTITY FULL table; capisync end to end next to
# pg_recvlogical on an identical slot, and capisync's peak RSS. The machine
# is small and noisy, so it runs RUNS times (default 3) and prints medians.
# Usage: [RUNS=n] scripts/bench-logical.sh [rows]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
export CAPISYNC_TEST_PG_DSN="${CAPISYNC_TEST_PG_DSN:-postgres://capisync:capisync@127.0.0.1:5432/capisync_test?sslmode=disable}"
runs="${RUNS:-3}"
bench_runs "$runs" "$out" ./cmd/capisync/ TestBenchLogical CAPISYNC_BENCH_ROWS="${1:-200000}"
echo "medians over $runs runs:"
echo "  ratio capisync / pg_recvlogical: $(grep -o 'pg_recvlogical: [0-9.]* (goal' "$out" | awk '{print $2}' | median) (goal >= 0.6)"
echo "  capisync rows/s: $(grep -o 'fake Graph API): [0-9.]*m\?s, [0-9]* rows/s' "$out" | awk '{print $5}' | median); pg_recvlogical rows/s: $(grep -o 'pg_recvlogical: [0-9.]*m\?s, [0-9]* rows/s' "$out" | awk '{print $3}' | median)"
echo "  capisync peak RSS: $(grep -o 'peak RSS [0-9.]* MiB' "$out" | awk '{print $3}' | median) MiB (goal < 100)"
echo "  capisync peak RSS, highest run: $(grep -o 'peak RSS [0-9.]* MiB' "$out" | awk '{print $3}' | sort -n | tail -1) MiB"
