package pipeline

import (
	"fmt"
	"testing"

	"github.com/capisync/capisync/state"
)

func queuedSeqs(dest string, from, to uint64) []state.Queued {
	var out []state.Queued
	for s := from; s <= to; s++ {
		out = append(out, state.Queued{Seq: s, Destination: dest, EventName: "Lead"})
	}
	return out
}

// TestQueueMemory: the sender takes committed events from memory only
// while memory holds every event after the one it last took.
func TestQueueMemory(t *testing.T) {
	type step struct {
		push      []state.Queued
		last      uint64 // the outbox's last sequence number; 0: the last pushed
		after     uint64
		max       int
		want      []uint64 // nil with fromMem false: the store must serve
		fromStore bool
	}
	seqs := func(from, to uint64) []uint64 {
		var out []uint64
		for s := from; s <= to; s++ {
			out = append(out, s)
		}
		return out
	}
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"taken in order", []step{
			{push: queuedSeqs("meta", 1, 5), after: 0, max: 3, want: seqs(1, 3)},
			{after: 3, max: 10, want: seqs(4, 5)},
			{after: 5, max: 10, want: nil},
			{push: queuedSeqs("meta", 6, 7), after: 5, max: 10, want: seqs(6, 7)},
		}},
		{"other destinations are not kept", []step{
			{push: append(queuedSeqs("meta", 1, 2), queuedSeqs("other", 1, 2)...), after: 0, max: 10, want: seqs(1, 2)},
		}},
		{"a restart: older events are in the store", []step{
			{push: queuedSeqs("meta", 40, 41), after: 0, max: 10, fromStore: true},
			{after: 39, max: 10, want: seqs(40, 41)},
		}},
		{"taken events deferred by a pause come back from the store", []step{
			{push: queuedSeqs("meta", 1, 6), after: 0, max: 3, want: seqs(1, 3)},
			{after: 3, max: 3, want: seqs(4, 6)},
			{after: 0, max: 3, fromStore: true},
			{after: 6, max: 3, want: nil},
		}},
		{"a gap in the sequence", []step{
			{push: queuedSeqs("meta", 1, 3), after: 0, max: 10, want: seqs(1, 3)},
			{push: queuedSeqs("meta", 5, 6), after: 3, max: 10, fromStore: true},
			{after: 4, max: 10, want: seqs(5, 6)},
		}},
		{"queued another way (a dead letter retried)", []step{
			{push: queuedSeqs("meta", 1, 3), after: 0, max: 10, want: seqs(1, 3)},
			{last: 4, after: 3, max: 10, fromStore: true},
			{last: 4, after: 4, max: 10, fromStore: true},
			{push: queuedSeqs("meta", 5, 6), after: 4, max: 10, want: seqs(5, 6)},
		}},
		{"committed, not yet pushed", []step{
			{push: queuedSeqs("meta", 1, 3), last: 5, after: 0, max: 10, fromStore: true},
			{push: queuedSeqs("meta", 4, 5), after: 3, max: 10, want: seqs(4, 5)},
		}},
		{"the ring wraps around", []step{
			{push: queuedSeqs("meta", 1, 100), after: 0, max: 100, want: seqs(1, 100)},
			{after: 100, max: 10, want: nil},
			{push: queuedSeqs("meta", 101, memCap+50), after: 100, max: 20, want: seqs(101, 120)},
			{after: 120, max: memCap, want: seqs(121, memCap+50)},
			{after: memCap + 50, max: 10, want: nil},
		}},
		{"overflow: the oldest are left to the store", []step{
			{push: queuedSeqs("meta", 1, memCap+10), after: 0, max: 10, fromStore: true},
			{after: 9, max: 10, fromStore: true},
			{after: 10, max: 20, want: seqs(11, 30)},
			{after: memCap, max: 20, want: seqs(memCap+1, memCap+10)},
		}},
		{"the ring grows, keeping order", []step{
			{push: queuedSeqs("meta", 1, memStart-10), after: 0, max: 5, want: seqs(1, 5)},
			{push: queuedSeqs("meta", memStart-9, 3*memStart), after: 5, max: 3 * memStart, want: seqs(6, 3*memStart)},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := &queue{dest: "meta"}
			for i, s := range c.steps {
				if s.push != nil {
					q.push(s.push)
				}
				last := s.last
				if last == 0 {
					last = q.memNext - 1
				}
				items, ok := q.fromMemory(s.after, last, s.max)
				if ok == s.fromStore {
					t.Fatalf("step %d: from memory %v, want %v", i, ok, !s.fromStore)
				}
				var got []uint64
				for _, it := range items {
					got = append(got, it.Seq)
				}
				if !s.fromStore && len(got)+len(s.want) > 0 && fmt.Sprint(got) != fmt.Sprint(s.want) {
					t.Fatalf("step %d: took %v, want %v", i, got, s.want)
				}
			}
		})
	}
}
