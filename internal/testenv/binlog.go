package testenv

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// BinlogTable is a table shape of the binlog benchmarks: its columns and
// the SELECT list that fills it from MariaDB's sequence table (seq).
type BinlogTable struct{ Columns, Fill string }

// BinlogTables are the binlog benchmarks' shapes: narrow (5 columns) and
// wide (14), the logical benchmark's in MariaDB's types.
var BinlogTables = map[string]BinlogTable{
	"narrow": {
		Columns: "id BIGINT PRIMARY KEY, status VARCHAR(20), email VARCHAR(100), total DECIMAL(12,2), updated_at DATETIME(6)",
		Fill:    "seq, 'contacted', CONCAT('lead', seq, '@example.com'), (seq % 1000) + 0.99, NOW(6)",
	},
	"wide": {
		Columns: `id BIGINT PRIMARY KEY, status VARCHAR(20), email VARCHAR(100), phone VARCHAR(30), first_name VARCHAR(50), last_name VARCHAR(50),
			city VARCHAR(50), zip VARCHAR(10), country CHAR(2), total DECIMAL(12,2), score INT, notes TEXT, created_at DATETIME(6), updated_at DATETIME(6)`,
		Fill: `seq, 'contacted', CONCAT('lead', seq, '@example.com'), CONCAT('+1 650 555 ', LPAD(seq % 10000, 4, '0')),
			CONCAT('First', seq), CONCAT('Last', seq), 'San Francisco', '94105', 'US', (seq % 1000) + 0.99, seq % 100, 'a short note', NOW(6), NOW(6)`,
	},
}

// BinlogTableOf is the shape CAPISYNC_BENCH_TABLE names (narrow when unset).
func BinlogTableOf(t testing.TB) (string, BinlogTable) {
	t.Helper()
	name := cmp.Or(os.Getenv("CAPISYNC_BENCH_TABLE"), "narrow")
	shape, ok := BinlogTables[name]
	if !ok {
		t.Fatalf("CAPISYNC_BENCH_TABLE=%s: narrow or wide", name)
	}
	return name, shape
}

// Decode is one run of mariadb-binlog: its wall time and the CPU it used.
type Decode struct {
	Took, CPU time.Duration
}

func (d Decode) String() string { return d.Took.Round(time.Millisecond).String() }

// DecodeBinlog times mariadb-binlog reading the binlog of the server at dsn
// from file:pos to the file's end over the replication protocol
// (--read-from-remote-server) and decoding every row (-v) to /dev/null:
// the reference a binlog reader's speed is measured against. It runs runs
// times and returns them, shortest first; on a noisy machine the median is
// the figure.
func DecodeBinlog(t testing.TB, dsn, file string, pos uint64, runs int) []Decode {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(cfg.Addr, ":")
	args := []string{"--read-from-remote-server", "--host=" + host, "--port=" + cmp.Or(port, "3306"),
		"--user=" + cfg.User, "--password=" + cfg.Passwd, fmt.Sprintf("--start-position=%d", pos),
		"-v", "--base64-output=DECODE-ROWS", file}
	var took []Decode
	for range runs {
		start := time.Now()
		cmd := exec.Command("mariadb-binlog", args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr // Stdout stays nil: /dev/null
		if err := cmd.Run(); err != nil {
			t.Fatalf("mariadb-binlog -v: %v\n%s", err, stderr.String())
		}
		took = append(took, Decode{Took: time.Since(start), CPU: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()})
	}
	slices.SortFunc(took, func(a, b Decode) int { return cmp.Compare(a.Took, b.Took) })
	return took
}
