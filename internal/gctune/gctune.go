// Package gctune holds the daemon's garbage-collector settings, so that the
// benchmarks run under the settings that ship.
package gctune

import (
	"os"
	"runtime/debug"
	"sync"
)

var (
	mu       sync.Mutex
	owned    bool  // Apply set the memory limit (GOMEMLIMIT did not)
	reserved int64 // bytes Reserve added to MemoryLimit
)

// Reserve says that the daemon holds n bytes on the heap for as long as
// it runs, in addition to its working set: the store's memory of event
// ids, which grows with the events of the last 48 hours. The memory limit
// is MemoryLimit plus what is reserved, so that a long-lived structure
// does not leave the working set too little room and make the collector
// run without pause. Each caller passes its total (not a delta) under its
// own name. Without Apply (or with GOMEMLIMIT set) it changes nothing.
func Reserve(name string, n int64) {
	mu.Lock()
	defer mu.Unlock()
	reserved += n - reservations[name]
	reservations[name] = n
	if owned {
		debug.SetMemoryLimit(MemoryLimit + reserved)
	}
}

var reservations = map[string]int64{}

const (
	// MemoryLimit is the soft ceiling for the heap: the daemon's working
	// set is small (batches in flight), so it collects harder rather than
	// grow. The store's file is mapped outside the heap.
	MemoryLimit = 56 << 20
	// GCPercent lets the heap grow to 5x what is live before a collection,
	// under MemoryLimit. The live heap is a few MiB to a few tens of MiB,
	// so with Go's default of 100 the collector ran every few MiB of a
	// poll's or a transaction's allocations, on the cores that read and
	// evaluate them.
	GCPercent = 400
)

// Apply sets MemoryLimit and GCPercent, except what the environment sets
// (GOMEMLIMIT, GOGC). It returns a function that restores the previous
// settings.
func Apply() (restore func()) {
	limit, percent := int64(-1), -1
	if os.Getenv("GOMEMLIMIT") == "" {
		mu.Lock()
		owned = true
		limit = debug.SetMemoryLimit(MemoryLimit + reserved)
		mu.Unlock()
	}
	if os.Getenv("GOGC") == "" {
		percent = debug.SetGCPercent(GCPercent)
	}
	return func() {
		if limit >= 0 {
			mu.Lock()
			owned = false
			debug.SetMemoryLimit(limit)
			mu.Unlock()
		}
		if percent >= 0 {
			debug.SetGCPercent(percent)
		}
	}
}
