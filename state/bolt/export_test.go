package bolt

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// PrefillIDs makes s remember n ids for dest as if n events, delivered
// since, had been queued at: the history of a daemon that has run for
// days, written straight to the id log (the benchmarks' setup).
func PrefillIDs(s *Store, dest, name string, n int, at time.Time) error {
	const chunk = 250000
	for from := 0; from < n; from += chunk {
		err := s.db.Update(func(tx *bolt.Tx) error {
			ob, err := sub(tx, bOutbox, dest, true)
			if err != nil {
				return err
			}
			log, err := sub(tx, bIDLog, dest, true)
			if err != nil {
				return err
			}
			log.FillPercent = 0.95
			for i := from; i < min(n, from+chunk); i++ {
				seq, err := ob.NextSequence()
				if err != nil {
					return err
				}
				sum := sha256.Sum256([]byte("history-" + strconv.Itoa(i)))
				if err := log.Put(u64(seq), idLogValue(at, []byte(name+"\x00"+hex.EncodeToString(sum[:])))); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return s.db.View(s.ids.load)
}
