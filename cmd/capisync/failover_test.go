package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
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

func (d leaseDaemon) ready() bool { code, _ := httpGet(d.addr, "/readyz"); return code == 200 }

func (d leaseDaemon) standby() bool {
	code, body := httpGet(d.addr, "/readyz")
	return code == 503 && strings.Contains(body, "standby")
}

const testLeaseTTL = 3 * time.Second

func newSharedState(t *testing.T) *sharedState {
	pgDSN := testenv.PostgresDSN(t)
	schema := fmt.Sprintf("capisync_failover_%d", time.Now().UnixNano()%1e9)
	t.Cleanup(func() {
		if conn, err := pgx.Connect(context.Background(), pgDSN); err == nil {
			conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
			conn.Close(context.Background())
		}
	})
	myDSN := testenv.MySQLDSN(t)
	db, err := sql.Open("mysql", myDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	table := fmt.Sprintf("failover_%d", time.Now().UnixNano()%1e9)
	mustExec(t, db, "CREATE TABLE "+table+" (id BIGINT PRIMARY KEY, status VARCHAR(20) NOT NULL, email VARCHAR(100) NOT NULL, updated_at DATETIME(6) NOT NULL, INDEX (updated_at, id))")
	t.Cleanup(func() { db.Exec("DROP TABLE " + table) })
	next := 0
	insert := func(n int) {
		var vals []string
		for range n {
			next++
			vals = append(vals, fmt.Sprintf("(%d, 'paid', 'buyer%d@example.com', NOW(6))", next, next))
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
    type: mysql
    dsn: '%s'
    schedule: "@every 1s"
    tables:
      %s: {key: [id], cursor: updated_at, lookback: 5s}
destinations:
  meta:
    type: meta_capi
    pixel_id: "1234567890"
    access_token: EAAfailover
    base_url: %s
    flush_interval: 100ms
    batch_size: 20 # several requests per change burst: a leader frozen mid-delivery has more to send
    in_flight: 2
rules:
  - name: paid
    source: shop
    table: %s
    when: changed_to("status", "paid")
    event: Purchase
    event_id: '"order-" + string(new.id)'
    user_data: {em: new.email}
    custom_data: {value: 10, currency: '"USD"'}
`, pgDSN, schema, addr, myDSN, table, fakeURL, table)), 0o600)
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
	w := newSharedState(t)
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
	w := newSharedState(t)
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
	eventually(t, "every event", 30*time.Second, b.logs, func() bool {
		seen := map[string]bool{}
		for _, f := range []*metacapitest.Server{fakeA, fakeB} {
			for _, e := range f.Events() {
				seen[e.ID] = true
			}
		}
		return len(seen) >= 300
	})
	ids := map[string]int{}
	for _, f := range []*metacapitest.Server{fakeA, fakeB} {
		for _, e := range f.Events() {
			ids[e.ID]++
		}
	}
	repeats := 0
	for _, n := range ids {
		repeats += n - 1
	}
	// Repeats come from the requests the leader had sent and not yet
	// settled when it froze: in_flight requests, and one answered whose
	// settle had not committed (a sender starts its next request while
	// the last is settled): (2 + 1) x 20.
	t.Logf("events: %d distinct, %d repeats of an event_id (requests sent and not yet settled when the leader froze; at most (in_flight + 1) x batch_size = 60)", len(ids), repeats)
	if repeats > 60 {
		t.Errorf("%d repeats, more than the requests sent and not settled at the freeze could carry", repeats)
	}
	if len(ids) != 300 {
		t.Errorf("%d distinct events, want 300", len(ids))
	}
}
