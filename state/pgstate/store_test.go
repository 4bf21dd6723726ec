package pgstate_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/capisync/capisync/internal/capi"
	"github.com/capisync/capisync/internal/cdc"
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

var (
	_ state.Store  = (*pgstate.Store)(nil)
	_ state.Leaser = (*pgstate.Store)(nil)
)

// BenchmarkCommitPage commits pages of 5,000 events with default
// (hashed) ids, each delivered (outside the timer) before the next, as
// the bbolt benchmark of the same name does; the server is the local one.
func BenchmarkCommitPage(b *testing.B) {
	dsn := os.Getenv("CAPISYNC_TEST_PG_DSN")
	if dsn == "" {
		b.Skip("CAPISYNC_TEST_PG_DSN is not set")
	}
	schema := fmt.Sprintf("capisync_bench_%d", time.Now().UnixNano()%1e12)
	s, err := pgstate.Open(context.Background(), dsn, pgstate.Options{Schema: schema})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		s.Close()
		if conn, err := pgx.Connect(context.Background(), dsn); err == nil {
			conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			conn.Close(context.Background())
		}
	}()
	var scratch bytes.Buffer
	round := 0
	page := func() state.Batch {
		round++
		batch := state.Batch{Source: "src", Position: cdc.Position(fmt.Sprint(round))}
		for j := range 5000 {
			sum := sha256.Sum256([]byte(fmt.Sprint(round, "/", j)))
			e := state.Enqueue{Destination: "meta", Rule: "paid", Event: capi.Event{EventName: "Purchase", EventTime: 1795168800,
				EventID: hex.EncodeToString(sum[:]), ActionSource: "system_generated",
				UserData:   map[string]any{"em": capi.Hash(fmt.Sprint(j))},
				CustomData: map[string]any{"value": 42.5, "currency": "EUR"}}}
			if err := e.Encode(&scratch); err != nil {
				b.Fatal(err)
			}
			batch.Events = append(batch.Events, e)
		}
		return batch
	}
	for b.Loop() {
		b.StopTimer()
		p := page()
		b.StartTimer()
		r, err := s.Commit(p)
		if err != nil || r.Enqueued != 5000 {
			b.Fatalf("commit: %+v, %v", r.Enqueued, err)
		}
		b.StopTimer()
		out := make([]state.Outcome, len(r.Queued))
		for i, q := range r.Queued {
			out[i] = state.Outcome{Seq: q.Seq, Status: state.Delivered}
		}
		if err := s.Settle("meta", out); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*5000), "ns/event")
}
