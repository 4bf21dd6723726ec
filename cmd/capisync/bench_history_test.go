package main

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capisync/capisync/connectors/metacapi/metacapitest"
	"github.com/capisync/capisync/internal/testenv"
)

// TestBenchHistory is the history benchmark (scripts/bench-history.sh):
// one daemon over ten transactions that each UPDATE every row of a
// 200,000-row narrow table, default event ids, 2,000,000 events in all.
// Every id stays remembered, so the last transaction is committed into a
// store that holds 1,800,000 ids and the first into an empty one: its
// rows/s should hold (goal: last / first >= 0.8).
func TestBenchHistory(t *testing.T) {
	rows, txns := testenv.BenchRows(t, "scripts/bench-history.sh", 200000), 10
	dsn := testenv.PostgresDSN(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cleanup := func() {
		testenv.DropSlots(t, dsn, "bench_history")
		db.Exec("DROP PUBLICATION IF EXISTS bench_history_pub")
		db.Exec("DROP TABLE IF EXISTS bench_history")
	}
	cleanup()
	defer cleanup()
	for _, q := range []string{
		"CREATE TABLE bench_history (id bigint PRIMARY KEY, status text, email text, total numeric(12,2), updated_at timestamptz)",
		"ALTER TABLE bench_history REPLICA IDENTITY FULL",
		fmt.Sprintf("INSERT INTO bench_history SELECT g, 'customer', 'lead' || g || '@example.com', (g %% 1000) + 0.99, now() FROM generate_series(1, %d) g", rows),
		"CREATE PUBLICATION bench_history_pub FOR TABLE bench_history",
		"SELECT pg_create_logical_replication_slot('bench_history', 'pgoutput')",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	// The ten transactions are in the WAL before capisync starts: it reads
	// them back to back, as fast as it can.
	for range txns {
		if _, err := db.Exec("UPDATE bench_history SET total = total + 1, updated_at = now()"); err != nil {
			t.Fatal(err)
		}
	}

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
  crm:
    type: postgres
    dsn: '%s'
    slot: bench_history
    publication: bench_history_pub
    create: false
    tables: [public.bench_history]
destinations:
  meta:
    type: meta_capi
    pixel_id: "1234567890"
    access_token: EAAbench
    base_url: %s
    max_outbox: 5000
rules:
  - name: repriced
    source: crm
    table: public.bench_history
    when: changed("total")
    event: Purchase
    event_time: new.updated_at
    user_data: {em: new.email, external_id: string(new.id)}
    custom_data: {value: new.total, currency: '"USD"'}
`, dir, listen, dsn, fake.URL)), 0o600)
	cmd := exec.Command(bin, "run", "--config", cfg)
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), "CAPISYNC_CPUPROFILE="+os.Getenv("CAPISYNC_BENCH_PROFILE"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	// Each transaction's rows/s is measured over its last 90%: from when
	// the fake had accepted a tenth of its events to when it had them all.
	// Its first tenth is left out, the same for every transaction, since
	// the first transaction's begins with the pipeline filling (events
	// evaluated and queued before the first one is delivered).
	starts := make([]time.Time, 0, txns)
	marks := make([]time.Time, 0, txns)
	peak := 0
	var curve []string
	lastMark := time.Now()
	began := time.Now()
	var lastCPU, lastWal float64
	deadline := time.Now().Add(20 * time.Minute)
	for len(marks) < txns && time.Now().Before(deadline) {
		n := fake.Stats().Accepted
		for len(starts) < txns && n >= len(starts)*rows+rows/10 {
			starts = append(starts, time.Now())
		}
		for len(marks) < txns && n >= (len(marks)+1)*rows {
			marks = append(marks, time.Now())
			// A CPU profile of the last transaction, from the daemon's
			// pprof endpoint (CAPISYNC_BENCH_TAIL_PROFILE=file).
			if p := os.Getenv("CAPISYNC_BENCH_TAIL_PROFILE"); p != "" && len(marks) == txns-1 {
				go saveDebug(listen, "/debug/pprof/profile?seconds=4", p)
			}
		}
		peak = max(peak, vmHWM(cmd.Process.Pid))
		if time.Since(lastMark) >= time.Second {
			lastMark = time.Now()
			var walsender int
			db.QueryRow("SELECT coalesce(active_pid, 0) FROM pg_replication_slots WHERE slot_name = 'bench_history'").Scan(&walsender)
			cpu, wcpu := procCPU(cmd.Process.Pid), procCPU(walsender)
			curve = append(curve, fmt.Sprintf("%.0fs: %d (RSS %d MiB, CPU capisync %.1fs, walsender %.1fs)", time.Since(began).Seconds(), n,
				procField(cmd.Process.Pid, "VmRSS:")/1024, cpu-lastCPU, wcpu-lastWal))
			lastCPU, lastWal = cpu, wcpu
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(marks) < txns {
		t.Fatalf("delivered %d of %d events in 20 minutes", fake.Stats().Accepted, rows*txns)
	}
	rates := make([]float64, txns)
	for i, m := range marks {
		rates[i] = float64(rows-rows/10) / m.Sub(starts[i]).Seconds()
	}
	var line string
	for i, r := range rates {
		line += fmt.Sprintf(" %d:%.0f", i+1, r)
	}
	mid := slices.Clone(rates)
	slices.Sort(mid)
	t.Logf("%d transactions of %d rows, default event ids; rows/s per transaction:%s", txns, rows, line)
	t.Logf("delivered: %s", strings.Join(curve, "; "))
	t.Logf("history: last / first transaction rows/s: %.2f (goal >= 0.8); median %.0f rows/s; peak RSS %.1f MiB, at the end anonymous %d MiB, file-backed (the store's mmap) %d MiB",
		rates[txns-1]/rates[0], mid[txns/2], float64(peak)/1024, procField(cmd.Process.Pid, "RssAnon:")/1024, procField(cmd.Process.Pid, "RssFile:")/1024)
	t.Logf("at the end, resident: the store's mapped file %d MiB, the binary %d MiB", mappedRSS(cmd.Process.Pid, "state.db")/1024, mappedRSS(cmd.Process.Pid, filepath.Base(bin))/1024)
	st, _ := os.Stat(filepath.Join(dir, "state.db"))
	t.Logf("store file %.1f MiB after %d events", float64(st.Size())/(1<<20), rows*txns)
}

// mappedRSS is the resident KiB of a process's mappings of files whose
// path ends in name (from /proc/pid/smaps).
func mappedRSS(pid int, name string) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	kb, in := 0, false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-"):
			in = len(f) >= 6 && strings.HasSuffix(f[len(f)-1], name)
		case in && len(f) >= 2 && f[0] == "Rss:":
			n, _ := strconv.Atoi(f[1])
			kb += n
		}
	}
	return kb
}
