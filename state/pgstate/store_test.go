package pgstate_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/capisync/capisync/internal/testenv"
	"github.com/capisync/capisync/state"
	"github.com/capisync/capisync/state/pgstate"
	"github.com/capisync/capisync/state/statetest"
)

// open opens a store in a schema of its own, dropped when the test ends.
func open(t *testing.T, now func() time.Time) statetest.Store {
	t.Helper()
	dsn := testenv.PostgresDSN(t)
	schema := fmt.Sprintf("capisync_state_%d", time.Now().UnixNano()%1e12)
	s, err := pgstate.Open(context.Background(), dsn, pgstate.Options{Schema: schema, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return s
}

func TestAcceptance(t *testing.T) { statetest.Run(t, open) }

// TestBadDSN: a DSN that cannot be parsed is refused without echoing it
// (it may hold a password).
func TestBadDSN(t *testing.T) {
	_, err := pgstate.Open(context.Background(), "postgres://u:s3cret@[::1", pgstate.Options{})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v", err)
	}
}

var _ state.Store = (*pgstate.Store)(nil)
