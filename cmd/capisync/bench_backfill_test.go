package main

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/capisync/capisync/connectors/metacapi/metacapitest"
	"github.com/capisync/capisync/internal/testenv"
)

// TestBenchBackfill is the backfill benchmark (scripts/bench-backfill.sh):
// the capisync binary with a polling source, `initial: emit`, over a
// 1,000,000-row MariaDB table, every row an event delivered to the fake
// Graph API; its rows/s next to a raw SELECT of the table and its peak
// RSS. CAPISYNC_BENCH_IDS is default (no event_id: the hash) or given
// ("order-" + id).
func TestBenchBackfill(t *testing.T) {
	rows := testenv.BenchRows(t, "scripts/bench-backfill.sh", 1_000_000)
	ids, eventID := benchEventID(t, "default", `'"order-" + string(new.id)'`)
	pageSize := "" // the default
	if n := os.Getenv("CAPISYNC_BENCH_PAGE"); n != "" {
		pageSize = "    page_size: " + n + "\n"
	}
	dsn := testenv.MySQLDSN(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	table := fmt.Sprintf("bench_backfill_%d", time.Now().UnixNano()%1e9)
	defer db.Exec("DROP TABLE " + table)
	mustExec(t, db, "CREATE TABLE "+table+" (id BIGINT PRIMARY KEY, status VARCHAR(32), email VARCHAR(255), total DECIMAL(12,2), updated_at DATETIME(6), KEY (updated_at, id))")
	start := time.Now()
	mustExec(t, db, fmt.Sprintf(`INSERT INTO %s SELECT seq, 'customer', CONCAT('buyer', seq, '@example.com'), 10.00,
		NOW(6) - INTERVAL 1 HOUR - INTERVAL ((%d - seq) * 1000) MICROSECOND FROM seq_1_to_%d`, table, rows, rows))
	t.Logf("loaded %d rows in %s", rows, time.Since(start).Round(time.Millisecond))
	// The raw SELECT, in the order capisync reads (twice; the second
	// counts: the table is then as warm for it as for the backfill).
	q := "SELECT id, status, email, total, updated_at FROM " + table + " ORDER BY updated_at, id"
	rawRead(t, db, q)
	rawTook, rawRows := rawRead(t, db, q)

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
    type: mysql
    dsn: '%s'
    schedule: "@every 1s"
    initial: emit
%s    tables:
      %s: {key: [id], cursor: updated_at, lookback: 5s}
destinations:
  meta:
    type: meta_capi
    pixel_id: "1234567890"
    access_token: EAAbench
    base_url: %s
    max_outbox: 5000
rules:
  - name: customer
    source: shop
    table: %s
    when: changed("status")
    event: Purchase
    event_time: new.updated_at
    %s
    user_data: {em: new.email, external_id: string(new.id)}
    custom_data: {value: new.total, currency: '"EUR"'}
`, dir, listen, dsn, pageSize, table, fake.URL, table, eventID)), 0o600)
	cmd := exec.Command(bin, "run", "--config", cfg)
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), "CAPISYNC_CPUPROFILE="+os.Getenv("CAPISYNC_BENCH_PROFILE"))
	start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	peak := 0
	deadline := time.Now().Add(20 * time.Minute)
	heapAt := time.Now().Add(5 * time.Second)
	for fake.Stats().Accepted < rows && time.Now().Before(deadline) {
		peak = max(peak, vmHWM(cmd.Process.Pid))
		// A heap profile 5 s in (CAPISYNC_BENCH_HEAP=file).
		if p := os.Getenv("CAPISYNC_BENCH_HEAP"); p != "" && !heapAt.IsZero() && time.Now().After(heapAt) {
			heapAt = time.Time{}
			saveDebug(listen, "/debug/pprof/heap", p)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	cpu := procCPU(cmd.Process.Pid)
	if got := fake.Stats().Accepted; got != rows {
		t.Fatalf("backfill delivered %d of %d events", got, rows)
	}
	t.Logf("backfill (initial: emit) of %d rows, event ids %s: %s, %.0f rows/s, read, evaluated, committed and delivered; capisync CPU %.1fs, peak RSS %.1f MiB",
		rows, ids, took.Round(time.Millisecond), float64(rows)/took.Seconds(), cpu, float64(peak)/1024)
	t.Logf("raw SELECT of the table: %s for %d rows, %.0f rows/s; backfill / raw SELECT rows/s = %.3f",
		rawTook.Round(time.Millisecond), rawRows, float64(rawRows)/rawTook.Seconds(), rawTook.Seconds()/took.Seconds())
}

// rawRead times a query read to the end, every column scanned.
func rawRead(t *testing.T, db *sql.DB, q string) (time.Duration, int) {
	start := time.Now()
	rs, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rs.Next() {
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		n++
	}
	return time.Since(start), n
}
