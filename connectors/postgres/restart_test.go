package postgres_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestServerRestart restarts the PostgreSQL server while the source
// streams: it must resume with no loss and no duplicate. It needs to
// restart the server, so it runs only when CAPISYNC_TEST_PG_RESTART=1
// (make test runs it on its own, after the other tests).
func TestServerRestart(t *testing.T) {
	if os.Getenv("CAPISYNC_TEST_PG_RESTART") != "1" {
		t.Skip("set CAPISYNC_TEST_PG_RESTART=1 to restart the PostgreSQL server (make test does)")
	}
	out, err := exec.Command("pg_lsclusters", "-h").Output()
	if err != nil {
		t.Fatalf("pg_lsclusters: %v", err)
	}
	var version, cluster string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[2] == "5432" {
			version, cluster = f[0], f[1]
		}
	}
	if version == "" {
		t.Fatal("no PostgreSQL cluster on port 5432")
	}
	e := newEnv(t, "", "")
	e.start()
	e.streaming()
	e.exec("INSERT INTO orders_S SELECT g, 'paid', 'a@example.com', 1 FROM generate_series(1, 100) g")
	e.waitFor("events before the restart", func() bool { return e.fake.Stats().Accepted >= 100 })

	restart := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "restart")
	if out, err := restart.CombinedOutput(); err != nil {
		t.Fatalf("restart: %v\n%s", err, out)
	}
	// The test's own connection died with the server.
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := pgx.Connect(context.Background(), e.dsn)
		if err == nil {
			e.db = conn
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not come back: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.exec("INSERT INTO orders_S SELECT g, 'paid', 'a@example.com', 1 FROM generate_series(101, 200) g")
	e.waitFor("events after the restart", func() bool { return e.fake.Stats().Accepted >= 200 })
	time.Sleep(500 * time.Millisecond)
	if st := e.fake.Stats(); st.Accepted != 200 || st.Duplicates != 0 {
		t.Errorf("after restart: fake %+v", st)
	}
	if e.src.Stats().Reconnects == 0 {
		t.Error("no reconnect counted")
	}
}
