package metacapi

import (
	"context"
	"sync"
	"time"

	"github.com/capisync/capisync/internal/backoff"
)

// Queue is the outbox a destination drains. The embedded store implements
// it; metacapitest.Queue is an in-memory one for tests.
type Queue interface {
	Reporter
	// Pending returns up to max of the oldest queued events whose
	// sequence number is above after, oldest first. Events reported
	// Deferred come back (from after 0); delivered and dead-lettered ones
	// do not.
	Pending(ctx context.Context, after uint64, max int) ([]Item, error)
	// Wait returns when events may have been added, after at most d, or
	// when ctx ends.
	Wait(ctx context.Context, d time.Duration)
}

// Run drains q until ctx ends. It keeps in_flight requests going: as soon
// as one has its answer and it is reported (settled), the next batch is
// read from after the last event taken. So at most in_flight batches are
// ever sent and not yet settled, the most a crash can make be sent again.
// A partial batch goes once its oldest event has waited flush_interval.
// While the destination is paused it logs the reason once a minute and
// probes with one event every probe interval, resuming by itself when
// Meta takes it. It returns ctx's error, or the Queue's.
func (d *Destination) Run(ctx context.Context, q Queue) error {
	var lastPauseLog time.Time
	slots := make(chan struct{}, d.cfg.InFlight)
	failed := make(chan error, 1)
	var running sync.WaitGroup
	defer running.Wait()
	var after uint64 // the last event handed to a batch
	for ctx.Err() == nil {
		if ok, reason := d.Health(); !ok {
			// Batches in flight report (Deferred); what they held is read
			// again from the start of the outbox once Meta takes events.
			running.Wait()
			after = 0
			if time.Since(lastPauseLog) >= time.Minute {
				d.log.Error("destination paused; events stay queued", "reason", reason)
				lastPauseLog = time.Now()
			}
			if !backoff.Sleep(ctx, d.opt.ProbeInterval, nil) {
				break
			}
			items, err := q.Pending(ctx, 0, 1)
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
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		case err := <-failed:
			return err
		}
		items, err := q.Pending(ctx, after, d.cfg.BatchSize)
		if err != nil {
			<-slots
			return err
		}
		if len(items) == 0 {
			<-slots
			q.Wait(ctx, d.cfg.FlushInterval.Duration)
			continue
		}
		if len(items) < d.cfg.BatchSize {
			if wait := d.cfg.FlushInterval.Duration - d.opt.Now().Sub(items[0].Enqueued); wait > 0 {
				<-slots
				q.Wait(ctx, wait) // more may arrive to fill the batch
				continue
			}
		}
		after = items[len(items)-1].Seq
		running.Add(1)
		go func() {
			defer running.Done()
			// The slot is freed once the batch's outcome is settled, so
			// that at most in_flight batches are ever sent and unsettled:
			// what a crash makes a standby send again.
			defer func() { <-slots }()
			if err := d.deliver(ctx, items, q, false); err != nil {
				select {
				case failed <- err:
				default:
				}
			}
		}()
	}
	running.Wait()
	select {
	case err := <-failed:
		return err
	default:
	}
	return ctx.Err()
}
