# Shared by the benchmark scripts (sourced, not run, from the repository's
# root): make sure the databases run, run a benchmark test several times
# into $out (removed on exit) and take medians of what it printed.

bash scripts/services.sh
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# bench_runs RUNS OUT PACKAGE TEST [ENV=VALUE...]: runs TEST of PACKAGE RUNS
# times with CAPISYNC_BENCH=1 and the given variables, printing its lines
# and appending them to OUT.
bench_runs() {
	local runs=$1 out=$2 pkg=$3 test=$4
	shift 4
	for i in $(seq "$runs"); do
		echo "run $i of $runs"
		env CAPISYNC_BENCH=1 "$@" go test -count=1 -timeout 30m -run "$test" -v "$pkg" |
			grep -E "_test.go:|^ok|FAIL" | tee -a "$out"
	done
}

# median: the median of the numbers on standard input, one per line.
median() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
