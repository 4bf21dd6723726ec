package main

import (
	"cmp"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capisync/capisync/connectors/metacapi/metacapitest"
	"github.com/capisync/capisync/internal/ops"
	"github.com/capisync/capisync/internal/testenv"
)

// benchShape is a table and rule shape of the logical benchmark.
type benchShape struct {
	columns  string // CREATE TABLE bench_leads (...)
	fill     string // SELECT list of the INSERT, over generate_series g
	userData string // the rule's user_data and custom_data
}

var benchShapes = map[string]benchShape{
	"wide": {
		columns: `id bigint PRIMARY KEY, status text, email text, phone text, first_name text, last_name text,
			city text, zip text, country text, total numeric(12,2), score int, notes text, created_at timestamptz, updated_at timestamptz`,
		fill: `g, 'contacted', 'lead' || g || '@example.com', '+1 650 555 ' || lpad((g %% 10000)::text, 4, '0'),
			'First' || g, 'Last' || g, 'San Francisco', '94105', 'US', (g %% 1000) + 0.99, g %% 100, 'a short note', now(), now()`,
		userData: `user_data: {em: new.email, ph: new.phone, fn: new.first_name, ln: new.last_name, ct: new.city, zp: new.zip, external_id: string(new.id)}
    custom_data: {value: new.total, currency: '"USD"', event_source: '"crm"'}`,
	},
	"narrow": {
		columns: `id bigint PRIMARY KEY, status text, email text, total numeric(12,2), updated_at timestamptz`,
		fill:    `g, 'contacted', 'lead' || g || '@example.com', (g %% 1000) + 0.99, now()`,
		userData: `user_data: {em: new.email, external_id: string(new.id)}
    custom_data: {value: new.total, currency: '"USD"'}`,
	},
}

