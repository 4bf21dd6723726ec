package bolt

import (
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/capisync/capisync/state"
)

// state.Status reads the snapshot in one transaction.
func (s *Store) Status() (state.Status, error) {
	st := state.Status{Checkpoints: map[string]state.CheckpointStatus{}, Destinations: map[string]state.OutboxStatus{}, Counters: map[string]int64{}}
	err := s.db.View(func(tx *bolt.Tx) error {
		times := tx.Bucket(bCheckpointTimes)
		if err := tx.Bucket(bCheckpoints).ForEach(func(k, v []byte) error {
			cs := state.CheckpointStatus{Position: append([]byte(nil), v...)}
			if t := times.Get(k); t != nil {
				cs.At = time.Unix(0, int64(binary.BigEndian.Uint64(t))).UTC()
			}
			st.Checkpoints[string(k)] = cs
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bCounters).ForEach(func(k, v []byte) error {
			name, val := string(k), int64(binary.BigEndian.Uint64(v))
			st.AddCounter(name, val)
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bOutbox).ForEachBucket(func(name []byte) error {
			if _, v := tx.Bucket(bOutbox).Bucket(name).Cursor().First(); v != nil {
				if rec, err := decodeRecord(v); err == nil {
					o := st.Destinations[string(name)]
					o.OldestEnqueued = time.Unix(0, rec.Enqueued).UTC()
					st.Destinations[string(name)] = o
				}
			}
			return nil
		})
	})
	return st, err
}

// Depth is the number of events queued for dest.
func (s *Store) Depth(dest string) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		if raw := tx.Bucket(bCounters).Get([]byte(state.DepthCounter(dest))); raw != nil {
			n = int64(binary.BigEndian.Uint64(raw))
		}
		return nil
	})
	return n, err
}
