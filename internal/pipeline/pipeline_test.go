package pipeline_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/capisync/capisync/connectors/metacapi"
	"github.com/capisync/capisync/connectors/metacapi/metacapitest"
	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/internal/pipeline"
	"github.com/capisync/capisync/rules"
	"github.com/capisync/capisync/state"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sliceSource hands over prepared batches, as fast as the pipeline takes them.
type sliceSource struct {
	batches []cdc.Batch
	taken   atomic.Int64
	acked   atomic.Int64
}

func (s *sliceSource) Run(ctx context.Context, _ cdc.Position, out chan<- cdc.Batch) error {
	for _, b := range s.batches {
		select {
		case out <- b:
			s.taken.Add(1)
		case <-ctx.Done():
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

func (s *sliceSource) Ack(context.Context, cdc.Position) error { s.acked.Add(1); return nil }

// TestBackpressureDropsNothing: with the destination paused (token
// refused), the outbox fills to max_outbox and the source stops being
// read; once the token works again everything is delivered, once.
func TestBackpressureDropsNothing(t *testing.T) {
	const batches, perBatch, maxOutbox = 200, 10, 100
	fake := metacapitest.New("1234567890", "EAAgood")
	defer fake.Close()
	fake.SetToken("EAAother") // refused until restored
	cfg, err := config.Parse("p.yaml", []byte(fmt.Sprintf(`sources:
  src: {type: postgres, dsn: "postgres://u@h/db", tables: [public.t]}
destinations:
  meta: {type: meta_capi, pixel_id: "1234567890", access_token: EAAgood, base_url: %s, flush_interval: 10ms, probe_interval: 50ms, max_outbox: %d}
rules:
  - {name: r, source: src, table: public.t, when: 'op == "insert"', event: Lead, event_id: 'string(new.id)', user_data: {em: new.email}}
`, fake.URL, maxOutbox)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	src := &sliceSource{}
	now := time.Now()
	for i := 0; i < batches; i++ {
		b := cdc.Batch{Source: "src", Position: cdc.Position(fmt.Sprint(i))}
		for j := 0; j < perBatch; j++ {
			id := int64(i*perBatch + j)
			b.Changes = append(b.Changes, cdc.Change{Source: "src", Table: "public.t", Op: cdc.Insert, CommitTime: now,
				Key: cdc.Row{"id": id}, New: cdc.Row{"id": id, "email": fmt.Sprintf("u%d@example.com", id)}})
		}
		src.batches = append(src.batches, b)
	}
	store, err := state.Open(filepath.Join(t.TempDir(), "s.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	dest, err := metacapi.New("meta", *cfg.Destinations["meta"], metacapi.Options{BackoffBase: time.Millisecond, BackoffCap: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer dest.Close()
	p, err := pipeline.New(pipeline.Config{Store: store, Rules: set, ShutdownTimeout: time.Second,
		Sources:      []pipeline.NamedSource{{Name: "src", Source: src}},
		Destinations: []pipeline.NamedDestination{{Name: "meta", Destination: dest, MaxOutbox: maxOutbox}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	waitFor(t, "the outbox to reach max_outbox", func() bool { d, _ := store.Depth("meta"); return d >= maxOutbox })
	time.Sleep(300 * time.Millisecond)
	depth, _ := store.Depth("meta")
	if taken := src.taken.Load(); taken >= batches {
		t.Fatalf("the source was read to the end (%d batches) while the destination was paused", taken)
	}
	if p.Blocked() == "" {
		t.Error("the pipeline does not say it is holding the sources back")
	}
	t.Logf("paused: %d events queued, %d of %d batches read", depth, src.taken.Load(), batches)

	fake.SetToken("EAAgood")
	waitFor(t, "every event delivered", func() bool { return fake.Stats().Accepted >= batches*perBatch })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := fake.Stats(); st.Accepted != batches*perBatch || st.Duplicates != 0 {
		t.Errorf("fake = %+v", st)
	}
	if dead, _ := store.DeadLetters(""); len(dead) != 0 {
		t.Errorf("%d dead letters", len(dead))
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEvaluationKeepsChangeOrder: batches evaluated in parts on several
// cores are queued in the order of their changes, and the checkpoint is the
// last batch's position.
func TestEvaluationKeepsChangeOrder(t *testing.T) {
	fake := metacapitest.New("1234567890", "EAAgood")
	defer fake.Close()
	fake.SetToken("EAAother") // refused: the events stay queued to be read back
	cfg, err := config.Parse("p.yaml", []byte(fmt.Sprintf(`sources:
  src: {type: postgres, dsn: "postgres://u@h/db", tables: [public.t]}
destinations:
  meta: {type: meta_capi, pixel_id: "1234567890", access_token: EAAgood, base_url: %s, probe_interval: 1h}
rules:
  - {name: r, source: src, table: public.t, when: 'new.id %% 7 != 3', event: Lead, event_id: 'string(new.id)', user_data: {em: new.email}}
`, fake.URL)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	src := &sliceSource{}
	var want []string
	id := int64(0)
	for i, n := range []int{1234, 3, 777} {
		b := cdc.Batch{Source: "src", Position: cdc.Position(fmt.Sprint("pos", i))}
		for range n {
			b.Changes = append(b.Changes, cdc.Change{Source: "src", Table: "public.t", Op: cdc.Insert, CommitTime: time.Now(),
				Key: cdc.Row{"id": id}, New: cdc.Row{"id": id, "email": fmt.Sprintf("u%d@example.com", id)}})
			if id%7 != 3 {
				want = append(want, fmt.Sprint(id))
			}
			id++
		}
		src.batches = append(src.batches, b)
	}
	store, err := state.Open(filepath.Join(t.TempDir(), "s.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	dest, err := metacapi.New("meta", *cfg.Destinations["meta"], metacapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dest.Close()
	p, err := pipeline.New(pipeline.Config{Store: store, Rules: set, ShutdownTimeout: time.Millisecond, EvalWorkers: 4,
		Sources:      []pipeline.NamedSource{{Name: "src", Source: src}},
		Destinations: []pipeline.NamedDestination{{Name: "meta", Destination: dest}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	waitFor(t, "the last checkpoint", func() bool { pos, _ := store.Checkpoint("src"); return string(pos) == "pos2" })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	queued, err := store.Pending("meta", 10000)
	if err != nil {
		t.Fatal(err)
	}
	if len(queued) != len(want) {
		t.Fatalf("%d queued, want %d", len(queued), len(want))
	}
	for i, q := range queued {
		if q.EventID != want[i] {
			t.Fatalf("queued[%d] is event %s, want %s", i, q.EventID, want[i])
		}
	}
}
