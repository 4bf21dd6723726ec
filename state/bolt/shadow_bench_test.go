package bolt_test

import (
	"encoding/binary"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/state"
	"github.com/capisync/capisync/state/bolt"
)

// BenchmarkScatteredShadows: a table of 300,000 shadows, then per
// iteration a poll's worth of changed rows scattered over it: 5 commits of
// 2,000 shadows, and whatever merging the store does afterwards
// (FlushShadows), so that work done later in the background is counted.
func BenchmarkScatteredShadows(b *testing.B) {
	const rows, perCommit, commits = 300_000, 2000, 5
	s, err := bolt.Open(filepath.Join(b.TempDir(), "capisync.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	key := func(id uint64) []byte { return binary.AppendUvarint(nil, id) }
	value := make([]byte, 60)
	flush := func() {
		if err := s.FlushShadows(); err != nil {
			b.Fatal(err)
		}
	}
	fillShadows(b, s, rows, 5000, key, value)
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
	s, err := bolt.Open(filepath.Join(b.TempDir(), "capisync.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	key := func(id uint64) []byte { return cdc.AppendKeyOf(nil, []any{int64(id)}, []int{0}) }
	fillShadows(b, s, rows, 10000, key, make([]byte, 45))
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

// fillShadows commits shadows of ids 0 to rows-1 to source src's table
// orders, per at a time, and merges them into the main tree.
func fillShadows(b *testing.B, s *bolt.Store, rows, per uint64, key func(uint64) []byte, value []byte) {
	for i := uint64(0); i < rows; i += per {
		batch := state.Batch{Source: "src"}
		for id := i; id < i+per; id++ {
			batch.Shadows = append(batch.Shadows, cdc.Shadow{Table: "orders", Key: key(id), Value: value})
		}
		if _, err := s.Commit(batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.FlushShadows(); err != nil {
		b.Fatal(err)
	}
}
