package metacapi

import (
	"context"
	"time"
)

// Queue is the outbox a destination drains. The embedded store implements
// it; metacapitest.Queue is an in-memory one for tests.
type Queue interface {
	Reporter
	// Pending returns up to max of the oldest queued events, oldest first.
	// Events reported Deferred come back; delivered and dead-lettered ones
	// do not.
	Pending(ctx context.Context, max int) ([]Item, error)
	// Wait returns when events may have been added, after at most d, or
	// when ctx ends.
	Wait(ctx context.Context, d time.Duration)
}

// Run drains q until ctx ends: it sends full batches at once and a partial
// one when its oldest event has waited flush_interval; while the
// destination is paused it logs the reason once a minute and probes with
// one event every probe interval, resuming by itself when Meta takes it.
// It returns ctx's error, or the Queue's.
func (d *Destination) Run(ctx context.Context, q Queue) error {
	var lastPauseLog time.Time
	for ctx.Err() == nil {
		if ok, reason := d.Health(); !ok {
			if time.Since(lastPauseLog) >= time.Minute {
				d.log.Error("destination paused; events stay queued", "reason", reason)
				lastPauseLog = time.Now()
			}
			if !sleep(ctx, d.opt.ProbeInterval) {
				break
			}
			items, err := q.Pending(ctx, 1)
			if err != nil {
				return err
			}
			if len(items) > 0 {
				if err := d.deliver(ctx, items, q, true); err != nil {
					return err
				}
			}
			continue
		}
		// Several batches per in-flight slot, so that a slot freed by one
		// answer takes the next batch at once.
		want := d.cfg.BatchSize * d.cfg.InFlight * 2
		items, err := q.Pending(ctx, want)
		if err != nil {
			return err
		}
		if len(items) == 0 {
			q.Wait(ctx, d.cfg.FlushInterval.Duration)
			continue
		}
		if len(items) < d.cfg.BatchSize {
			if wait := d.cfg.FlushInterval.Duration - d.opt.Now().Sub(items[0].Enqueued); wait > 0 {
				q.Wait(ctx, wait) // more may arrive to fill the batch
				continue
			}
		}
		if err := d.Deliver(ctx, items, q); err != nil {
			return err
		}
	}
	return ctx.Err()
}