// TestBenchLogical is the logical replication benchmark (scripts/
// bench-logical.sh): one UPDATE of 200,000 rows with REPLICA IDENTITY
// FULL; capisync's end-to-end rows/s (WAL -> rules -> outbox -> fake
// Graph API, the real binary) next to pg_recvlogical draining an
// identical pgoutput slot, and capisync's peak RSS. CAPISYNC_BENCH_TABLE
// is wide (14 columns, the default) or narrow (5); CAPISYNC_BENCH_IDS is
// given (event_id "lead-" + id, the default) or default (no event_id: the
// default hash).
func TestBenchLogical(t *testing.T) {
	rows := testenv.BenchRows(t, "scripts/bench-logical.sh", 200000)
	table := cmp.Or(os.Getenv("CAPISYNC_BENCH_TABLE"), "wide")
	shape, ok := benchShapes[table]
	if !ok {
		t.Fatalf("CAPISYNC_BENCH_TABLE=%s: wide or narrow", table)
	}
	ids, eventID := benchEventID(t, "given", `'"lead-" + string(new.id)'`)
	dsn := testenv.PostgresDSN(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cleanup := func() {
		testenv.DropSlots(t, dsn, "bench_capisync", "bench_recv")
		db.Exec("DROP PUBLICATION IF EXISTS bench_pub")
		db.Exec("DROP TABLE IF EXISTS bench_leads")
	}
	cleanup()
	defer cleanup()
	for _, q := range []string{
		"CREATE TABLE bench_leads (" + shape.columns + ")",
		"ALTER TABLE bench_leads REPLICA IDENTITY FULL",
		fmt.Sprintf("INSERT INTO bench_leads SELECT "+shape.fill+" FROM generate_series(1, %d) g", rows),
		"CREATE PUBLICATION bench_pub FOR TABLE bench_leads",
		"SELECT pg_create_logical_replication_slot('bench_capisync', 'pgoutput')",
		"SELECT pg_create_logical_replication_slot('bench_recv', 'pgoutput')",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	if _, err := db.Exec("UPDATE bench_leads SET status = 'qualified', updated_at = now()"); err != nil {
		t.Fatal(err)
	}
	var endpos string
	db.QueryRow("SELECT pg_current_wal_lsn()::text").Scan(&endpos)

	// pg_recvlogical drains its slot to the WAL end after the UPDATE.
	start := time.Now()
	recv := exec.Command("pg_recvlogical", "-d", dsn, "--slot", "bench_recv", "--start", "-E", endpos,
		"-o", "proto_version=1", "-o", "publication_names=bench_pub", "-f", "/dev/null", "--no-loop")
	if out, err := recv.CombinedOutput(); err != nil {
		t.Fatalf("pg_recvlogical: %v\n%s", err, out)
	}
	recvTook := time.Since(start)

	// capisync, the real binary, to the fake Graph API.
	bin := buildBinary(t)
	fake := metacapitest.New("1234567890", "EAAbench")
	fake.CountOnly = true // keep no events: the test process stays small
	// Every 10th request is validated in full; the others are framed and
	// counted, so that the fake takes less of the two cores from capisync.
	fake.SampleEvery = 10
	defer fake.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	listen := freeAddr(t)
	// CAPISYNC_BENCH_STATE=postgres keeps the state in PostgreSQL, as the
	// README advises: a database of its own in the source's server (its
	// writes share the server's WAL and fsyncs, and logical decoding steps
	// over them). postgres-samedb puts it in the source's database (a
	// schema of its own), whose walsender then decodes every state write.
	stateYAML := fmt.Sprintf("{path: %s/state.db}", dir)
	switch st := os.Getenv("CAPISYNC_BENCH_STATE"); st {
	case "", "bolt":
	case "postgres":
		name := fmt.Sprintf("capisync_bench_state_%d", time.Now().UnixNano()%1e9)
		if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
			t.Fatal(err)
		}
		defer db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/" + name
		stateYAML = fmt.Sprintf("{type: postgres, dsn: '%s'}", u)
	case "postgres-samedb":
		schema := fmt.Sprintf("bench_state_%d", time.Now().UnixNano()%1e9)
		stateYAML = fmt.Sprintf("{type: postgres, dsn: '%s', schema: %s}", dsn, schema)
		defer db.Exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE")
	default:
		t.Fatalf("CAPISYNC_BENCH_STATE=%s: bolt, postgres or postgres-samedb", st)
	}
	os.WriteFile(cfg, []byte(fmt.Sprintf(`state: %s
http: {listen: "`+listen+`"}
log: {level: warn}
sources:
  crm:
    type: postgres
    dsn: '%s'
    slot: bench_capisync
    publication: bench_pub
    create: false
    tables: [public.bench_leads]
destinations:
  meta:
    type: meta_capi
    pixel_id: "1234567890"
    access_token: EAAbench
    base_url: %s
    max_outbox: 5000    # bound the store (and its mmap): WAL holds the backlog
rules:
  - name: qualified
    source: crm
    table: public.bench_leads
    when: changed_to("status", "qualified")
    event: Lead
    event_time: new.updated_at
    %s
    %s
`, stateYAML, dsn, fake.URL, eventID, shape.userData)), 0o600)
	var selfBefore syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &selfBefore)
	start = time.Now()
	cmd := exec.Command(bin, "run", "--config", cfg)
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), "CAPISYNC_CPUPROFILE="+os.Getenv("CAPISYNC_BENCH_PROFILE"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	peak, peakAnon, peakFile := 0, 0, 0
	deadline := time.Now().Add(10 * time.Minute)
	var curve []string
	lastMark := time.Now()
	for fake.Stats().Accepted < rows && time.Now().Before(deadline) {
		if time.Since(lastMark) >= time.Second {
			lastMark = time.Now()
			var depth string
			if resp, err := http.Get("http://" + listen + "/status"); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if i := strings.Index(string(b), `"outbox_depth"`); i >= 0 {
					depth = strings.Fields(string(b[i+15:]))[0]
				}
			}
			curve = append(curve, fmt.Sprintf("%.0fs: delivered %d, queued %s", time.Since(start).Seconds(), fake.Stats().Accepted, strings.TrimSuffix(depth, ",")))
		}
		if kb := vmHWM(cmd.Process.Pid); kb > peak {
			peak = kb
		}
		if a := procField(cmd.Process.Pid, "RssAnon:"); a > peakAnon {
			peakAnon = a
			if p := os.Getenv("CAPISYNC_BENCH_HEAP"); p != "" {
				saveDebug(listen, "/debug/pprof/heap", p)
			}
		}
		peakFile = max(peakFile, procField(cmd.Process.Pid, "RssFile:"))
		time.Sleep(50 * time.Millisecond)
	}
	cpu := procCPU(cmd.Process.Pid)
	var walsender int
	db.QueryRow("SELECT coalesce(active_pid, 0) FROM pg_replication_slots WHERE slot_name = 'bench_capisync'").Scan(&walsender)
	walCPU := procCPU(walsender)
	// The server processes of capisync's other sessions (the state's, in
	// PostgreSQL), read before capisync stops and they end.
	stateCPU := 0.0
	if rows, err := db.Query("SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend' AND application_name <> 'pg_recvlogical'"); err == nil {
		for rows.Next() {
			var pid int
			if rows.Scan(&pid) == nil {
				stateCPU += procCPU(pid)
			}
		}
		rows.Close()
	}
	var selfAfter syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &selfAfter)
	fakeCPU := time.Duration(selfAfter.Utime.Nano() + selfAfter.Stime.Nano() - selfBefore.Utime.Nano() - selfBefore.Stime.Nano()).Seconds()
	var storeMiB float64
	if dbInfo, err := os.Stat(filepath.Join(dir, "state.db")); err == nil {
		storeMiB = float64(dbInfo.Size()) / (1 << 20)
	}
	capTook := time.Since(start)
	if kb := vmHWM(cmd.Process.Pid); kb > peak {
		peak = kb
	}
	_ = cpu
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if got := fake.Stats().Accepted; got != rows {
		t.Fatalf("fake received %d events, want %d", got, rows)
	}
	recvRate := float64(rows) / recvTook.Seconds()
	capRate := float64(rows) / capTook.Seconds()
	t.Logf("%d-row UPDATE, one transaction, REPLICA IDENTITY FULL, table %s, event ids %s, state %s", rows, table, ids, cmp.Or(os.Getenv("CAPISYNC_BENCH_STATE"), "bolt"))
	t.Logf("progress: %s", strings.Join(curve, "; "))
	t.Logf("pg_recvlogical: %s, %.0f rows/s", recvTook.Round(time.Millisecond), recvRate)
	t.Logf("capisync end to end (WAL -> rules -> outbox -> fake Graph API): %s, %.0f rows/s", capTook.Round(time.Millisecond), capRate)
	t.Logf("ratio capisync / pg_recvlogical: %.2f (goal >= 0.6); capisync peak RSS %.1f MiB (goal < 100): anonymous %.1f MiB, file-backed (the store's mmap) %.1f MiB; store file %.1f MiB; capisync CPU %.1fs",
		capRate/recvRate, float64(peak)/1024, float64(peakAnon)/1024, float64(peakFile)/1024, storeMiB, cpu)
	t.Logf("CPU during capisync's run: capisync %.1fs, PostgreSQL walsender %.1fs, other PostgreSQL sessions (the state's) %.1fs, the fake Graph API (this test process) %.1fs, on %d cores over %.1fs",
		cpu, walCPU, stateCPU, fakeCPU, runtime.NumCPU(), capTook.Seconds())
}

// procCPU is a process's user+system CPU seconds so far.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return float64(utime+stime) / 100
}

func procField(pid int, name string) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == name {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// vmHWM is a process's peak resident set in KiB (0 when unknown).
func vmHWM(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// saveDebug writes what the daemon at addr serves at path (a pprof
// endpoint, which asks for capisync's request header) to file.
func saveDebug(addr, path, file string) {
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Header.Set(ops.RequestHeader, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if f, err := os.Create(file); err == nil {
		io.Copy(f, resp.Body)
		f.Close()
	}
}

// benchEventID is the shape of event ids a benchmark's rule gives
// (CAPISYNC_BENCH_IDS, def when unset) and the rule's event_id line for
// it: given, the expression given; default, none (the default hash).
func benchEventID(t *testing.T, def, given string) (ids, line string) {
	t.Helper()
	switch ids = cmp.Or(os.Getenv("CAPISYNC_BENCH_IDS"), def); ids {
	case "given":
		return ids, "event_id: " + given
	case "default":
		return ids, "# no event_id: the default hash"
	}
	t.Fatalf("CAPISYNC_BENCH_IDS=%s: given or default", ids)
	return "", ""
}
