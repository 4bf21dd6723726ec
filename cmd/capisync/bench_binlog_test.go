package main

import (
	"cmp"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/capisync/capisync/connectors/metacapi/metacapitest"
	"github.com/capisync/capisync/internal/testenv"
)

// TestBenchBinlog is the binlog benchmark (scripts/bench-binlog.sh): one
// UPDATE of 200,000 rows in one transaction on MariaDB; capisync's
// end-to-end rows/s (binlog -> rules -> outbox -> fake Graph API, the real
// binary) next to mariadb-binlog reading the same events from the server
// (--read-from-remote-server) and decoding every row to /dev/null (-v),
// and capisync's peak RSS. The raw copy (--raw) is printed for scale.
// CAPISYNC_BENCH_TABLE is narrow (5 columns, the default) or wide (14).
// CAPISYNC_BENCH_IDS is given (event_id "lead-" + id, the default) or
// default (the default hash). CAPISYNC_BENCH_EVENTS is every (the UPDATE
// qualifies every row: each is an event, the default) or none (it touches
// updated_at only, as a backfill or a migration does: no row is an event,
// and capisync is done once every change is read and checkpointed).
func TestBenchBinlog(t *testing.T) {
	rows := testenv.BenchRows(t, "scripts/bench-binlog.sh", 200000)
	ids, eventID := benchEventID(t, "given", `'"lead-" + string(new.id)'`)
	shapeName, shape := testenv.BinlogTableOf(t) // the rule's keys are the logical benchmark's for the shape
	events := cmp.Or(os.Getenv("CAPISYNC_BENCH_EVENTS"), "every")
	update := map[string]string{"every": "SET status = 'qualified', updated_at = NOW(6)", "none": "SET updated_at = NOW(6)"}[events]
	if update == "" {
		t.Fatalf("CAPISYNC_BENCH_EVENTS=%s: every or none", events)
	}
	dsn := testenv.MySQLDSN(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	table := fmt.Sprintf("bench_binlog_%d", time.Now().UnixNano()%1e9)
	mustExec(t, db, "CREATE TABLE "+table+" ("+shape.Columns+")")
	defer db.Exec("DROP TABLE " + table)
	mustExec(t, db, fmt.Sprintf("INSERT INTO %s SELECT %s FROM seq_1_to_%d", table, shape.Fill, rows))

	bin := buildBinary(t)
	fake := metacapitest.New("1234567890", "EAAbench")
	fake.CountOnly = true
	fake.SampleEvery = 10
	defer fake.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	listen := freeAddr(t)
	os.WriteFile(cfg, []byte(fmt.Sprintf(`state: {path: %s/state.db}
http: {listen: "%s"}
log: {level: warn}
sources:
  shop:
    type: mysql_binlog
    dsn: '%s'
    server_id: %d
    tables: [%s]
destinations:
  meta:
    type: meta_capi
    pixel_id: "1234567890"
    access_token: EAAbench
    base_url: %s
    max_outbox: 5000
rules:
  - name: qualified
    source: shop
    table: %s
    when: changed_to("status", "qualified")
    event: Lead
    event_time: new.updated_at
    %s
    %s
`, dir, listen, dsn, 44000+time.Now().UnixNano()%1000, table, fake.URL, table, eventID, benchShapes[shapeName].userData)), 0o600)

	// A first run checkpoints the position before the UPDATE, and stops.
	first := exec.Command(bin, "run", "--config", cfg)
	first.Stderr = os.Stderr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	waitLock(t, dir, first)
	time.Sleep(time.Second)
	first.Process.Signal(syscall.SIGTERM)
	first.Wait()

	// The binlog's end now: the UPDATE is what comes after it.
	var file string
	var pos uint64
	var doDB, ignoreDB string
	if err := db.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &doDB, &ignoreDB); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "UPDATE "+table+" "+update)

	// mariadb-binlog reads the same events from the server: copied as
	// they are (--raw), and decoded row by row (-v, to /dev/null), as
	// capisync must.
	cfgDSN, _ := mysql.ParseDSN(dsn)
	host, port, _ := strings.Cut(cfgDSN.Addr, ":")
	remote := []string{"--read-from-remote-server", "--host=" + host, "--port=" + cmp.Or(port, "3306"),
		"--user=" + cfgDSN.User, "--password=" + cfgDSN.Passwd, fmt.Sprintf("--start-position=%d", pos)}
	rawDir := t.TempDir()
	start := time.Now()
	if out, err := exec.Command("mariadb-binlog", append(remote, "--raw", "--result-file="+rawDir+"/", file)...).CombinedOutput(); err != nil {
		t.Fatalf("mariadb-binlog --raw: %v\n%s", err, out)
	}
	rawTook := time.Since(start)
	var rawBytes int64
	if fi, err := os.Stat(filepath.Join(rawDir, file)); err == nil {
		rawBytes = fi.Size()
	}
	// Decoded: the median of three runs, the reference being as noisy
	// as anything on a shared machine.
	refRuns := testenv.DecodeBinlog(t, dsn, file, pos, 3)
	refTook := refRuns[1].Took

	start = time.Now()
	selfCPU := procCPU(os.Getpid()) // the fake Graph API's share: it runs in this process
	cmd := exec.Command(bin, "run", "--config", cfg)
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), "CAPISYNC_CPUPROFILE="+os.Getenv("CAPISYNC_BENCH_PROFILE"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	peak, peakAnon := 0, 0
	deadline := time.Now().Add(10 * time.Minute)
	// Every row an event: done when the fake has them all. None: when
	// every change is committed with its checkpoint.
	read := fmt.Sprintf(`capisync_changes_read_total{op="update",source="shop",table="%s"} `, table)
	done := func() bool {
		if events == "every" {
			return fake.Stats().Accepted >= rows
		}
		_, body := httpGet(listen, "/metrics")
		_, after, _ := strings.Cut(body, read)
		line, _, _ := strings.Cut(after, "\n")
		n, _ := strconv.ParseFloat(line, 64)
		return n >= float64(rows)
	}
	finished := false
	for !finished && time.Now().Before(deadline) {
		peak = max(peak, vmHWM(cmd.Process.Pid))
		if a := procField(cmd.Process.Pid, "RssAnon:"); a > peakAnon {
			peakAnon = a
			if p := os.Getenv("CAPISYNC_BENCH_HEAP"); p != "" {
				saveDebug(listen, "/debug/pprof/heap", p)
			}
		}
		time.Sleep(20 * time.Millisecond)
		finished = done()
	}
	capTook := time.Since(start)
	peak = max(peak, vmHWM(cmd.Process.Pid))
	cpu := procCPU(cmd.Process.Pid)
	fakeCPU := procCPU(os.Getpid()) - selfCPU
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if got, want := fake.Stats().Accepted, map[string]int{"every": rows, "none": 0}[events]; got != want {
		t.Fatalf("fake received %d events, want %d", got, want)
	}
	if !finished {
		t.Fatalf("not done after 10 minutes")
	}
	refRate, capRate := float64(rows)/refTook.Seconds(), float64(rows)/capTook.Seconds()
	t.Logf("%d-row UPDATE of a %s table, one transaction, MariaDB binlog (ROW, FULL image and metadata), event ids %s, %s row an event", rows, shapeName, ids, map[string]string{"every": "every", "none": "no"}[events])
	t.Logf("mariadb-binlog --raw (a copy of %.1f MiB, nothing decoded): %s, %.0f rows/s; capisync / it: %.3f",
		float64(rawBytes)/(1<<20), rawTook.Round(time.Millisecond), float64(rows)/rawTook.Seconds(), capRate/(float64(rows)/rawTook.Seconds()))
	t.Logf("mariadb-binlog -v (every row decoded, to /dev/null): %s, %.0f rows/s (median of %s), CPU %.1f µs per row", refTook.Round(time.Millisecond), refRate, refRuns, refRuns[1].CPU.Seconds()*1e6/float64(rows))
	path := map[string]string{"every": "binlog -> rules -> outbox -> fake Graph API", "none": "binlog -> rules -> checkpoint, no event"}[events]
	t.Logf("capisync end to end (%s): %s, %.0f rows/s", path, capTook.Round(time.Millisecond), capRate)
	t.Logf("ratio capisync / mariadb-binlog -v: %.2f (goal >= 0.5); capisync peak RSS %.1f MiB (goal < 100), anonymous %.1f MiB; capisync CPU %.1fs on %d cores, %.1f µs per row (the fake Graph API %.1fs)",
		capRate/refRate, float64(peak)/1024, float64(peakAnon)/1024, cpu, runtime.NumCPU(), cpu*1e6/float64(rows), fakeCPU)
}
