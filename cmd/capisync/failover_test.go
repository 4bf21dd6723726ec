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

// TestFailover: two daemons share a PostgreSQL state; one leads, the other
// waits as a standby (its /readyz says so). The leader SIGKILLed, the
// standby takes over within the lease TTL and a few seconds; a leader
// stopped with SIGTERM releases the lease and a new daemon leads at once.
// Every change's event arrives.
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("failover test skipped with -short")
	}
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
	defer db.Close()
	table := fmt.Sprintf("failover_%d", time.Now().UnixNano()%1e9)
	mustExec(t, db, "CREATE TABLE "+table+" (id BIGINT PRIMARY KEY, status VARCHAR(20) NOT NULL, email VARCHAR(100) NOT NULL, updated_at DATETIME(6) NOT NULL, INDEX (updated_at, id))")
	defer db.Exec("DROP TABLE " + table)
	next := 0
	insert := func(n int) {
		var vals []string
		for range n {
			next++
			vals = append(vals, fmt.Sprintf("(%d, 'paid', 'buyer%d@example.com', NOW(6))", next, next))
		}
		mustExec(t, db, "INSERT INTO "+table+" VALUES "+strings.Join(vals, ","))
	}

	fake := metacapitest.New("1234567890", "EAAfailover")
	defer fake.Close()
	bin := buildBinary(t)
	const ttl = 3 * time.Second
	type daemon struct {
		cmd  *testenv.Buffer
		proc interface{ Signal(os.Signal) error }
		addr string
		cfg  string
		wait func()
	}
	start := func(name string) daemon {
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
rules:
  - name: paid
    source: shop
    table: %s
    when: changed_to("status", "paid")
    event: Purchase
    event_id: '"order-" + string(new.id)'
    user_data: {em: new.email}
    custom_data: {value: 10, currency: '"USD"'}
`, pgDSN, schema, addr, myDSN, table, fake.URL, table)), 0o600)
		logs := &testenv.Buffer{}
		cmd := startDaemon(t, bin, cfg, logs)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		t.Cleanup(func() { cmd.Process.Kill(); <-done })
		return daemon{cmd: logs, proc: cmd.Process, addr: addr, cfg: cfg, wait: func() { <-done }}
	}
	ready := func(d daemon) bool { code, _ := httpGet(d.addr, "/readyz"); return code == 200 }
	standby := func(d daemon) bool {
		code, body := httpGet(d.addr, "/readyz")
		return code == 503 && strings.Contains(body, "standby")
	}

	a := start("a")
	eventually(t, "the first daemon leads", 30*time.Second, a.cmd, func() bool { return ready(a) })
	b := start("b")
	eventually(t, "the second daemon waits as a standby", 30*time.Second, b.cmd, func() bool { return standby(b) })
	if _, body := httpGet(b.addr, "/status"); !strings.Contains(body, `"role": "standby"`) {
		t.Errorf("the standby's /status does not say so: %.300s", body)
	}
	if code, out, errOut := runCLI(t, "validate", "--connect", "--config", b.cfg); code != 0 || !strings.Contains(out, "state postgres: ok (schema "+schema+"; ") || !strings.Contains(out, "leads (epoch 1)") {
		t.Errorf("validate --connect: exit %d\n%s%s", code, out, errOut)
	}
	insert(200)
	eventually(t, "the leader delivers the first 200 events", 30*time.Second, a.cmd, func() bool { return fake.Stats().Accepted >= 200 })

	a.proc.Signal(syscall.SIGKILL)
	a.wait()
	killed := time.Now()
	insert(200)
	eventually(t, "the standby takes over", ttl+10*time.Second, b.cmd, func() bool { return ready(b) })
	t.Logf("failover after SIGKILL: %s (lease TTL %s)", time.Since(killed).Round(100*time.Millisecond), ttl)
	eventually(t, "the new leader delivers the next 200 events", 30*time.Second, b.cmd, func() bool { return fake.Stats().Accepted >= 400 })

	c := start("c")
	eventually(t, "a third daemon waits as a standby", 30*time.Second, c.cmd, func() bool { return standby(c) })
	b.proc.Signal(syscall.SIGTERM)
	b.wait()
	stopped := time.Now()
	eventually(t, "the standby leads once the leader released the lease", ttl, c.cmd, func() bool { return ready(c) })
	t.Logf("takeover after SIGTERM: %s", time.Since(stopped).Round(100*time.Millisecond))
	insert(100)
	eventually(t, "every event", 30*time.Second, c.cmd, func() bool { return fake.Stats().Accepted-fake.Stats().Duplicates >= 500 })
	if !strings.Contains(b.cmd.String(), "released the leader lease") {
		t.Errorf("the stopped leader did not release the lease:\n%s", b.cmd.String())
	}
	st := fake.Stats()
	t.Logf("events: %d accepted, %d of them repeats of an event_id already delivered", st.Accepted, st.Duplicates)
	if distinct := st.Accepted - st.Duplicates; distinct != 500 {
		t.Errorf("%d distinct events, want 500", distinct)
	}
}
