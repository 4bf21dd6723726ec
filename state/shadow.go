package state

import (
	"bytes"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Shadows returns the stored shadows of keys in source's table (nil where
// none is stored), read in one transaction.
func (s *Store) Shadows(source, table string, keys [][]byte) ([][]byte, error) {
	out := make([][]byte, len(keys))
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := sub(tx, bShadows, source+"\x00"+table, false)
		if err != nil || b == nil {
			return err
		}
		// In key order, through one cursor: neighbouring lookups walk the
		// same pages, which stay in the CPU's cache.
		order := make([]int, len(keys))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return bytes.Compare(keys[a], keys[b]) })
		c := b.Cursor()
		var arena []byte
		for _, i := range order {
			if k, v := c.Seek(keys[i]); v != nil && bytes.Equal(k, keys[i]) {
				out[i] = take(&arena, v)
			}
		}
		return nil
	})
	return out, err
}

// ScanShadows calls fn for every shadow of source's table, in key order.
// The slices are valid only during the call.
func (s *Store) ScanShadows(source, table string, fn func(key, value []byte) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b, err := sub(tx, bShadows, source+"\x00"+table, false)
		if err != nil || b == nil {
			return err
		}
		return b.ForEach(fn)
	})
}
