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

// BenchmarkShadowLookups: a poll's shadow reads, 10,000 keys scattered
// over a table of 1,000,000 shadows (every hundredth key, as in the
// polling benchmark), in one call.
func BenchmarkShadowLookups(b *testing.B) {
	const rows, every = 1_000_000, 100
	s, err := state.Open(filepath.Join(b.TempDir(), "capisync.db"), state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	key := func(id uint64) []byte { return cdc.AppendKeyOf(nil, []any{int64(id)}, []int{0}) }
	value := make([]byte, 45)
	for i := uint64(0); i < rows; i += 10000 {
		batch := state.Batch{Source: "src"}
		for id := i; id < i+10000; id++ {
			batch.Shadows = append(batch.Shadows, cdc.Shadow{Table: "orders", Key: key(id), Value: value})
		}
		if _, err := s.Commit(batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.FlushShadows(); err != nil {
		b.Fatal(err)
	}
	var keys [][]byte
	for id := uint64(every); id < rows; id += every {
		keys = append(keys, key(id))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		got, err := s.Shadows("src", "orders", keys)
		if err != nil || got[0] == nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/key")
}
