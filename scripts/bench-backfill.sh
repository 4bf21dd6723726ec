#!/usr/bin/env bash
# Backfill benchmark: a polling source with `initial: emit` over a
# 1,000,000-row MariaDB table, every row an event delivered to the fake
# Graph API, with default (hashed) and given event ids; rows/s next to a raw
# SELECT of the table. Runs RUNS times (default 3) per id shape, medians.
# Usage: [RUNS=n] scripts/bench-backfill.sh [rows]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
export CAPISYNC_TEST_MYSQL_DSN="${CAPISYNC_TEST_MYSQL_DSN:-capisync:capisync@tcp(127.0.0.1:3306)/capisync_test}"
runs="${RUNS:-3}"
summary=$(mktemp)
trap 'rm -f "$out" "$summary"' EXIT
for ids in default given; do
	: >"$out"
	bench_runs "$runs" "$out" ./cmd/capisync/ TestBenchBackfill CAPISYNC_BENCH_ROWS="${1:-1000000}" CAPISYNC_BENCH_IDS="$ids"
	{
		echo "event ids $ids, medians over $runs runs:"
		echo "  backfill rows/s: $(grep -o "[0-9]* rows/s, read" "$out" | awk "{print \$1}" | median)"
		echo "  raw SELECT rows/s: $(grep -o 'rows, [0-9]* rows/s; backfill' "$out" | awk '{print $2}' | median)"
		echo "  backfill / raw SELECT: $(grep -o 'backfill / raw SELECT rows/s = [0-9.]*' "$out" | awk '{print $NF}' | median)"
	} >>"$summary"
done
cat "$summary"
