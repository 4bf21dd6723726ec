package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/capisync/capisync/internal/testenv"
)

// TestServerRestart restarts the PostgreSQL server while the source
// streams: it must resume with no loss and no duplicate. The server is a
// private one the test starts for itself, so that no test restarts the
// shared server.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPrivatePostgres(t)
	e := newEnvOn(t, pg.DSN, "", "")
	e.start()
	e.streaming()
	e.exec("INSERT INTO orders_S SELECT g, 'paid', 'a@example.com', 1 FROM generate_series(1, 100) g")
	e.waitFor("events before the restart", func() bool { return e.fake.Stats().Accepted >= 100 })

	if err := pg.Restart(); err != nil {
		t.Fatal(err)
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
