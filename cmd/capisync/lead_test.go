package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/internal/testenv"
	"github.com/capisync/capisync/state/pgstate"
)

// TestLeadReportsLostLease: a leader whose lease another daemon took says
// so when it exits, even when something else ended its run first (a
// daemon woken from a pause finds its state connection dropped too), and
// does not release the lease that is no longer its own.
func TestLeadReportsLostLease(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	schema := fmt.Sprintf("capisync_lead_%d", time.Now().UnixNano()%1e9)
	ctx := context.Background()
	store, err := pgstate.Open(ctx, dsn, pgstate.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		store.Close()
		conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		conn.Close(context.Background())
	})
	cfg := &config.Config{}
	cfg.State.LeaseTTL.Duration = time.Second
	var logs testenv.Buffer
	d := &daemon{cfg: cfg, log: slog.New(slog.NewTextHandler(&logs, nil)), abort: make(chan error, 1)}
	d.leader.Store("")
	dropped := errors.New("state connection dropped")
	err = d.lead(ctx, store, func(context.Context) error {
		// Another daemon takes the lease over; this run then ends on
		// another error before it reads the abort.
		if _, err := conn.Exec(ctx, "UPDATE "+schema+".lease SET holder = 'another', epoch = epoch + 1, expires = now() + interval '1 minute'"); err != nil {
			return err
		}
		for d.role.Load() != "stepping down" {
			time.Sleep(10 * time.Millisecond)
		}
		return dropped
	})
	if err == nil || !strings.Contains(err.Error(), "lost the leader lease") || !errors.Is(err, dropped) {
		t.Errorf("lead: %v; want the lost lease first, then the run's error", err)
	}
	if l, err := store.Leader(ctx); err != nil || l.Holder != "another" {
		t.Errorf("the lease after: %+v, %v; want it still another's", l, err)
	}
	if strings.Contains(logs.String(), "released the leader lease") {
		t.Errorf("released a lease it no longer held:\n%s", logs.String())
	}
}
