package bolt

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/state"
)

// shadowModel is what a table's shadows must read as.
type shadowModel map[string]string

// check compares Shadows and ScanShadows of src/orders with the model.
func (m shadowModel) check(t *testing.T, s *Store, when string) {
	t.Helper()
	keys := make([][]byte, 0, 64)
	for k := range 64 {
		keys = append(keys, []byte(fmt.Sprintf("k%02d", k)))
	}
	got, err := s.Shadows("src", "orders", keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		want, ok := m[string(k)]
		if (got[i] != nil) != ok || string(got[i]) != want {
			t.Fatalf("%s: shadow %s = %q, want %q (stored: %v)", when, k, got[i], want, ok)
		}
	}
	var scanned []string
	err = s.ScanShadows("src", "orders", func(k, v []byte) error {
		if want, ok := m[string(k)]; !ok || want != string(v) {
			t.Errorf("%s: scan gave %s = %q, want %q (stored: %v)", when, k, v, want, ok)
		}
		scanned = append(scanned, string(k))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(scanned) || len(scanned) != len(m) {
		t.Fatalf("%s: scan gave %d keys in order %v, want the %d stored, sorted", when, len(scanned), slices.IsSorted(scanned), len(m))
	}
}

// randomShadows is a commit of n writes and deletes of keys k00..k63,
// applied to the model too.
func randomShadows(r *rand.Rand, m shadowModel, n, round int) []cdc.Shadow {
	var out []cdc.Shadow
	for range n {
		k := fmt.Sprintf("k%02d", r.IntN(64))
		if r.IntN(4) == 0 {
			out = append(out, cdc.Shadow{Table: "orders", Key: []byte(k)})
			delete(m, k)
			continue
		}
		v := fmt.Sprintf("%s@%d", k, round)
		out = append(out, cdc.Shadow{Table: "orders", Key: []byte(k), Value: []byte(v)})
		m[k] = v
	}
	return out
}

func openShadows(t *testing.T, path string, idle time.Duration) *Store {
	t.Helper()
	s, err := Open(path, Options{NoSync: true, ShadowMergeIdle: idle})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// deltaLen counts the entries waiting in the deltas.
func deltaLen(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bShadowDelta).ForEachBucket(func(name []byte) error {
			n += tx.Bucket(bShadowDelta).Bucket(name).Stats().KeyN
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestShadowDelta: whether a shadow sits in the delta, in the main tree or
// in both (a newer write or a delete over a merged one), reads give the
// latest write; merging in chunks of any size, or writing to the main tree
// directly while the delta is full, changes nothing a read sees.
func TestShadowDelta(t *testing.T) {
	for _, tc := range []struct{ chunk, max int }{{1, deltaMax}, {3, deltaMax}, {64, deltaMax}, {mergeChunk, deltaMax}, {3, 10}, {64, 1}} {
		chunk := tc.chunk
		t.Run(fmt.Sprintf("chunks of %d, delta of %d", chunk, tc.max), func(t *testing.T) {
			s := openShadows(t, filepath.Join(t.TempDir(), "s.db"), -1)
			defer s.Close()
			s.merger.max = int64(tc.max)
			r := rand.New(rand.NewPCG(uint64(chunk), 1))
			m := shadowModel{}
			for round := range 40 {
				if _, err := s.Commit(state.Batch{Source: "src", Shadows: randomShadows(r, m, 1+r.IntN(20), round)}); err != nil {
					t.Fatal(err)
				}
				m.check(t, s, fmt.Sprintf("round %d, before merging", round))
				// Merge part of the delta (or none, or all of it), so that
				// later rounds write over merged shadows.
				for range r.IntN(3) {
					if _, err := s.mergeShadows(chunk); err != nil {
						t.Fatal(err)
					}
					m.check(t, s, fmt.Sprintf("round %d, after a merge", round))
				}
			}
			if err := s.FlushShadows(); err != nil {
				t.Fatal(err)
			}
			if n := deltaLen(t, s); n != 0 {
				t.Fatalf("%d entries left in the delta after FlushShadows", n)
			}
			m.check(t, s, "after FlushShadows")
		})
	}
}

// TestShadowMergeInBackground: with commits going on, the background merge
// empties the delta once they pause, and reads stay right throughout; a
// delta left at Close is merged after the next Open.
func TestShadowMergeInBackground(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := openShadows(t, path, 5*time.Millisecond)
	r := rand.New(rand.NewPCG(7, 7))
	m := shadowModel{}
	for round := range 200 {
		if _, err := s.Commit(state.Batch{Source: "src", Shadows: randomShadows(r, m, 1+r.IntN(10), round)}); err != nil {
			t.Fatal(err)
		}
		m.check(t, s, fmt.Sprintf("round %d", round))
		if round%20 == 0 {
			time.Sleep(10 * time.Millisecond) // a pause: the merger runs
		}
	}
	waitEmptyDelta(t, s)
	m.check(t, s, "after the background merge")

	// Merging off: the delta outlives Close, and is merged after Open.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openShadows(t, path, -1)
	if _, err := s.Commit(state.Batch{Source: "src", Shadows: randomShadows(r, m, 30, 1000)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openShadows(t, path, 5*time.Millisecond)
	defer s.Close()
	waitEmptyDelta(t, s)
	m.check(t, s, "after reopening")
}

func waitEmptyDelta(t *testing.T, s *Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for deltaLen(t, s) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the delta still holds %d entries", deltaLen(t, s))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCommitLeavesShadowsToMerge: Commit writes a big table's shadows to the
// delta only, leaving the main tree's pages alone until the merge.
func TestCommitLeavesShadowsToMerge(t *testing.T) {
	s := openShadows(t, filepath.Join(t.TempDir(), "s.db"), -1)
	defer s.Close()
	var shadows []cdc.Shadow
	for i := range 1000 {
		shadows = append(shadows, cdc.Shadow{Table: "orders", Key: []byte(fmt.Sprintf("k%04d", i)), Value: bytes.Repeat([]byte{'v'}, 40)})
	}
	if _, err := s.Commit(state.Batch{Source: "src", Shadows: shadows}); err != nil {
		t.Fatal(err)
	}
	if n := deltaLen(t, s); n != 1000 {
		t.Fatalf("delta holds %d entries, want 1000", n)
	}
	if err := s.FlushShadows(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Shadows("src", "orders", [][]byte{[]byte("k0999"), []byte("k1000")})
	if err != nil || len(got[0]) != 40 || got[1] != nil {
		t.Fatalf("after the merge: %q, %v", got, err)
	}
}
