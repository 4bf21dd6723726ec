#!/usr/bin/env bash
# Logical replication benchmark: a 200,000-row UPDATE (one transaction) of a
# REPLICA IDENTITY FULL table; capisync end to end next to pg_recvlogical on
# an identical slot, and capisync's peak RSS. Four shapes: a wide (14
# columns) and a narrow (5) table, each with event ids given by the rule
# ("lead-" + id) and with the default ids (a hash). The machine is small and
# noisy, so each shape runs RUNS times (default 3) and medians are printed.
# STATE=postgres keeps capisync's state in PostgreSQL (a database of its own
# on the source's server) instead of the embedded file; STATE=postgres-samedb
# in a schema of the source's database.
# Usage: [RUNS=n] [SHAPES="wide/given narrow/default ..."] [STATE=postgres|postgres-samedb] scripts/bench-logical.sh [rows]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
export CAPISYNC_TEST_PG_DSN="${CAPISYNC_TEST_PG_DSN:-postgres://capisync:capisync@127.0.0.1:5432/capisync_test?sslmode=disable}"
runs="${RUNS:-3}"
shapes="${SHAPES:-wide/given wide/default narrow/given narrow/default}"
summary=$(mktemp)
trap 'rm -f "$out" "$summary"' EXIT
for shape in $shapes; do
	: >"$out"
	bench_runs "$runs" "$out" ./cmd/capisync/ TestBenchLogical CAPISYNC_BENCH_ROWS="${1:-200000}" \
		CAPISYNC_BENCH_TABLE="${shape%/*}" CAPISYNC_BENCH_IDS="${shape#*/}" CAPISYNC_BENCH_STATE="${STATE:-bolt}"
	{
		echo "table ${shape%/*}, event ids ${shape#*/}, state ${STATE:-bolt}, medians over $runs runs:"
		echo "  ratio capisync / pg_recvlogical: $(grep -o 'pg_recvlogical: [0-9.]* (goal' "$out" | awk '{print $2}' | median) (goal >= 0.6)"
		echo "  capisync rows/s: $(grep -o 'fake Graph API): [0-9.]*m\?s, [0-9]* rows/s' "$out" | awk '{print $5}' | median); pg_recvlogical rows/s: $(grep -o 'pg_recvlogical: [0-9.]*m\?s, [0-9]* rows/s' "$out" | awk '{print $3}' | median)"
		echo "  capisync peak RSS: median $(grep -o 'peak RSS [0-9.]* MiB' "$out" | awk '{print $3}' | median) MiB, highest $(grep -o 'peak RSS [0-9.]* MiB' "$out" | awk '{print $3}' | sort -n | tail -1) MiB (goal < 100)"
	} >>"$summary"
done
cat "$summary"
