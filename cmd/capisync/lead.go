package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/capisync/capisync/state"
)

// The leader lease, for a store several daemons share (state.Leaser,
// state type postgres): a daemon waits as a standby until it holds the
// lease, then runs the pipeline while renewing it; when it cannot renew
// in time, or finds the lease taken over, the pipeline stops at once
// (nothing drained: calls to Meta cannot be fenced, so they must stop
// before the lease can expire) and the daemon exits with an error, for
// its supervisor to start it again as a standby. A clean stop releases
// the lease, so that a standby takes over at once.

// holderName names this daemon in the lease: host, process and a random
// suffix (a restarted process is another holder).
func holderName() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s pid %d %s", host, os.Getpid(), hex.EncodeToString(b))
}

// lead waits for the lease, then runs run while holding it; run must stop
// at once when abort yields (see pipeline.Config.Abort).
func (d *daemon) lead(ctx context.Context, l state.Leaser, run func(context.Context) error) error {
	ttl := d.cfg.State.LeaseTTL.Duration
	holder := holderName()
	d.role.Store("standby")
	var epoch int64
	var validUntil time.Time // on this machine's monotonic clock, from before the request
	setValid := func(t time.Time) { validUntil = t; d.validUntil.Store(&t) }
	for {
		sent := time.Now()
		actx, cancel := context.WithTimeout(ctx, ttl/3)
		e, ok, err := l.Acquire(actx, holder, ttl)
		cancel()
		if err == nil && ok {
			epoch = e
			setValid(sent.Add(ttl))
			break
		}
		who := ""
		if err != nil {
			d.log.Warn("standby: cannot reach the state's lease", "error", err)
		} else if lease, err := l.Leader(ctx); err == nil {
			who = lease.Holder
		}
		if d.leader.Load() != who {
			d.leader.Store(who)
			d.log.Info("standby: another capisync leads", "leader", who)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(ttl / 3):
		}
	}
	d.role.Store("leader")
	d.leader.Store(holder)
	d.log.Info("leading: this capisync holds the leader lease", "epoch", epoch, "holder", holder, "lease_ttl", ttl)
	renewCtx, stopRenew := context.WithCancel(context.Background())
	lost := make(chan struct{})
	var lostWhy error // set before lost is closed
	go func() {
		tick := time.NewTicker(ttl / 5)
		defer tick.Stop()
		for {
			select {
			case <-renewCtx.Done():
				return
			case <-tick.C:
			}
			sent := time.Now()
			rctx, cancel := context.WithTimeout(renewCtx, ttl/5)
			ok, err := l.Renew(rctx, holder, epoch, ttl)
			cancel()
			var why error
			switch {
			case err == nil && ok:
				setValid(sent.Add(ttl))
			case err == nil:
				why = fmt.Errorf("lost the leader lease (epoch %d): it expired or another capisync took it", epoch)
			case time.Until(validUntil) <= 0:
				// Woken from a pause (SIGSTOP, a suspended VM) past the
				// lease's end, the renewal's own failure is not the reason.
				why = fmt.Errorf("%s: %w", expiredLease(epoch, validUntil), err)
			case time.Until(validUntil) < ttl/4:
				why = fmt.Errorf("could not renew the leader lease (epoch %d) before it expires: %w", epoch, err)
			default:
				d.log.Warn("renewing the leader lease failed; trying again", "error", err, "valid_for", time.Until(validUntil).Round(time.Millisecond))
			}
			if why != nil {
				d.role.Store("stepping down")
				lostWhy = why
				close(lost)
				d.abort <- why
				return
			}
		}
	}()
	err := run(ctx)
	stopRenew()
	select {
	case <-lost:
		// The lease is why the daemon stops, even when another error
		// (a state connection dropped during a pause, say) ended the
		// run first.
		if err == nil || errors.Is(err, lostWhy) { // the abort itself
			return lostWhy
		}
		return fmt.Errorf("%w; then: %w", lostWhy, err)
	default:
	}
	if until := d.validUntil.Load(); err != nil && until != nil && time.Now().After(*until) {
		// Woken from a pause past the lease's end, whatever failed first
		// (a state connection the server dropped meanwhile, say) is not
		// the reason; the lease is no longer this daemon's to release.
		return fmt.Errorf("%s; then: %w", expiredLease(epoch, *until), err)
	}
	rctx, cancel := context.WithTimeout(context.Background(), ttl/2)
	defer cancel()
	if rerr := l.Release(rctx, holder, epoch); rerr != nil {
		d.log.Warn("could not release the leader lease: a standby takes over once it expires", "error", rerr)
	} else {
		d.log.Info("released the leader lease")
	}
	return err
}

// expiredLease says that the lease of epoch ran out at until, unrenewed.
func expiredLease(epoch int64, until time.Time) string {
	return fmt.Sprintf("lost the leader lease (epoch %d): it expired %s ago, before it could be renewed (was this process paused?)", epoch, time.Since(until).Round(time.Millisecond))
}

// maySend is the destinations' gate with a shared store: a request goes
// out only while this daemon leads and its lease has more than a quarter
// of its TTL left (a daemon frozen past its lease, SIGSTOP or a long
// pause, sends nothing when it wakes).
func (d *daemon) maySend() error {
	if role := d.role.Load().(string); role != "leader" {
		return fmt.Errorf("this capisync is %s", role)
	}
	until := d.validUntil.Load()
	if until == nil || time.Until(*until) < d.cfg.State.LeaseTTL.Duration/4 {
		return errors.New("the leader lease may have expired")
	}
	return nil
}
