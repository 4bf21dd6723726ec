package backoff

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func TestGrowsToCapAndResets(t *testing.T) {
	for _, full := range []bool{false, true} {
		b := Backoff{Base: time.Second, Cap: 30 * time.Second, FullJitter: full}
		for i, ceil := range []time.Duration{1, 2, 4, 8, 16, 30, 30, 30} {
			ceil *= time.Second
			if ceil > 30*time.Second {
				ceil = 30 * time.Second
			}
			d := b.Next()
			low := ceil / 2
			if full {
				low = 0
			}
			if d < low || d > ceil {
				t.Errorf("full=%v attempt %d: %v, want in [%v, %v]", full, i+1, d, low, ceil)
			}
		}
		if b.Attempts() != 8 {
			t.Errorf("attempts = %d", b.Attempts())
		}
		b.Reset()
		if d := b.Next(); d > time.Second {
			t.Errorf("after Reset: %v, want at most the base", d)
		}
	}
}

func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		start := time.Now()
		if !Sleep(ctx, time.Minute, nil) || time.Since(start) != time.Minute {
			t.Errorf("full sleep: %v", time.Since(start))
		}
		wake := make(chan struct{})
		go func() { time.Sleep(time.Second); close(wake) }()
		start = time.Now()
		if !Sleep(ctx, time.Hour, wake) || time.Since(start) != time.Second {
			t.Errorf("woken: %v", time.Since(start))
		}
		go func() { time.Sleep(2 * time.Second); cancel() }()
		if Sleep(ctx, time.Hour, nil) {
			t.Error("Sleep returned true after ctx ended")
		}
	})
}

// TestBoundedForAnyAttempt: no overflow, whatever the attempt count.
func TestBoundedForAnyAttempt(t *testing.T) {
	b := Backoff{Base: time.Second, Cap: 5 * time.Minute, FullJitter: true}
	for attempt := 1; attempt < 100; attempt++ {
		if d := b.Next(); d < 0 || d > 5*time.Minute {
			t.Fatalf("attempt %d: %v outside [0, 5m]", attempt, d)
		}
	}
}
