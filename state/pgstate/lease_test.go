package pgstate_test

import (
	"context"
	"errors"
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

// pair opens two stores on one schema, as two daemons would.
func pair(t *testing.T) (a, b *pgstate.Store, expire func()) {
	t.Helper()
	first := open(t, time.Now).(*pgstate.Store)
	dsn := testenv.PostgresDSN(t)
	schema := first.Schema()
	second, err := pgstate.Open(context.Background(), dsn, pgstate.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Close() })
	// expire ends the lease now on the server's clock, as time would.
	expire = func() {
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "UPDATE "+schema+".lease SET expires = now() - interval '1 second'"); err != nil {
			t.Fatal(err)
		}
	}
	return first, second, expire
}

// TestLease: one holder at a time; renewing keeps the epoch; a takeover
// after expiry or release gets the next epoch.
func TestLease(t *testing.T) {
	ctx := context.Background()
	a, b, expire := pair(t)
	ea, ok, err := a.Acquire(ctx, "a", 10*time.Second)
	if err != nil || !ok || ea != 1 {
		t.Fatalf("a acquires: epoch %d, %v, %v", ea, ok, err)
	}
	if _, ok, _ := b.Acquire(ctx, "b", 10*time.Second); ok {
		t.Fatal("b took a lease a holds")
	}
	if ok, err := a.Renew(ctx, "a", ea, 10*time.Second); !ok || err != nil {
		t.Fatalf("a renews: %v, %v", ok, err)
	}
	if e, ok, _ := a.Acquire(ctx, "a", 10*time.Second); !ok || e != ea {
		t.Fatalf("a acquires again while holding: epoch %d, %v; want %d", e, ok, ea)
	}
	expire()
	if ok, _ := a.Renew(ctx, "a", ea, 10*time.Second); ok {
		t.Fatal("a renewed an expired lease")
	}
	eb, ok, err := b.Acquire(ctx, "b", 10*time.Second)
	if err != nil || !ok || eb != ea+1 {
		t.Fatalf("b takes the expired lease: epoch %d, %v, %v; want %d", eb, ok, err, ea+1)
	}
	if l, _ := a.Leader(ctx); l.Holder != "b" || l.Epoch != eb {
		t.Fatalf("leader = %+v", l)
	}
	if err := b.Release(ctx, "b", eb); err != nil {
		t.Fatal(err)
	}
	if e, ok, _ := a.Acquire(ctx, "a", 10*time.Second); !ok || e != eb+1 {
		t.Fatalf("a after b released: epoch %d, %v; want %d", e, ok, eb+1)
	}
}

// TestFencedLeaderCannotCommit: a store whose lease was taken over
// commits, settles and retries nothing; the new leader does.
func TestFencedLeaderCannotCommit(t *testing.T) {
	ctx := context.Background()
	a, b, expire := pair(t)
	if _, ok, err := a.Acquire(ctx, "a", 10*time.Second); !ok || err != nil {
		t.Fatalf("a acquires: %v, %v", ok, err)
	}
	ev := func(i int) []state.Enqueue {
		return []state.Enqueue{{Destination: "meta", Rule: "r", Event: statetest.Event(i)}}
	}
	if _, err := a.Commit(state.Batch{Source: "src", Position: []byte("p1"), Events: ev(1)}); err != nil {
		t.Fatalf("the leader commits: %v", err)
	}
	// b is a standby: its writes are fenced only once it acquired, but
	// it cannot acquire while a holds the lease.
	expire()
	if _, ok, _ := b.Acquire(ctx, "b", 10*time.Second); !ok {
		t.Fatal("b could not take the expired lease")
	}
	_, err := a.Commit(state.Batch{Source: "src", Position: []byte("p2"), Events: ev(2)})
	if !errors.Is(err, pgstate.ErrFenced) {
		t.Fatalf("the old leader's commit: %v, want ErrFenced", err)
	}
	p, _ := a.Pending("meta", 10)
	if err := a.Settle("meta", []state.Outcome{{Seq: p[0].Seq, Status: state.Delivered}}); !errors.Is(err, pgstate.ErrFenced) {
		t.Fatalf("the old leader's settle: %v, want ErrFenced", err)
	}
	if _, err := a.ForgetCheckpoint("src"); !errors.Is(err, pgstate.ErrFenced) {
		t.Fatalf("the old leader's checkpoint reset: %v, want ErrFenced", err)
	}
	if pos, _ := b.Checkpoint("src"); string(pos) != "p1" {
		t.Fatalf("checkpoint %q after the fenced commit, want p1", pos)
	}
	if p, _ := b.Pending("meta", 10); len(p) != 1 {
		t.Fatalf("%d queued after the fenced commit and settle, want 1", len(p))
	}
	if _, err := b.Commit(state.Batch{Source: "src", Position: []byte("p2"), Events: ev(2)}); err != nil {
		t.Fatalf("the new leader commits: %v", err)
	}
}

// TestUnfencedWriteWhileLed: a store that holds no lease (a command run
// beside the daemons) may not write while a daemon leads: the leader's id
// memory would not see what it queued. Once the lease is released it may.
func TestUnfencedWriteWhileLed(t *testing.T) {
	a, b, _ := pair(t)
	ctx := context.Background()
	epoch, ok, err := a.Acquire(ctx, "daemon-a", time.Minute)
	if err != nil || !ok {
		t.Fatalf("Acquire: %v %v", ok, err)
	}
	batch := state.Batch{Source: "src", Position: cdc.Position("1"), Events: []state.Enqueue{{Destination: "meta", Rule: "r",
		Event: capi.Event{EventName: "Lead", EventID: "lead-1", EventTime: time.Now().Unix(), ActionSource: "system_generated"}}}}
	_, err = b.Commit(batch)
	if !errors.Is(err, state.ErrLocked) || !strings.Contains(err.Error(), "daemon-a") {
		t.Fatalf("unfenced commit while daemon-a leads: %v, want state.ErrLocked naming daemon-a", err)
	}
	if _, err := a.Commit(batch); err != nil {
		t.Fatalf("the leader's commit: %v", err)
	}
	if err := a.Release(ctx, "daemon-a", epoch); err != nil {
		t.Fatal(err)
	}
	batch.Events[0].Event.EventID = "lead-2"
	if r, err := b.Commit(batch); err != nil || r.Enqueued != 1 {
		t.Fatalf("unfenced commit with no leader: %+v %v", r, err)
	}
}
