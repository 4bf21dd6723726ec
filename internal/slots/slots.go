// Package slots bounds how many of capisync's CPU-bound steps run at once.
//
// The pipeline (evaluating rules, committing to the store) and the polling
// source's shadow lookups and diffs share one Slots: by default one fewer
// than GOMAXPROCS, so that a core stays free for what waits on the network
// — the sources' page reads and the senders. On a two-core machine that is
// shared with the source database, the steps then take turns on one core,
// and the database and the reader keep the other: when the steps ran side
// by side they took both cores, the reader's wake-ups waited for the Go
// scheduler's network poll (every 10 ms while every P is busy), and the
// database's reads stretched.
package slots

import "runtime"

// Slots lets a bounded number of steps run at once. A nil *Slots bounds
// nothing.
type Slots struct{ c chan struct{} }

// New returns Slots for n steps at once (n <= 0: one fewer than
// GOMAXPROCS, at least one).
func New(n int) *Slots {
	if n <= 0 {
		n = max(1, runtime.GOMAXPROCS(0)-1)
	}
	return &Slots{c: make(chan struct{}, n)}
}

// Take waits for a free slot and takes it.
func (s *Slots) Take() {
	if s != nil {
		s.c <- struct{}{}
	}
}

// Give gives back a slot Take took.
func (s *Slots) Give() {
	if s != nil {
		<-s.c
	}
}

// Taken is how many slots are taken.
func (s *Slots) Taken() int {
	if s == nil {
		return 0
	}
	return len(s.c)
}
