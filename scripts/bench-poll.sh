#!/usr/bin/env bash
# Polling benchmark: a 1,000,000-row MariaDB table, then ROUNDS rounds
# (default 3) of 10,000 changed rows. Prints each round's poll next to the
# raw SELECT of the rows it read, and an idle poll next to a full-table read.
# The machine is small and noisy, so it runs RUNS times (default 5), each on
# a fresh table, and prints the medians over every round of every run.
# Usage: [RUNS=n] [ROUNDS=n] scripts/bench-poll.sh [rows]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
export CAPISYNC_TEST_MYSQL_DSN="${CAPISYNC_TEST_MYSQL_DSN:-capisync:capisync@tcp(127.0.0.1:3306)/capisync_test}"
runs="${RUNS:-5}"
bench_runs "$runs" "$out" ./connectors/sqlpoll/ TestBenchPoll CAPISYNC_BENCH_ROWS="${1:-1000000}" CAPISYNC_BENCH_ROUNDS="${ROUNDS:-3}"
echo "medians over $runs runs of ${ROUNDS:-3} rounds:"
echo "  poll / raw SELECT of the rows it read: $(grep -o 'poll / raw SELECT = [0-9.]*' "$out" | awk '{print $NF}' | median) (goal <= 2)"
# ms PATTERN: the median of the durations after PATTERN, in ms (Go prints
# "850ms" or "1.059s").
ms() { grep -o "$1 [0-9.]*m\?s" "$out" | awk '{d=$NF; if (d ~ /ms$/) {sub(/ms$/, "", d); print d} else {sub(/s$/, "", d); print d*1000}}' | median; }
echo "  poll: $(ms 'with [0-9]* changed rows:') ms; raw SELECT: $(ms 'raw SELECT of the rows the poll read:') ms (their first read, before the poll: $(ms 'their first read, before the poll:') ms)"
echo "  idle poll: $(ms 'idle poll (nothing changed):') ms; full-table read: $(ms 'a full-table read:') ms"
