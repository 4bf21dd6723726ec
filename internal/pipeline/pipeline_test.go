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
	"github.com/capisync/capisync/internal/slots"
	"github.com/capisync/capisync/rules"
	"github.com/capisync/capisync/state/bolt"
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

// rig is a pipeline reading a sliceSource into a real store, delivering
// to the fake Graph API, whose token it refuses until told otherwise.
type rig struct {
	fake  *metacapitest.Server
	store *bolt.Store
	src   *sliceSource
	p     *pipeline.Pipeline
	done  chan error
	stop  context.CancelFunc
}

// newRig builds the pipeline: destOpts and when are spliced into the
// config; tune adjusts the pipeline's config before it is built.
func newRig(t *testing.T, destOpts, when string, opt metacapi.Options, tune func(*pipeline.Config)) *rig {
	t.Helper()
	r := &rig{fake: metacapitest.New("1234567890", "EAAgood"), src: &sliceSource{}}
	t.Cleanup(r.fake.Close)
	r.fake.SetToken("EAAother") // refused until restored
	cfg, err := config.Parse("p.yaml", []byte(fmt.Sprintf(`sources:
  src: {type: postgres, dsn: "postgres://u@h/db", tables: [public.t]}
destinations:
  meta: {type: meta_capi, pixel_id: "1234567890", access_token: EAAgood, base_url: %s, %s}
rules:
  - {name: r, source: src, table: public.t, when: '%s', event: Lead, event_id: 'string(new.id)', user_data: {em: new.email}}
`, r.fake.URL, destOpts, when)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.store, err = bolt.Open(filepath.Join(t.TempDir(), "s.db"), bolt.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.store.Close() })
	dest, err := metacapi.New("meta", *cfg.Destinations["meta"], opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dest.Close() })
	pc := pipeline.Config{Store: r.store, Rules: set, ShutdownTimeout: time.Second,
		Sources:      []pipeline.NamedSource{{Name: "src", Source: r.src}},
		Destinations: []pipeline.NamedDestination{{Name: "meta", Destination: dest, MaxOutbox: int64(cfg.Destinations["meta"].MaxOutbox)}}}
	if tune != nil {
		tune(&pc)
	}
	if r.p, err = pipeline.New(pc); err != nil {
		t.Fatal(err)
	}
	return r
}

// insert is a change inserting row id.
func insert(id int64, at time.Time) cdc.Change {
	return cdc.Change{Source: "src", Table: "public.t", Op: cdc.Insert, CommitTime: at,
		Key: cdc.RowOf(map[string]any{"id": id}), New: cdc.RowOf(map[string]any{"id": id, "email": fmt.Sprintf("u%d@example.com", id)})}
}

// run starts the pipeline; finish stops it and fails the test on an error.
func (r *rig) run() {
	ctx, cancel := context.WithCancel(context.Background())
	r.done, r.stop = make(chan error, 1), cancel
	go func() { r.done <- r.p.Run(ctx) }()
}

func (r *rig) finish(t *testing.T) {
	t.Helper()
	r.stop()
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
}

// TestBackpressureDropsNothing: with the destination paused (token
// refused), the outbox fills to max_outbox and the source stops being
// read; once the token works again everything is delivered, once.
func TestBackpressureDropsNothing(t *testing.T) {
	const batches, perBatch, maxOutbox = 200, 10, 100
	r := newRig(t, fmt.Sprintf("flush_interval: 10ms, probe_interval: 50ms, max_outbox: %d", maxOutbox), `op == "insert"`,
		metacapi.Options{BackoffBase: time.Millisecond, BackoffCap: 5 * time.Millisecond}, nil)
	now := time.Now()
	for i := 0; i < batches; i++ {
		b := cdc.Batch{Source: "src", Position: cdc.Position(fmt.Sprint(i))}
		for j := 0; j < perBatch; j++ {
			b.Changes = append(b.Changes, insert(int64(i*perBatch+j), now))
		}
		r.src.batches = append(r.src.batches, b)
	}
	r.run()

	waitFor(t, "the outbox to reach max_outbox", func() bool { d, _ := r.store.Depth("meta"); return d >= maxOutbox })
	time.Sleep(300 * time.Millisecond)
	depth, _ := r.store.Depth("meta")
	if taken := r.src.taken.Load(); taken >= batches {
		t.Fatalf("the source was read to the end (%d batches) while the destination was paused", taken)
	}
	if r.p.Blocked() == "" {
		t.Error("the pipeline does not say it is holding the sources back")
	}
	t.Logf("paused: %d events queued, %d of %d batches read", depth, r.src.taken.Load(), batches)

	r.fake.SetToken("EAAgood")
	waitFor(t, "every event delivered", func() bool { return r.fake.Stats().Accepted >= batches*perBatch })
	r.finish(t)
	if st := r.fake.Stats(); st.Accepted != batches*perBatch || st.Duplicates != 0 {
		t.Errorf("fake = %+v", st)
	}
	if dead, _ := r.store.DeadLetters(""); len(dead) != 0 {
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
	// The token stays refused: the events stay queued to be read back.
	r := newRig(t, "probe_interval: 1h", "new.id % 7 != 3", metacapi.Options{}, func(c *pipeline.Config) {
		c.ShutdownTimeout, c.EvalWorkers, c.Slots = time.Millisecond, 4, slots.New(4)
	})
	var want []string
	id := int64(0)
	for i, n := range []int{1234, 3, 777} {
		b := cdc.Batch{Source: "src", Position: cdc.Position(fmt.Sprint("pos", i))}
		for range n {
			b.Changes = append(b.Changes, insert(id, time.Now()))
			if id%7 != 3 {
				want = append(want, fmt.Sprint(id))
			}
			id++
		}
		r.src.batches = append(r.src.batches, b)
	}
	r.run()
	waitFor(t, "the last checkpoint", func() bool { pos, _ := r.store.Checkpoint("src"); return string(pos) == "pos2" })
	r.finish(t)
	queued, err := r.store.Pending("meta", 10000)
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

// failingSource fails at once with err.
type failingSource struct{ err error }

func (s failingSource) Run(context.Context, cdc.Position, chan<- cdc.Batch) error { return s.err }
func (failingSource) Ack(context.Context, cdc.Position) error                     { return nil }

// TestErrorNamesItsSourceOnce: a source's error is prefixed with the
// source's name once, whether or not the source named itself already
// (which read "source shop: source shop: ..." before).
func TestErrorNamesItsSourceOnce(t *testing.T) {
	for _, srcErr := range []error{
		fmt.Errorf("table leads does not exist"),
		fmt.Errorf("source src: table leads does not exist"),
	} {
		r := newRig(t, "", "true", metacapi.Options{}, func(pc *pipeline.Config) {
			pc.Sources = []pipeline.NamedSource{{Name: "src", Source: failingSource{srcErr}}}
		})
		err := r.p.Run(context.Background())
		if err == nil || err.Error() != "source src: table leads does not exist" {
			t.Errorf("source error %q: pipeline says %v", srcErr, err)
		}
	}
}
