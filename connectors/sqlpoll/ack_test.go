package sqlpoll

import (
	"context"
	"testing"
	"time"

	"github.com/capisync/capisync/internal/cdc"
)

// TestAckIsCumulative: an Ack stands for every batch handed over up to the
// one with its position, as pipeline.Source says: a poll waiting for its
// pages to be committed goes on after one Ack of the last, and not after
// an Ack of an earlier one.
func TestAckIsCumulative(t *testing.T) {
	s := &Source{ackNotify: make(chan struct{}, 1)}
	out := make(chan cdc.Batch, 4)
	ctx := context.Background()
	for _, pos := range []string{"p1", "", "p2", "p3"} {
		b := cdc.Batch{Source: "src"}
		if pos != "" {
			b.Position = cdc.Position(pos)
		}
		if err := s.send(ctx, out, b); err != nil {
			t.Fatal(err)
		}
	}
	waited := func() bool {
		ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		return s.waitCommitted(ctx) == nil
	}
	s.Ack(ctx, cdc.Position("p2"))
	if waited() {
		t.Fatal("an Ack of p2 stood for p3 too")
	}
	s.Ack(ctx, cdc.Position("p3"))
	if !waited() {
		t.Fatal("an Ack of the last position did not stand for every batch")
	}
	if len(s.unacked) != 0 {
		t.Errorf("%d positions still unacked", len(s.unacked))
	}
}
