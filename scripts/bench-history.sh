#!/usr/bin/env bash
# History benchmark: one daemon over ten 200,000-row UPDATE transactions of
# a narrow table with the default (hashed) event ids, 2,000,000 events; the
# last transaction's rows/s next to the first's, when the store already
# remembers 1,800,000 ids. Runs RUNS times (default 3), prints medians.
# Usage: [RUNS=n] scripts/bench-history.sh [rows per transaction]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
export CAPISYNC_TEST_PG_DSN="${CAPISYNC_TEST_PG_DSN:-postgres://capisync:capisync@127.0.0.1:5432/capisync_test?sslmode=disable}"
runs="${RUNS:-3}"
bench_runs "$runs" "$out" ./cmd/capisync/ TestBenchHistory CAPISYNC_BENCH_ROWS="${1:-200000}"
echo "medians over $runs runs:"
echo "  last / first transaction rows/s: $(grep -o 'first transaction rows/s: [0-9.]*' "$out" | awk '{print $4}' | median) (goal >= 0.8)"
echo "  median transaction rows/s: $(grep -o 'median [0-9]* rows/s' "$out" | awk '{print $2}' | median)"
echo "  peak RSS: $(grep -o 'peak RSS [0-9.]* MiB' "$out" | awk '{print $3}' | median) MiB"
