// Package backoff is the one retry delay of capisync's loops: exponential
// growth from Base to Cap, with jitter, reset after a success. The source
// reconnect loops and the Graph API sender share it, so that each resets
// when it should and none waits longer than its cap.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff hands out growing delays. The zero value is not useful: set
// Base and Cap. It is not safe for concurrent use; each loop has its own.
type Backoff struct {
	Base, Cap time.Duration
	// FullJitter draws each delay uniformly from [0, ceiling] (for many
	// clients retrying against one server); otherwise from
	// [ceiling/2, ceiling], so that a reconnect never spins.
	FullJitter bool

	attempt int
}

// Next returns the delay before the next attempt and counts the attempt.
func (b *Backoff) Next() time.Duration {
	b.attempt++
	ceil := b.Cap
	if b.attempt < 40 {
		if d := b.Base << (b.attempt - 1); d > 0 && d < ceil {
			ceil = d
		}
	}
	if ceil <= 0 {
		return 0
	}
	if b.FullJitter {
		return time.Duration(rand.Int64N(int64(ceil) + 1))
	}
	return ceil/2 + time.Duration(rand.Int64N(int64(ceil/2)+1))
}

// Attempts is how many delays were handed out since the last Reset.
func (b *Backoff) Attempts() int { return b.attempt }

// Reset starts over from Base: call it after a success.
func (b *Backoff) Reset() { b.attempt = 0 }

// Sleep waits d. It returns true when d has passed or wake was closed or
// signalled (the wait is cut short), false when ctx ended first.
func Sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	if ctx.Err() != nil {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	case <-wake:
		return true
	}
}
