package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/capisync/capisync/connectors/metacapi/metacapitest"
	"github.com/capisync/capisync/internal/testenv"
)

// sharedState is two or more daemons' world: a PostgreSQL state schema,
// a MariaDB table and a lease TTL of 3 s.
type sharedState struct {
	t      *testing.T
	schema string
	insert func(n int)
	start  func(fakeURL string) leaseDaemon
}

type leaseDaemon struct {
	logs *testenv.Buffer
	proc *os.Process
	addr string
	cfg  string
	wait func()
}

// The destination's batch_size and in_flight in these tests. A sender
// takes its next batch only once the last one's outcome is settled, so a
// failover repeats at most the events of in_flight requests.
const (
	testBatchSize = 20
	testInFlight  = 2
	repeatBound   = testInFlight * testBatchSize
)

func (d leaseDaemon) ready() bool { code, _ := httpGet(d.addr, "/readyz"); return code == 200 }

func (d leaseDaemon) standby() bool {
	code, body := httpGet(d.addr, "/readyz")
	return code == 503 && strings.Contains(body, "standby")
}

const testLeaseTTL = 3 * time.Second

// The sources of the daemons sharing a state.
const (
	mariadbPolling  = "mariadb-polling"
	postgresLogical = "postgres-logical"
	mariadbBinlog   = "mariadb-binlog" // every daemon's config has one server_id, as a copied config does
)

// newSharedState makes the world of daemons sharing a state, their source
// one of the above.
func newSharedState(t *testing.T, source string) *sharedState {
	return newSharedStateOn(t, source, testenv.PostgresDSN(t))
}

// newSharedStateOn is newSharedState with the state on the server at
// stateDSN.
func newSharedStateOn(t *testing.T, source string, stateDSN string) *sharedState {
	pgDSN := testenv.PostgresDSN(t)
	schema := fmt.Sprintf("capisync_failover_%d", time.Now().UnixNano()%1e9)
	t.Cleanup(func() {
		if conn, err := pgx.Connect(context.Background(), stateDSN); err == nil {
			conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
			conn.Close(context.Background())
		}
	})
	n := time.Now().UnixNano() % 1e9
	table := fmt.Sprintf("failover_%d", n)
	var db *sql.DB
	var err error
	var sourceYAML, ruleTable, now string
	if source == postgresLogical {
		db, err = sql.Open("pgx", pgDSN)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, db, "CREATE TABLE "+table+" (id bigint PRIMARY KEY, status text NOT NULL, email text NOT NULL, updated_at timestamptz NOT NULL)")
		mustExec(t, db, "ALTER TABLE "+table+" REPLICA IDENTITY FULL")
		t.Cleanup(func() {
			testenv.DropSlots(t, pgDSN, fmt.Sprintf("failover_slot_%d", n))
			db.Exec(fmt.Sprintf("DROP PUBLICATION IF EXISTS failover_pub_%d", n))
		})
		sourceYAML = fmt.Sprintf(`    type: postgres
    dsn: '%s'
    slot: failover_slot_%d
    publication: failover_pub_%d
    tables: [public.%s]`, pgDSN, n, n, table)
		ruleTable, now = "public."+table, "clock_timestamp()"
	} else {
		myDSN := testenv.MySQLDSN(t)
		db, err = sql.Open("mysql", myDSN)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, db, "CREATE TABLE "+table+" (id BIGINT PRIMARY KEY, status VARCHAR(20) NOT NULL, email VARCHAR(100) NOT NULL, updated_at DATETIME(6) NOT NULL, INDEX (updated_at, id))")
		if source == mariadbBinlog {
			sourceYAML = fmt.Sprintf(`    type: mysql_binlog
    dsn: '%s'
    server_id: %d
    initial: emit
    tables: [%s]`, myDSN, 45000+n%1000, table)
		} else {
			sourceYAML = fmt.Sprintf(`    type: mysql
    dsn: '%s'
    schedule: "@every 1s"
    initial: emit # rows written before the first poll are changes too
    tables:
      %s: {key: [id], cursor: updated_at, lookback: 5s}`, myDSN, table)
		}
		ruleTable, now = table, "NOW(6)"
	}
	t.Cleanup(func() { db.Exec("DROP TABLE " + table); db.Close() })
	next := 0
	insert := func(n int) {
		var vals []string
		for range n {
			next++
			vals = append(vals, fmt.Sprintf("(%d, 'paid', 'buyer%d@example.com', %s)", next, next, now))
		}
		mustExec(t, db, "INSERT INTO "+table+" VALUES "+strings.Join(vals, ","))
	}

	bin := buildBinary(t)
	start := func(fakeURL string) leaseDaemon {
		dir := t.TempDir()
		addr := freeAddr(t)
		cfg := filepath.Join(dir, "config.yaml")
		os.WriteFile(cfg, []byte(fmt.Sprintf(`state: {type: postgres, dsn: '%s', schema: %s, lease_ttl: 3s}
http: {listen: "%s"}
log: {level: info}
shutdown_timeout: 5s
sources:
  shop:
%s
destinations:
  meta:
    type: meta_capi
    pixel_id: "1234567890"
    access_token: EAAfailover
    base_url: %s
    flush_interval: 100ms
    batch_size: %d # several requests per change burst: a leader frozen mid-delivery has more to send
    in_flight: %d
rules:
  - name: paid
    source: shop
    table: %s
    when: changed_to("status", "paid")
    event: Purchase
    event_id: '"order-" + string(new.id)'
    user_data: {em: new.email}
    custom_data: {value: 10, currency: '"USD"'}
`, stateDSN, schema, addr, sourceYAML, fakeURL, testBatchSize, testInFlight, ruleTable)), 0o600)
		logs := &testenv.Buffer{}
		cmd := startDaemon(t, bin, cfg, logs)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		t.Cleanup(func() { cmd.Process.Kill(); <-done })
		return leaseDaemon{logs: logs, proc: cmd.Process, addr: addr, cfg: cfg, wait: func() { <-done }}
	}
	return &sharedState{t: t, schema: schema, insert: insert, start: start}
}

