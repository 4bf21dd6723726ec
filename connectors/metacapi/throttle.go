package metacapi

import (
	"context"
	"sync"

	"golang.org/x/time/rate"
)

// throttle is the destination-wide request rate. It is unlimited until
// Meta throttles us; then it halves on every throttled answer (down to one
// request per 20 s) and grows back by a quarter on every success until it is
// unlimited again.
type throttle struct {
	mu  sync.Mutex
	lim *rate.Limiter
}

const (
	throttledStart = rate.Limit(5)    // requests per second after the first throttle
	throttledMin   = rate.Limit(0.05) // one request per 20 s
	throttledFree  = rate.Limit(50)   // above this, stop limiting
)

func newThrottle() *throttle { return &throttle{lim: rate.NewLimiter(rate.Inf, 1)} }

func (t *throttle) wait(ctx context.Context) error { return t.lim.Wait(ctx) }

// limit is the current rate (rate.Inf when not throttled).
func (t *throttle) limit() rate.Limit { return t.lim.Limit() }

func (t *throttle) slowDown() {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := t.lim.Limit()
	if cur == rate.Inf {
		cur = throttledStart
	} else {
		cur /= 2
	}
	t.lim.SetLimit(max(cur, throttledMin))
}

func (t *throttle) succeeded() {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := t.lim.Limit()
	if cur == rate.Inf {
		return
	}
	if cur *= 1.25; cur > throttledFree {
		cur = rate.Inf
	}
	t.lim.SetLimit(cur)
}
