package state

import (
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
		for i, k := range keys {
			if v := b.Get(k); v != nil {
				out[i] = append([]byte(nil), v...)
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
