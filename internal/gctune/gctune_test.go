package gctune

import (
	"runtime/debug"
	"testing"
)

func TestApply(t *testing.T) {
	for _, tc := range []struct {
		name             string
		gogc, gomemlimit string
		wantPercent      int
		wantLimit        int64
	}{
		{name: "defaults", wantPercent: GCPercent, wantLimit: MemoryLimit},
		{name: "GOGC set", gogc: "150", wantPercent: 77, wantLimit: MemoryLimit},
		{name: "GOMEMLIMIT set", gomemlimit: "1GiB", wantPercent: GCPercent, wantLimit: 1 << 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOGC", tc.gogc)
			t.Setenv("GOMEMLIMIT", tc.gomemlimit)
			// What the environment would have set at start-up.
			oldPercent, oldLimit := debug.SetGCPercent(77), debug.SetMemoryLimit(1<<40)
			defer debug.SetGCPercent(oldPercent)
			defer debug.SetMemoryLimit(oldLimit)

			restore := Apply()
			if p := debug.SetGCPercent(-1); p != tc.wantPercent {
				t.Errorf("GC percent %d, want %d", p, tc.wantPercent)
			}
			debug.SetGCPercent(tc.wantPercent)
			if l := debug.SetMemoryLimit(-1); l != tc.wantLimit {
				t.Errorf("memory limit %d, want %d", l, tc.wantLimit)
			}
			restore()
			if p, l := debug.SetGCPercent(-1), debug.SetMemoryLimit(-1); p != 77 || l != 1<<40 {
				t.Errorf("after restore: GC percent %d, memory limit %d; want 77, %d", p, l, int64(1<<40))
			}
			debug.SetGCPercent(77)
		})
	}
}

// TestReserve: what is reserved is added to the limit Apply set, by name,
// and nothing is changed when the environment set the limit.
func TestReserve(t *testing.T) {
	old := debug.SetMemoryLimit(1 << 40)
	defer debug.SetMemoryLimit(old)
	t.Setenv("GOMEMLIMIT", "")
	restore := Apply()
	Reserve("ids", 10<<20)
	Reserve("other", 1<<20)
	Reserve("ids", 20<<20) // a total, not a delta
	if l := debug.SetMemoryLimit(-1); l != MemoryLimit+21<<20 {
		t.Errorf("limit %d, want %d", l, MemoryLimit+21<<20)
	}
	restore()
	Reserve("ids", 0)
	Reserve("other", 0)
	if l := debug.SetMemoryLimit(-1); l != 1<<40 {
		t.Errorf("after restore, Reserve changed the limit to %d", l)
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	restore = Apply()
	defer restore()
	Reserve("ids", 10<<20)
	defer Reserve("ids", 0)
	if l := debug.SetMemoryLimit(-1); l != 1<<40 {
		t.Errorf("with GOMEMLIMIT set, Reserve changed the limit to %d", l)
	}
}
