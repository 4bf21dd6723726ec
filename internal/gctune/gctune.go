// Package gctune holds the daemon's garbage-collector settings, so that the
// benchmarks run under the settings that ship.
package gctune

import (
	"os"
	"runtime/debug"
)

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
		limit = debug.SetMemoryLimit(MemoryLimit)
	}
	if os.Getenv("GOGC") == "" {
		percent = debug.SetGCPercent(GCPercent)
	}
	return func() {
		if limit >= 0 {
			debug.SetMemoryLimit(limit)
		}
		if percent >= 0 {
			debug.SetGCPercent(percent)
		}
	}
}