// TestFailover: two daemons share a PostgreSQL state; one leads, the other
// waits as a standby (its /readyz says so). The leader SIGKILLed, the
// standby takes over within the lease TTL and a few seconds; a leader
// stopped with SIGTERM releases the lease and a new daemon leads at once.
// Every change's event arrives.
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("failover test skipped with -short")
	}
	for _, source := range []string{mariadbPolling, postgresLogical, mariadbBinlog} {
		t.Run(source, func(t *testing.T) { failover(t, source) })
	}
}

func failover(t *testing.T, source string) {
	w := newSharedState(t, source)
	fake := metacapitest.New("1234567890", "EAAfailover")
	defer fake.Close()
	ttl := testLeaseTTL
	a := w.start(fake.URL)
	eventually(t, "the first daemon leads", 30*time.Second, a.logs, func() bool { return a.ready() })
	b := w.start(fake.URL)
	eventually(t, "the second daemon waits as a standby", 30*time.Second, b.logs, func() bool { return b.standby() })
	if _, body := httpGet(b.addr, "/status"); !strings.Contains(body, `"role": "standby"`) {
		t.Errorf("the standby's /status does not say so: %.300s", body)
	}
	if code, out, errOut := runCLI(t, "validate", "--connect", "--config", b.cfg); code != 0 || !strings.Contains(out, "state postgres: ok (schema "+w.schema+"; ") || !strings.Contains(out, "leads (epoch 1)") {
		t.Errorf("validate --connect: exit %d\n%s%s", code, out, errOut)
	}
	w.insert(200)
	eventually(t, "the leader delivers the first 200 events", 30*time.Second, a.logs, func() bool { return fake.Stats().Accepted >= 200 })

	a.proc.Signal(syscall.SIGKILL)
	a.wait()
	killed := time.Now()
	w.insert(200)
	eventually(t, "the standby takes over", ttl+10*time.Second, b.logs, func() bool { return b.ready() })
	t.Logf("failover after SIGKILL: %s (lease TTL %s)", time.Since(killed).Round(100*time.Millisecond), ttl)
	eventually(t, "the new leader delivers the next 200 events", 30*time.Second, b.logs, func() bool { return fake.Stats().Accepted >= 400 })

	c := w.start(fake.URL)
	eventually(t, "a third daemon waits as a standby", 30*time.Second, c.logs, func() bool { return c.standby() })
	b.proc.Signal(syscall.SIGTERM)
	b.wait()
	stopped := time.Now()
	eventually(t, "the standby leads once the leader released the lease", ttl, c.logs, func() bool { return c.ready() })
	t.Logf("takeover after SIGTERM: %s", time.Since(stopped).Round(100*time.Millisecond))
	w.insert(100)
	eventually(t, "every event", 30*time.Second, c.logs, func() bool { return fake.Stats().Accepted-fake.Stats().Duplicates >= 500 })
	if !strings.Contains(b.logs.String(), "released the leader lease") {
		t.Errorf("the stopped leader did not release the lease:\n%s", b.logs.String())
	}
	st := fake.Stats()
	t.Logf("events: %d accepted, %d of them repeats of an event_id already delivered", st.Accepted, st.Duplicates)
	if distinct := st.Accepted - st.Duplicates; distinct != 500 {
		t.Errorf("%d distinct events, want 500", distinct)
	}
}

