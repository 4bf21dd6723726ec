package pipeline

import (
	"context"
	"time"

	"github.com/capisync/capisync/connectors/metacapi"
	"github.com/capisync/capisync/internal/capi"
)

// queue is a destination's outbox in the store, as a metacapi.Queue.
type queue struct {
	store    Store
	dest     string
	wake     chan struct{}
	settled  chan struct{} // the pipeline's: room may have been made
	onSettle func(string, []metacapi.Outcome)
}

func (q *queue) notify() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue) Pending(_ context.Context, after uint64, max int) ([]metacapi.Item, error) {
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

func (q *queue) Report(_ context.Context, outcomes []metacapi.Outcome) error {
	if err := q.store.Settle(q.dest, toState(outcomes)); err != nil {
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
