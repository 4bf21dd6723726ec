package mysqlbinlog

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/internal/testenv"
)

// TestBenchSource is the binlog source alone (scripts/bench-binlog.sh):
// one UPDATE of CAPISYNC_BENCH_ROWS rows (default 200,000) in one
// transaction, read from the server, decoded and converted to changes
// that are acknowledged as they come, next to mariadb-binlog decoding the
// same events to /dev/null. What the source costs, without the rules, the
// store and the delivery that every source shares.
func TestBenchSource(t *testing.T) {
	rows := testenv.BenchRows(t, "scripts/bench-binlog.sh", 200000)
	shapeName, shape := testenv.BinlogTableOf(t)
	r := newRig(t, "CREATE TABLE %s ("+shape.Columns+")")
	r.exec(fmt.Sprintf("INSERT INTO %s SELECT %s FROM seq_1_to_%d", r.table, shape.Fill, rows))
	before := r.now()
	at, _ := parsePosition(before)
	r.exec("UPDATE " + r.table + " SET status = 'qualified', updated_at = NOW(6)")
	ref := testenv.DecodeBinlog(t, testenv.MySQLDSN(t), at.File, uint64(at.Pos), 3)

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	allocs0 := ms.Mallocs
	cpu0 := selfCPU(t)
	start := time.Now()
	r.start(before)
	n := 0
	var first time.Duration // to the first change: connecting, the checks, the table's shape
	deadline := time.After(5 * time.Minute)
	for n < rows {
		select {
		case b := <-r.out:
			if n == 0 && len(b.Changes) > 0 {
				first = time.Since(start)
			}
			n += len(b.Changes)
			if b.Position != nil {
				r.src.Ack(context.Background(), b.Position)
			}
			for _, c := range b.Changes {
				if c.Op != cdc.Update {
					t.Fatalf("%s, want updates", c.Op)
				}
			}
		case err := <-r.done:
			t.Fatalf("Run ended after %d changes: %v", n, err)
		case <-deadline:
			t.Fatalf("%d of %d changes after 5 minutes", n, rows)
		}
	}
	took := time.Since(start)
	cpu := selfCPU(t) - cpu0
	runtime.ReadMemStats(&ms)
	r.halt()
	rate, refRate := float64(rows)/took.Seconds(), float64(rows)/ref[1].Took.Seconds()
	t.Logf("binlog source alone, %s table: %d-row UPDATE in %s, %.0f rows/s, %.1f allocations per row, CPU %.1f µs per row (the first change after %s)", shapeName, rows, took.Round(time.Millisecond), rate, float64(ms.Mallocs-allocs0)/float64(rows), perRow(cpu, rows), first.Round(time.Millisecond))
	t.Logf("mariadb-binlog -v (every row decoded, to /dev/null): %s, %.0f rows/s (median of %v), CPU %.1f µs per row", ref[1].Took.Round(time.Millisecond), refRate, ref, perRow(ref[1].CPU, rows))
	t.Logf("ratio source alone / mariadb-binlog -v: %.2f", rate/refRate)
}

// selfCPU is the CPU this process has used so far, user and system.
func selfCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func perRow(cpu time.Duration, rows int) float64 {
	return float64(cpu.Microseconds()) / float64(rows)
}
