package pipeline

import (
	"context"
	"sync"
	"time"

	"github.com/capisync/capisync/connectors/metacapi"
	"github.com/capisync/capisync/internal/capi"
	"github.com/capisync/capisync/state"
)

// queue is a destination's outbox in the store, as a metacapi.Queue.
//
// Events this process commits are also kept in memory (mem), as the
// commit returned them, so that the sender takes them from there instead
// of reading back from the store what was just written. mem holds every
// event queued from sequence number memFrom on that the sender has not
// taken; when the sender reads from below memFrom (after a restart,
// events deferred by a pause, or the oldest of a backlog mem had no room
// for), or the outbox's last sequence number is not mem's (an event queued
// another way: a dead letter retried through the HTTP port), the store
// serves.
type queue struct {
	store    Store
	dest     string
	wake     chan struct{}
	settled  chan struct{} // the pipeline's: room may have been made
	onSettle func(string, []metacapi.Outcome)
	// whileDiskFull retries a write refused for want of disk space; stop
	// is closed when the pipeline stops sending.
	whileDiskFull func(ctx context.Context, what string, write func() error) error
	stop          <-chan struct{}

	mu sync.Mutex
	// mem is a ring (made at the first push, grown by doubling up to
	// memCap): n items from head on, with consecutive sequence numbers.
	mem     []metacapi.Item
	head, n int
	memFrom uint64 // 0: mem speaks for nothing
	memNext uint64 // the sequence number the next event must have to join mem
}

// memCap bounds the events a queue keeps in memory (~1 KiB each, only
// while they wait to be sent). It is above a commit group and the
// senders' batches together, so that a healthy destination reads nothing
// back from the store: with the store on a server, a read back decodes
// whole pages. memStart is the ring's first size.
const (
	memCap   = 16384
	memStart = 256
)

// push adds events a commit queued (any destination's; in sequence order).
func (q *queue) push(queued []state.Queued) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range queued {
		if e.Destination != q.dest {
			continue
		}
		if q.mem == nil {
			q.mem = make([]metacapi.Item, memStart)
		}
		if e.Seq != q.memNext {
			// A gap (an event queued another way): mem starts over here,
			// and the store serves what lies before.
			clear(q.mem)
			q.head, q.n, q.memFrom = 0, 0, e.Seq
		}
		if q.n == len(q.mem) {
			if len(q.mem) < memCap {
				grown := make([]metacapi.Item, 2*len(q.mem))
				copy(grown, q.mem[q.head:])
				copy(grown[len(q.mem)-q.head:], q.mem[:q.head])
				q.mem, q.head = grown, 0
			} else {
				// Too many waiting: the oldest is left to the store.
				q.mem[q.head] = metacapi.Item{}
				q.head, q.n = (q.head+1)%len(q.mem), q.n-1
				q.memFrom = q.mem[q.head].Seq
			}
		}
		q.mem[(q.head+q.n)%len(q.mem)] = metacapi.Item{Seq: e.Seq, JSON: e.JSON, Enqueued: e.Enqueued,
			Event: capi.Event{EventName: e.EventName, EventID: e.EventID, EventTime: e.EventTime, ActionSource: e.ActionSource}}
		q.n++
		q.memNext = e.Seq + 1
	}
}

// fromMemory takes up to max events after `after` from mem, when mem holds
// all of them; last is the outbox's last sequence number.
func (q *queue) fromMemory(after, last uint64, max int) ([]metacapi.Item, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if last+1 != q.memNext {
		// Committed and not yet pushed, or queued another way (then the
		// next push finds the gap and mem starts over): the store serves.
		return nil, false
	}
	for q.n > 0 && q.mem[q.head].Seq <= after { // taken by the sender
		q.mem[q.head] = metacapi.Item{} // its record is the sender's now
		q.head, q.n = (q.head+1)%len(q.mem), q.n-1
	}
	if q.memFrom != 0 && after+1 > q.memFrom {
		// What was taken may yet come back (deferred by a pause): from
		// now on mem speaks only for what follows it.
		q.memFrom = after + 1
	}
	if q.memFrom == 0 || after+1 < q.memFrom {
		return nil, false
	}
	n := min(max, q.n)
	out := make([]metacapi.Item, 0, n)
	if end := q.head + n; end <= len(q.mem) {
		out = append(out, q.mem[q.head:end]...)
	} else {
		out = append(append(out, q.mem[q.head:]...), q.mem[:end-len(q.mem)]...)
	}
	return out, true
}

func (q *queue) notify() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue) Pending(_ context.Context, after uint64, max int) ([]metacapi.Item, error) {
	last, err := q.store.LastSeq(q.dest)
	if err != nil {
		return nil, err
	}
	if items, ok := q.fromMemory(after, last, max); ok {
		return items, nil
	}
	qs, err := q.store.PendingAfter(q.dest, after, max)
	if err != nil {
		return nil, err
	}
	items := make([]metacapi.Item, len(qs))
	for i, e := range qs {
		items[i] = metacapi.Item{Seq: e.Seq, JSON: e.JSON, Enqueued: e.Enqueued,
			Event: capi.Event{EventName: e.EventName, EventID: e.EventID, EventTime: e.EventTime, ActionSource: e.ActionSource}}
	}
	return items, nil
}

func (q *queue) Report(ctx context.Context, outcomes []metacapi.Outcome) error {
	settle := func() error { return q.store.Settle(q.dest, toState(outcomes)) }
	var err error
	if q.whileDiskFull != nil {
		// A full disk: settling is tried again until it succeeds or the
		// pipeline stops sending (the events then stay queued and are
		// sent again after a restart, with their ids).
		stopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		go func() {
			select {
			case <-q.stop:
				cancel()
			case <-stopCtx.Done():
			}
		}()
		err = q.whileDiskFull(stopCtx, "settle "+q.dest, settle)
	} else {
		err = settle()
	}
	if err != nil {
		return err
	}
	if q.onSettle != nil {
		q.onSettle(q.dest, outcomes)
	}
	select {
	case q.settled <- struct{}{}:
	default:
	}
	return nil
}

func (q *queue) Wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-q.wake:
	}
}
