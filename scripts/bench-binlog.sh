#!/usr/bin/env bash
# Binlog benchmark: a 200,000-row UPDATE in one transaction on MariaDB (the
# binlog ROW, FULL image and metadata); capisync end to end (the binary, a
# mysql_binlog source, every row an event delivered to the fake Graph API)
# and the binlog source alone (changes read, decoded and acknowledged, no
# rules, store or delivery), each next to mariadb-binlog reading the same
# events from the server, decoded row by row to /dev/null (and, for scale,
# copied raw), and capisync's peak RSS. Event ids given and default, every
# row an event; then an UPDATE no rule makes an event of (a backfill of
# updated_at: capisync reads, evaluates and checkpoints every change);
# RUNS times each (default 3), medians.
# Tables narrow (5 columns) and wide (14); SHAPES="wide/given/every" runs
# one shape (table/ids/events).
# Usage: [RUNS=n] [SHAPES=...] scripts/bench-binlog.sh [rows]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
export CAPISYNC_TEST_MYSQL_DSN="${CAPISYNC_TEST_MYSQL_DSN:-capisync:capisync@tcp(127.0.0.1:3306)/capisync_test}"
runs="${RUNS:-3}"
summary=$(mktemp)
trap 'rm -f "$out" "$summary"' EXIT
for shape in ${SHAPES:-narrow/given/every narrow/default/every narrow/given/none wide/given/every wide/default/every wide/given/none}; do
	IFS=/ read -r table ids events <<<"$shape"
	: >"$out"
	bench_runs "$runs" "$out" ./cmd/capisync/ TestBenchBinlog CAPISYNC_BENCH_ROWS="${1:-200000}" CAPISYNC_BENCH_TABLE="$table" CAPISYNC_BENCH_IDS="$ids" CAPISYNC_BENCH_EVENTS="$events"
	{
		echo "$table table, event ids $ids, $([ "$events" = every ] && echo every || echo no) row an event, medians over $runs runs:"
		echo "  ratio capisync / mariadb-binlog -v: $(grep -o 'mariadb-binlog -v: [0-9.]* (goal' "$out" | awk '{print $3}' | median) (goal >= 0.5)"
		echo "  capisync rows/s: $(grep -o 'capisync end to end ([^)]*): [0-9.]*m\?s, [0-9]* rows/s' "$out" | awk '{print $(NF-1)}' | median); CPU per row: $(grep -o 'CPU [0-9.]*s on [0-9]* cores, [0-9.]* µs per row' "$out" | awk '{print $(NF-3)}' | median) µs; mariadb-binlog -v rows/s: $(grep -o 'to /dev/null): [0-9.]*m\?s, [0-9]* rows/s' "$out" | awk '{print $4}' | median); --raw rows/s: $(grep -o 'nothing decoded): [0-9.]*m\?s, [0-9]* rows/s' "$out" | awk '{print $4}' | median)"
		echo "  capisync peak RSS: median $(grep -o 'peak RSS [0-9.]* MiB' "$out" | awk '{print $3}' | median) MiB, highest $(grep -o 'peak RSS [0-9.]* MiB' "$out" | awk '{print $3}' | sort -n | tail -1) MiB (goal < 100)"
	} >>"$summary"
done

for table in narrow wide; do
	: >"$out"
	bench_runs "$runs" "$out" ./connectors/mysqlbinlog/ TestBenchSource CAPISYNC_BENCH_ROWS="${1:-200000}" CAPISYNC_BENCH_TABLE="$table"
	{
		echo "binlog source alone, $table table, medians over $runs runs:"
		echo "  ratio source / mariadb-binlog -v: $(grep -o 'ratio source alone / mariadb-binlog -v: [0-9.]*' "$out" | awk '{print $NF}' | median)"
		echo "  source rows/s: $(grep -o 'in [0-9.]*m\?s, [0-9]* rows/s' "$out" | awk '{print $3}' | median); allocations per row: $(grep -o '[0-9.]* allocations per row' "$out" | awk '{print $1}' | median); CPU per row: $(grep -o 'CPU [0-9.]* µs per row (the first' "$out" | awk '{print $2}' | median) µs (mariadb-binlog -v: $(grep -o 'CPU [0-9.]* µs per row$' "$out" | awk '{print $2}' | median) µs)"
	} >>"$summary"
done
cat "$summary"
