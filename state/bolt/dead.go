package bolt

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/capisync/capisync/state"
)

func putDead(tx *bolt.Tx, dl state.DeadLetter, now time.Time) error {
	b, err := sub(tx, bDead, dl.Destination, true)
	if err != nil {
		return err
	}
	id, err := b.NextSequence()
	if err != nil {
		return err
	}
	dl.ID, dl.Created = id, now.UTC()
	v, err := json.Marshal(dl)
	if err != nil {
		return fmt.Errorf("encode dead letter: %w", err)
	}
	if err := b.Put(u64(id), v); err != nil {
		return err
	}
	return addCounter(tx, state.DeadCounter(dl.Destination), 1)
}

// DeadLetters lists dest's dead letters (every destination's when dest is
// empty), oldest first.
func (s *Store) DeadLetters(dest string) ([]state.DeadLetter, error) {
	var out []state.DeadLetter
	err := s.db.View(func(tx *bolt.Tx) error {
		return eachDest(tx, bDead, dest, func(name string, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				dl, err := state.DecodeDeadLetter(v)
				if err != nil {
					return fmt.Errorf("dead letter %s/%d: %w", name, binary.BigEndian.Uint64(k), err)
				}
				out = append(out, dl)
				return nil
			})
		})
	})
	return out, err
}

// RetryDead moves dead letters back to their outbox (ids nil: all of
// dest's), to be sent again; rule failures, which hold no event, stay.
// It returns how many were moved.
func (s *Store) RetryDead(dest string, ids []uint64) (int, error) {
	return s.takeDead(dest, ids, func(tx *bolt.Tx, idtx *idTx, dl state.DeadLetter) (bool, error) {
		if dl.Event == nil {
			return false, nil
		}
		// A retried event is queued afresh, even if an identical one was
		// delivered: the operator asked for it.
		log, err := sub(tx, bIDLog, dl.Destination, true)
		if err != nil {
			return false, err
		}
		ob, err := sub(tx, bOutbox, dl.Destination, true)
		if err != nil {
			return false, err
		}
		key := dl.Event.EventName + "\x00" + dl.Event.EventID
		h := idtx.x.hash(key)
		if seq, _, found := idtx.find(dl.Destination, ob, log, key, h); found && ob.Get(u64(seq)) == nil { // sent, not queued
			if err := idtx.forget(dl.Destination, log, h, seq); err != nil {
				return false, err
			}
		}
		dup, err := newEnqueuer(tx, idtx, s.now()).add(&state.Enqueue{Destination: dl.Destination, Rule: dl.Rule, Event: *dl.Event}, 0)
		if err == nil && !dup {
			err = addCounter(tx, state.DepthCounter(dl.Destination), 1)
		}
		return err == nil, err
	})
}

// DropDead deletes dead letters (ids nil: all of dest's). It returns how
// many were deleted.
func (s *Store) DropDead(dest string, ids []uint64) (int, error) {
	return s.takeDead(dest, ids, func(*bolt.Tx, *idTx, state.DeadLetter) (bool, error) { return true, nil })
}

func (s *Store) takeDead(dest string, ids []uint64, take func(*bolt.Tx, *idTx, state.DeadLetter) (bool, error)) (int, error) {
	n := 0
	err := s.update(func(tx *bolt.Tx, idtx *idTx) error {
		n = 0
		return eachDest(tx, bDead, dest, func(name string, b *bolt.Bucket) error {
			want := map[uint64]bool{}
			for _, id := range ids {
				want[id] = true
			}
			var keys [][]byte
			var letters []state.DeadLetter
			if err := b.ForEach(func(k, v []byte) error {
				if ids != nil && !want[binary.BigEndian.Uint64(k)] {
					return nil
				}
				dl, err := state.DecodeDeadLetter(v)
				if err != nil {
					return err
				}
				keys, letters = append(keys, append([]byte(nil), k...)), append(letters, dl)
				return nil
			}); err != nil {
				return err
			}
			for i, dl := range letters {
				ok, err := take(tx, idtx, dl)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
				if err := b.Delete(keys[i]); err != nil {
					return err
				}
				if err := addCounter(tx, state.DeadCounter(name), -1); err != nil {
					return err
				}
				n++
			}
			return nil
		})
	})
	return n, err
}

// eachDest calls fn for root's nested bucket dest, or for every nested
// bucket when dest is empty.
func eachDest(tx *bolt.Tx, root []byte, dest string, fn func(string, *bolt.Bucket) error) error {
	r := tx.Bucket(root)
	if dest != "" {
		if b := r.Bucket([]byte(dest)); b != nil {
			return fn(dest, b)
		}
		return nil
	}
	return r.ForEachBucket(func(k []byte) error { return fn(string(k), r.Bucket(k)) })
}