// TestFrozenLeader: the leader SIGSTOPped for three lease TTLs, a standby
// takes over; the old leader, SIGCONTed, sends nothing (its own fake Graph
// API sees no request after it woke), commits nothing, and steps down.
// Every change's event reaches one fake or the other.
func TestFrozenLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("failover test skipped with -short")
	}
	// A binlog source's frozen leader keeps its connection to the server
	// until the new leader, with the same server_id, takes its place.
	for _, source := range []string{mariadbPolling, mariadbBinlog} {
		t.Run(source, func(t *testing.T) { frozenLeader(t, source) })
	}
}

func frozenLeader(t *testing.T, source string) {
	w := newSharedState(t, source)
	fakeA := metacapitest.New("1234567890", "EAAfailover")
	defer fakeA.Close()
	fakeB := metacapitest.New("1234567890", "EAAfailover")
	defer fakeB.Close()
	a := w.start(fakeA.URL)
	eventually(t, "the first daemon leads", 30*time.Second, a.logs, a.ready)
	b := w.start(fakeB.URL)
	eventually(t, "the second daemon waits as a standby", 30*time.Second, b.logs, b.standby)
	// Slow answers: the leader is frozen in the middle of delivering.
	fakeA.SetLatency(300 * time.Millisecond)
	w.insert(100)
	eventually(t, "the leader delivers some of 100 events", 30*time.Second, a.logs, func() bool { return fakeA.Stats().Accepted >= 20 })

	a.proc.Signal(syscall.SIGSTOP)
	stopped := time.Now()
	w.insert(100) // read by nobody until the standby leads
	eventually(t, "the standby takes over from the frozen leader", testLeaseTTL+10*time.Second, b.logs, b.ready)
	t.Logf("takeover from a frozen leader: %s (lease TTL %s)", time.Since(stopped).Round(100*time.Millisecond), testLeaseTTL)
	for time.Since(stopped) < 3*testLeaseTTL {
		time.Sleep(100 * time.Millisecond)
	}
	w.insert(100)
	woke := time.Now()
	a.proc.Signal(syscall.SIGCONT)
	exited := make(chan struct{})
	go func() { a.wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(2 * testLeaseTTL):
		t.Fatalf("the old leader did not step down after waking\n%s", a.logs.String())
	}
	// It learns from its lease's renewal or from a fenced commit, whichever
	// comes first.
	if l := a.logs.String(); !strings.Contains(l, "lost the leader lease") && !strings.Contains(l, "the leader lease is no longer held") {
		t.Errorf("the old leader's log does not say why it stopped:\n%s", a.logs.String())
	}
	for _, at := range fakeA.RequestTimes() {
		if at.After(woke) {
			t.Errorf("the old leader sent a request %s after it woke, its lease long expired", at.Sub(woke).Round(time.Millisecond))
		}
	}
	eventually(t, "every event", 30*time.Second, b.logs, func() bool { return len(deliveries(fakeA, fakeB)) >= 300 })
	ids := deliveries(fakeA, fakeB)
	repeats := 0
	for _, n := range ids {
		repeats += n - 1
	}
	// Repeats come from the requests the leader had sent and not yet
	// settled when it froze. A sender takes its next batch only once the
	// last is settled: in_flight x batch_size = 2 x 20.
	t.Logf("events: %d distinct, %d repeats of an event_id (requests sent and not yet settled when the leader froze; at most in_flight x batch_size = %d)", len(ids), repeats, repeatBound)
	if repeats > repeatBound {
		t.Errorf("%d repeats, more than the requests sent and not settled at the freeze could carry", repeats)
	}
	if len(ids) != 300 {
		t.Errorf("%d distinct events, want 300", len(ids))
	}
}

