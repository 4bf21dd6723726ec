package state_test

import (
	"encoding/binary"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/state"
)

// BenchmarkScatteredShadows: a table of 300,000 shadows, then per
// iteration a poll's worth of changed rows scattered over it: 5 commits of
// 2,000 shadows, and whatever merging the store does afterwards
// (FlushShadows), so that work done later in the background is counted.
func BenchmarkScatteredShadows(b *testing.B) {
	const rows, perCommit, commits = 300_000, 2000, 5
	s, err := state.Open(filepath.Join(b.TempDir(), "capisync.db"), state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	key := func(id uint64) []byte { return binary.AppendUvarint(nil, id) }
	value := make([]byte, 60)
	flush := func() {
		if f, ok := any(s).(interface{ FlushShadows() error }); ok {
			if err := f.FlushShadows(); err != nil {
				b.Fatal(err)
			}
		}
	}
	for i := uint64(0); i < rows; i += 5000 {
		batch := state.Batch{Source: "src"}
		for id := i; id < i+5000; id++ {
			batch.Shadows = append(batch.Shadows, cdc.Shadow{Table: "orders", Key: key(id), Value: value})
		}
		if _, err := s.Commit(batch); err != nil {
			b.Fatal(err)
		}
	}
	flush()
	r := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for range commits {
			batch := state.Batch{Source: "src"}
			for range perCommit {
				batch.Shadows = append(batch.Shadows, cdc.Shadow{Table: "orders", Key: key(r.Uint64N(rows)), Value: value})
			}
			if _, err := s.Commit(batch); err != nil {
				b.Fatal(err)
			}
		}
		flush()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*commits*perCommit), "ns/shadow")
}
