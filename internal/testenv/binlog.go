package testenv

import (
	"cmp"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

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