// TestSlotInUse: a logical source whose slot another reader holds
// (SQLSTATE 55006: a daemon that led before, whose connection the server
// has not yet seen end) waits and asks again; it neither stops nor
// touches the slot, and streams once the other reader lets go.
func TestSlotInUse(t *testing.T) {
	need(t, "pg_recvlogical", "postgresql-client")
	dsn := testenv.PostgresDSN(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := time.Now().UnixNano() % 1e9
	table, slot, pub := fmt.Sprintf("inuse_%d", n), fmt.Sprintf("inuse_slot_%d", n), fmt.Sprintf("inuse_pub_%d", n)
	defer func() {
		testenv.DropSlots(t, dsn, slot)
		db.Exec("DROP PUBLICATION IF EXISTS " + pub)
		db.Exec("DROP TABLE IF EXISTS " + table)
	}()
	for _, q := range []string{
		"CREATE TABLE " + table + " (id bigint PRIMARY KEY, status text NOT NULL, email text NOT NULL)",
		"ALTER TABLE " + table + " REPLICA IDENTITY FULL",
		"CREATE PUBLICATION " + pub + " FOR TABLE " + table,
		"SELECT pg_create_logical_replication_slot('" + slot + "', 'pgoutput')",
	} {
		mustExec(t, db, q)
	}
	other := exec.Command("pg_recvlogical", "-d", dsn, "--slot", slot, "--start", "-f", "/dev/null",
		"-o", "proto_version=1", "-o", "publication_names="+pub)
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	eventually(t, "the other reader holds the slot", 10*time.Second, &testenv.Buffer{}, func() bool {
		var active bool
		db.QueryRow("SELECT active FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&active)
		return active
	})

	fake := metacapitest.New("1234567890", "EAAinuse")
	defer fake.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`state: {path: %s/state.db}
log: {level: info}
sources:
  crm:
    type: postgres
    dsn: '%s'
    slot: %s
    publication: %s
    create: false
    tables: [public.%s]
destinations:
  meta: {type: meta_capi, pixel_id: "1234567890", access_token: EAAinuse, base_url: %s, flush_interval: 100ms}
rules:
  - name: paid
    source: crm
    table: public.%s
    when: changed_to("status", "paid")
    event: Purchase
    event_id: '"order-" + string(new.id)'
    user_data: {em: new.email}
    custom_data: {value: 10, currency: '"USD"'}
`, dir, dsn, slot, pub, table, fake.URL, table)), 0o600)
	logs := &testenv.Buffer{}
	d := startDaemon(t, buildBinary(t), cfg, logs)
	exited := make(chan error, 1)
	go func() { exited <- d.Wait() }()
	defer func() { d.Process.Kill(); <-exited }()
	eventually(t, "capisync says the slot is in use", 20*time.Second, logs, func() bool {
		return strings.Contains(logs.String(), "the replication slot is in use by another reader")
	})
	mustExec(t, db, "INSERT INTO "+table+" SELECT g, 'paid', 'b' || g || '@example.com' FROM generate_series(1, 50) g")
	time.Sleep(3 * time.Second) // it keeps asking, and stays up
	select {
	case err := <-exited:
		t.Fatalf("capisync stopped while the slot was in use: %v\n%s", err, logs.String())
	default:
	}
	other.Process.Kill()
	other.Wait()
	eventually(t, "capisync streams once the slot is free", 30*time.Second, logs, func() bool { return fake.Stats().Accepted >= 50 })
	var exists bool
	db.QueryRow("SELECT true FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&exists)
	if !exists {
		t.Error("the slot is gone")
	}
}

