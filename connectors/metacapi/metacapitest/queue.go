package metacapitest

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/capisync/capisync/connectors/metacapi"
	"github.com/capisync/capisync/internal/capi"
)

// Queue is an in-memory metacapi.Queue with the outbox's semantics:
// delivered events leave, dead-lettered ones move aside, deferred ones stay.
type Queue struct {
	mu      sync.Mutex
	next    uint64
	items   map[uint64]metacapi.Item
	dead    []metacapi.Outcome
	outcome map[metacapi.Status]int
	added   chan struct{}
}

// NewQueue returns an empty queue.
func NewQueue() *Queue {
	return &Queue{items: map[uint64]metacapi.Item{}, outcome: map[metacapi.Status]int{}, added: make(chan struct{}, 1)}
}

// Add enqueues events.
func (q *Queue) Add(events ...capi.Event) {
	q.mu.Lock()
	for _, e := range events {
		q.next++
		q.items[q.next] = metacapi.Item{Seq: q.next, Event: e, Enqueued: time.Now()}
	}
	q.mu.Unlock()
	select {
	case q.added <- struct{}{}:
	default:
	}
}

// Pending implements metacapi.Queue.
func (q *Queue) Pending(_ context.Context, after uint64, max int) ([]metacapi.Item, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	seqs := make([]uint64, 0, len(q.items))
	for s := range q.items {
		if s > after {
			seqs = append(seqs, s)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	if len(seqs) > max {
		seqs = seqs[:max]
	}
	out := make([]metacapi.Item, len(seqs))
	for i, s := range seqs {
		out[i] = q.items[s]
	}
	return out, nil
}

// Report implements metacapi.Reporter.
func (q *Queue) Report(_ context.Context, outcomes []metacapi.Outcome) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, o := range outcomes {
		q.outcome[o.Status]++
		switch o.Status {
		case metacapi.Delivered:
			delete(q.items, o.Seq)
		case metacapi.DeadLettered:
			delete(q.items, o.Seq)
			q.dead = append(q.dead, o)
		}
	}
	return nil
}

// Wait implements metacapi.Queue.
func (q *Queue) Wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-q.added:
	}
}

// Len is the number of queued events.
func (q *Queue) Len() int { q.mu.Lock(); defer q.mu.Unlock(); return len(q.items) }

// Dead returns the dead-lettered outcomes.
func (q *Queue) Dead() []metacapi.Outcome {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]metacapi.Outcome(nil), q.dead...)
}

// Count is how many outcomes of status s were reported.
func (q *Queue) Count(s metacapi.Status) int { q.mu.Lock(); defer q.mu.Unlock(); return q.outcome[s] }
