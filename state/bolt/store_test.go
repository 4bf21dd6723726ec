package bolt_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/capisync/capisync/internal/capi"
	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/state"
	"github.com/capisync/capisync/state/bolt"
	"github.com/capisync/capisync/state/statetest"
)

func open(t *testing.T, now func() time.Time) statetest.Store {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "capisync.db"), bolt.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAcceptance(t *testing.T) { statetest.Run(t, open) }

func TestExclusiveOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "capisync.db")
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = bolt.Open(path, bolt.Options{})
	if !errors.Is(err, state.ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, path) || !strings.Contains(msg, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("message should name the file and the holder: %s", msg)
	}
}

func TestReopenKeepsState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "capisync.db")
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(state.Batch{Source: "src", Position: cdc.Position("p9"), Events: []state.Enqueue{{Destination: "meta", Event: statetest.Event(1)}}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pos, _ := s.Checkpoint("src")
	p, _ := s.Pending("meta", 10)
	if string(pos) != "p9" || len(p) != 1 {
		t.Errorf("after reopen: checkpoint %q, %d pending", pos, len(p))
	}
}

// benchStore opens a store with fsync on, for a benchmark.
func benchStore(b *testing.B) *bolt.Store {
	s, err := bolt.Open(filepath.Join(b.TempDir(), "capisync.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	b.ReportAllocs()
	return s
}

// benchBatch is the i-th commit of n events, numbered on from *seq.
func benchBatch(i, n int, seq *int, rule string, event func(n int) capi.Event) state.Batch {
	batch := state.Batch{Source: "src", Position: cdc.Position(fmt.Sprint(i))}
	for j := 0; j < n; j++ {
		*seq++
		batch.Events = append(batch.Events, state.Enqueue{Destination: "meta", Rule: rule, Event: event(*seq)})
	}
	return batch
}

// BenchmarkCommit measures Commit with fsync on, 100 events per commit.
func BenchmarkCommit(b *testing.B) {
	s := benchStore(b)
	n := 0
	for i := 0; i < b.N; i++ {
		if _, err := s.Commit(benchBatch(i, 100, &n, "r", statetest.Event)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// queuedOne opens a store on a clock the test moves (*now) and queues one
// event, ev, for destination meta.
func queuedOne(t *testing.T) (s *bolt.Store, now *time.Time, ev []state.Enqueue) {
	t.Helper()
	clock := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	s, err := bolt.Open(filepath.Join(t.TempDir(), "capisync.db"), bolt.Options{Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ev = []state.Enqueue{{Destination: "meta", Event: statetest.Event(1)}}
	if _, err := s.Commit(state.Batch{Source: "src", Events: ev}); err != nil {
		t.Fatal(err)
	}
	return s, &clock, ev
}

// TestDeliveredIDsExpire: a delivered event id blocks re-queuing for
// Meta's 48 h window, then is pruned and may be queued again.
func TestDeliveredIDsExpire(t *testing.T) {
	s, now, ev := queuedOne(t)
	p, _ := s.Pending("meta", 1)
	if err := s.Settle("meta", []state.Outcome{{Seq: p[0].Seq, Status: state.Delivered}}); err != nil {
		t.Fatal(err)
	}
	*now = now.Add(47 * time.Hour)
	if r, _ := s.Commit(state.Batch{Source: "src", Events: ev}); r.Enqueued != 0 {
		t.Fatal("re-queued inside the 48 h window")
	}
	*now = now.Add(2 * time.Hour)
	if err := s.Settle("meta", nil); err != nil { // settling prunes
		t.Fatal(err)
	}
	if r, _ := s.Commit(state.Batch{Source: "src", Events: ev}); r.Enqueued != 1 {
		t.Fatal("not queued again after the window")
	}
}

// TestQueuedIDsOutliveTTL: an event still queued after 48 h (a destination
// paused that long) is still remembered: pruning never forgets it, and the
// same change read again is not queued twice.
func TestQueuedIDsOutliveTTL(t *testing.T) {
	s, now, ev := queuedOne(t)
	*now = now.Add(72 * time.Hour)
	if err := s.Settle("meta", nil); err != nil { // settling prunes
		t.Fatal(err)
	}
	if r, _ := s.Commit(state.Batch{Source: "src", Events: ev}); r.Enqueued != 0 || r.Duplicates != 1 {
		t.Fatalf("queued again while still queued: %+v", r)
	}
	if p, _ := s.Pending("meta", 10); len(p) != 1 {
		t.Fatalf("%d pending, want 1", len(p))
	}
}

// BenchmarkOutboxCycle measures the outbox's steady state with fsync on:
// per iteration, 1000 events the size of a lead with seven hashed keys are
// committed, read back and settled as delivered.
func BenchmarkOutboxCycle(b *testing.B) {
	s := benchStore(b)
	lead := func(n int) capi.Event {
		ev := statetest.Event(n)
		for _, k := range []string{"ph", "fn", "ln", "ct", "zp", "external_id"} {
			ev.UserData[k] = capi.Hash(k + fmt.Sprint(n))
		}
		ev.CustomData = map[string]any{"value": "123.99", "currency": "USD", "event_source": "crm"}
		return ev
	}
	n := 0
	for i := 0; i < b.N; i++ {
		batch := benchBatch(i, 1000, &n, "qualified", lead)
		if _, err := s.Commit(batch); err != nil {
			b.Fatal(err)
		}
		p, err := s.Pending("meta", 1000)
		if err != nil || len(p) != 1000 {
			b.Fatalf("pending: %d, %v", len(p), err)
		}
		out := make([]state.Outcome, len(p))
		for j, q := range p {
			out[j] = state.Outcome{Seq: q.Seq, Status: state.Delivered, Attempts: 1}
		}
		if err := s.Settle("meta", out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkCommitPage measures Commit as a poll of the polling benchmark
// makes it: 5,000 encoded events and their shadows, fsync on, each page
// delivered (outside the timer) before the next, as the daemon does. The
// shapes users have: event ids given by the rule ("order-N-paid", in
// order) or the default (a SHA-256, in no order), into an empty store or
// one that remembers 5,000,000 ids (two busy days; CAPISYNC_BENCH_HISTORY
// sets another number).
func BenchmarkCommitPage(b *testing.B) {
	history := 5000000
	if n, err := strconv.Atoi(os.Getenv("CAPISYNC_BENCH_HISTORY")); err == nil {
		history = n
	}
	for _, ids := range []string{"given", "default"} {
		for _, held := range []int{0, history} {
			b.Run(fmt.Sprintf("ids=%s/history=%d", ids, held), func(b *testing.B) { benchCommitPage(b, ids == "default", held) })
		}
	}
}

func benchCommitPage(b *testing.B, hashed bool, history int) {
	s := benchStore(b)
	if history > 0 {
		if err := bolt.PrefillIDs(s, "meta", "Purchase", history, time.Now().Add(-time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	var scratch bytes.Buffer
	page := func(round int) state.Batch {
		batch := state.Batch{Source: "src", Position: cdc.Position(fmt.Sprint(round))}
		for j := range 5000 {
			id := int64(j*100 + round)
			eventID := fmt.Sprintf("order-%d-paid", id)
			if hashed {
				sum := sha256.Sum256([]byte(eventID))
				eventID = hex.EncodeToString(sum[:])
			}
			e := state.Enqueue{Destination: "meta", Rule: "paid", Event: capi.Event{EventName: "Purchase", EventTime: 1795168800,
				EventID: eventID, ActionSource: "system_generated",
				UserData:   map[string]any{"em": capi.Hash(fmt.Sprint(id))},
				CustomData: map[string]any{"value": 42.5, "currency": "EUR"}}}
			if err := e.Encode(&scratch); err != nil {
				b.Fatal(err)
			}
			batch.Events = append(batch.Events, e)
			batch.Shadows = append(batch.Shadows, cdc.Shadow{Table: "orders", Key: cdc.AppendKeyOf(nil, []any{id}, []int{0}), Value: make([]byte, 45)})
		}
		return batch
	}
	deliver := func(r state.CommitResult) {
		out := make([]state.Outcome, len(r.Queued))
		for i, q := range r.Queued {
			out[i] = state.Outcome{Seq: q.Seq, Status: state.Delivered}
		}
		if err := s.Settle("meta", out); err != nil {
			b.Fatal(err)
		}
	}
	round := 0
	for ; round < 6; round++ {
		r, err := s.Commit(page(round))
		if err != nil {
			b.Fatal(err)
		}
		deliver(r)
	}
	pages := make([]state.Batch, 0, 8)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		if len(pages) == 0 {
			for range 8 {
				pages = append(pages, page(round))
				round++
			}
		}
		p := pages[0]
		pages = pages[1:]
		b.StartTimer()
		r, err := s.Commit(p)
		if err != nil {
			b.Fatal(err)
		}
		if r.Enqueued != 5000 {
			b.Fatalf("queued %d of 5000", r.Enqueued)
		}
		b.StopTimer()
		deliver(r)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*5000), "ns/event")
}

// TestRewriteShadowsOncePerFormat: a pass that ended is remembered, so a
// source that starts again reads no shadow to learn there is nothing to
// rewrite; another format reads them again.
func TestRewriteShadowsOncePerFormat(t *testing.T) {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "capisync.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var shadows []cdc.Shadow
	for i := range 12000 { // more than one chunk
		shadows = append(shadows, cdc.Shadow{Table: "t", Key: cdc.EncodeKey([]any{int64(i)}), Value: []byte("old")})
	}
	if _, err := s.Commit(state.Batch{Source: "src", Shadows: shadows}); err != nil {
		t.Fatal(err)
	}
	seen := 0
	upgrade := func(v []byte) ([]byte, bool) { seen++; return []byte("new"), string(v) == "old" }
	if n, err := s.RewriteShadows("src", "t", "v2", upgrade); err != nil || n != 12000 || seen != 12000 {
		t.Fatalf("first pass: %d rewritten, %d read, %v", n, seen, err)
	}
	seen = 0
	if n, err := s.RewriteShadows("src", "t", "v2", upgrade); err != nil || n != 0 || seen != 0 {
		t.Errorf("same format again: %d rewritten, %d read, %v; want none read", n, seen, err)
	}
	if n, err := s.RewriteShadows("src", "t", "v3", upgrade); err != nil || n != 0 || seen != 12000 {
		t.Errorf("another format: %d rewritten, %d read, %v", n, seen, err)
	}
	got, _ := s.Shadows("src", "t", [][]byte{cdc.EncodeKey([]any{int64(11999)})})
	if string(got[0]) != "new" {
		t.Errorf("shadow = %q", got[0])
	}
}

// BenchmarkOpenWithHistory measures opening a store that remembers
// 5,000,000 ids (CAPISYNC_BENCH_HISTORY sets another number): the id
// memory is built from the file's id log.
func BenchmarkOpenWithHistory(b *testing.B) {
	history := 5000000
	if n, err := strconv.Atoi(os.Getenv("CAPISYNC_BENCH_HISTORY")); err == nil {
		history = n
	}
	path := filepath.Join(b.TempDir(), "capisync.db")
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := bolt.PrefillIDs(s, "meta", "Purchase", history, time.Now().Add(-time.Hour)); err != nil {
		b.Fatal(err)
	}
	s.Close()
	b.ResetTimer()
	for b.Loop() {
		s, err := bolt.Open(path, bolt.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*history), "ns/id")
}