// TestFailoverUnderLoad: two daemons on one state while 20,000 changes
// arrive; the leader SIGKILLed 10 times at random moments, a new daemon
// started each time to keep two. Every event is delivered; repeats come
// only from requests sent and not yet settled at a kill, at most
// in_flight x batch_size = 40 per failover.
func TestFailoverUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("failover test skipped with -short")
	}
	const changes, kills = 20000, 10
	w := newSharedState(t, mariadbPolling)
	fake := metacapitest.New("1234567890", "EAAfailover")
	defer fake.Close()
	alive := []leaseDaemon{w.start(fake.URL), w.start(fake.URL)}
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		for inserted := 0; inserted < changes; inserted += 50 {
			w.insert(50)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var takeovers []time.Duration
	for k := range kills {
		var leader = -1
		eventually(t, fmt.Sprintf("a leader before kill %d", k+1), 2*testLeaseTTL+10*time.Second, alive[0].logs, func() bool {
			for i, d := range alive {
				if d.ready() {
					leader = i
					return true
				}
			}
			return false
		})
		time.Sleep(time.Duration(500+rng.IntN(2000)) * time.Millisecond)
		alive[leader].proc.Signal(syscall.SIGKILL)
		alive[leader].wait()
		killed := time.Now()
		alive = []leaseDaemon{alive[1-leader], w.start(fake.URL)}
		// Either takes over: the standby, or the daemon just started.
		eventually(t, fmt.Sprintf("a takeover after kill %d", k+1), testLeaseTTL+10*time.Second, alive[0].logs, func() bool {
			return alive[0].ready() || alive[1].ready()
		})
		takeovers = append(takeovers, time.Since(killed).Round(100*time.Millisecond))
	}
	<-loadDone
	distinct := func() int { return len(deliveries(fake)) }
	deadline := time.Now().Add(2 * time.Minute)
	for distinct() < changes && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if n := distinct(); n < changes {
		var states []string
		for _, d := range alive {
			_, st := httpGet(d.addr, "/status")
			states = append(states, fmt.Sprintf("ready %v: %.600s", d.ready(), st))
		}
		seen := deliveries(fake)
		var missing []string
		for i := 1; i <= changes; i++ {
			if seen[fmt.Sprintf("order-%d", i)] == 0 {
				missing = append(missing, fmt.Sprint(i))
			}
		}
		t.Fatalf("%d of %d events after the load and %d kills; missing %v; the daemons:\n%s\nlogs of one:\n%s", n, changes, kills, missing, strings.Join(states, "\n"), alive[0].logs.String())
	}
	st := fake.Stats()
	t.Logf("%d kills; takeovers after %v (lease TTL %s); %d events delivered, %d distinct, %d repeats (at most %d)",
		kills, takeovers, testLeaseTTL, st.Accepted, distinct(), st.Accepted-distinct(), kills*repeatBound)
	if n := distinct(); n != changes {
		t.Errorf("%d distinct events, want %d", n, changes)
	}
	if repeats := st.Accepted - distinct(); repeats > kills*repeatBound {
		t.Errorf("%d repeats, more than the requests in flight at %d kills could carry", repeats, kills)
	}
}

// TestStateServerRestart: the PostgreSQL server holding the state
// restarts while changes arrive. The leader keeps or regains its lease, or
// a standby takes over; every event is delivered.
func TestStateServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("failover test skipped with -short")
	}
	priv := testenv.NewPrivatePostgres(t)
	w := newSharedStateOn(t, mariadbPolling, priv.DSN)
	fake := metacapitest.New("1234567890", "EAAfailover")
	defer fake.Close()
	a := w.start(fake.URL)
	eventually(t, "a daemon leads", 30*time.Second, a.logs, a.ready)
	b := w.start(fake.URL)
	eventually(t, "a standby", 30*time.Second, b.logs, b.standby)
	w.insert(200)
	eventually(t, "the first 200 events", 30*time.Second, a.logs, func() bool { return fake.Stats().Accepted >= 200 })
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		for range 20 {
			w.insert(50)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	time.Sleep(500 * time.Millisecond)
	restarted := time.Now()
	if err := priv.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("the state server was down for %s", time.Since(restarted).Round(100*time.Millisecond))
	<-loadDone
	eventually(t, "a leader after the restart", 2*testLeaseTTL+20*time.Second, b.logs, func() bool { return a.ready() || b.ready() })
	distinct := func() int { return len(deliveries(fake)) }
	eventually(t, "every event", time.Minute, b.logs, func() bool { return distinct() >= 1200 })
	who := "the same leader kept or regained its lease"
	if b.ready() {
		who = "the standby took over"
	}
	st := fake.Stats()
	t.Logf("%s; %d events delivered, %d distinct, %d repeats", who, st.Accepted, distinct(), st.Accepted-distinct())
	if n := distinct(); n != 1200 {
		t.Errorf("%d distinct events, want 1200", n)
	}
}

// deliveries counts the deliveries of each event_id the fakes accepted.
func deliveries(fakes ...*metacapitest.Server) map[string]int {
	ids := map[string]int{}
	for _, f := range fakes {
		for _, e := range f.Events() {
			ids[e.ID]++
		}
	}
	return ids
}
