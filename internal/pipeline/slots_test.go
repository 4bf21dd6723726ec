package pipeline

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/internal/slots"
	"github.com/capisync/capisync/rules"
	"github.com/capisync/capisync/state"
	"github.com/capisync/capisync/state/bolt"
)

// TestSlots: evaluating waits for a free slot, and committing holds one,
// so that with one slot (two cores) they never run at once; with two, one
// may run while the other's slot is taken. Committing to a remote store
// holds none.
func TestSlots(t *testing.T) {
	cfg, err := config.Parse("p.yaml", []byte(`sources:
  src: {type: postgres, dsn: "postgres://u@h/db", tables: [public.t]}
destinations:
  meta: {type: meta_capi, pixel_id: "1234567890", access_token: EAAgood}
rules:
  - {name: r, source: src, table: public.t, when: 'op == "insert"', event: Lead, event_id: 'string(new.id)', user_data: {em: new.email}}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	store, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	batch := func(pos string) cdc.Batch {
		return cdc.Batch{Source: "src", Position: cdc.Position(pos), Changes: []cdc.Change{{Source: "src", Table: "public.t", Op: cdc.Insert,
			CommitTime: time.Now(), Key: cdc.RowOf(map[string]any{"id": int64(1)}), New: cdc.RowOf(map[string]any{"id": int64(1), "email": "a@example.com"})}}}
	}
	// waits reports whether the work that start begins (closing done
	// when it ends) stays waiting while one slot is taken, and then ends
	// once it is given back. The slot is taken before the work begins:
	// otherwise the work may be over before the slot is taken.
	waits := func(p *Pipeline, start func(done chan<- struct{})) bool {
		p.slots.Take()
		done := make(chan struct{})
		go start(done)
		held := true
		select {
		case <-done:
			held = false
		case <-time.After(100 * time.Millisecond):
		}
		p.slots.Give()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("still waiting after the slot was given back")
		}
		return held
	}
	for _, n := range []int{1, 2} {
		p, err := New(Config{Store: store, Rules: set, Slots: slots.New(n), EvalWorkers: 4, Sources: []NamedSource{{Name: "src", Source: ackOnly{}}}})
		if err != nil {
			t.Fatal(err)
		}
		evaluate := func(done chan<- struct{}) { defer close(done); p.evaluateAll([]cdc.Batch{batch("e")}) }
		if got := waits(p, evaluate); got != (n == 1) {
			t.Errorf("%d slots: evaluation waited for the taken slot: %v, want %v", n, got, n == 1)
		}

		// The committer holds a slot while it commits.
		spy := &slotSpy{Store: store, p: p, held: make(chan int, 1)}
		p.cfg.Store = spy
		ctx, cancel := context.WithCancel(context.Background())
		in := make(chan cdc.Batch, 1)
		loop := make(chan error, 1)
		go func() { loop <- p.commitLoop(ctx, in) }()
		in <- batch("c")
		if got := <-spy.held; got != 1 {
			t.Errorf("%d slots: %d taken while committing, want 1", n, got)
		}
		cancel()
		if err := <-loop; err != nil {
			t.Fatal(err)
		}
	}

	// A remote store's commit mostly waits on its server: it holds no
	// slot, so that the evaluator runs meanwhile.
	spy := &remoteSpy{slotSpy{Store: store, held: make(chan int, 1)}}
	p, err := New(Config{Store: spy, Rules: set, Slots: slots.New(1), Sources: []NamedSource{{Name: "src", Source: ackOnly{}}}})
	if err != nil {
		t.Fatal(err)
	}
	spy.p = p
	ctx, cancel := context.WithCancel(context.Background())
	in := make(chan cdc.Batch, 1)
	loop := make(chan error, 1)
	go func() { loop <- p.commitLoop(ctx, in) }()
	in <- batch("r")
	if got := <-spy.held; got != 0 {
		t.Errorf("%d slots taken while committing to a remote store, want 0", got)
	}
	cancel()
	if err := <-loop; err != nil {
		t.Fatal(err)
	}
}

// remoteSpy is a slotSpy that says its commits wait on a server.
type remoteSpy struct{ slotSpy }

func (*remoteSpy) Remote() bool { return true }

// ackOnly is a source the committer acknowledges to; it is never run.
type ackOnly struct{}

func (ackOnly) Run(context.Context, cdc.Position, chan<- cdc.Batch) error { return nil }
func (ackOnly) Ack(context.Context, cdc.Position) error                   { return nil }

// slotSpy tells, at each commit, how many slots are taken.
type slotSpy struct {
	Store
	p    *Pipeline
	held chan int
}

func (s *slotSpy) Commit(batches ...state.Batch) (state.CommitResult, error) {
	s.held <- s.p.slots.Taken()
	return s.Store.Commit(batches...)
}
