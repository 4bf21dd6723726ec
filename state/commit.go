package state

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/capisync/capisync/internal/capi"
	"github.com/capisync/capisync/internal/cdc"
)

// Enqueue is an event to queue for a destination.
type Enqueue struct {
	Destination string
	Rule        string
	Event       capi.Event
}

// Batch is what one source commits at once.
type Batch struct {
	Source      string
	Position    cdc.Position // the source's new checkpoint; nil leaves it
	Events      []Enqueue
	DeadLetters []DeadLetter // events that failed before they could be queued (rule errors)
	Shadows     []cdc.Shadow
	Counters    map[string]int64 // added to the store's counters
}

// CommitResult says what a Commit queued.
type CommitResult struct {
	Enqueued   int
	Duplicates int // events already queued or recently delivered, skipped
}

// record is an outbox entry.
type record struct {
	Rule     string          `json:"r,omitempty"`
	Enqueued int64           `json:"t"`
	Attempts int             `json:"a,omitempty"`
	First    int64           `json:"f,omitempty"`
	Last     int64           `json:"l,omitempty"`
	Event    json.RawMessage `json:"e"`
}

func eventKey(e *capi.Event) []byte { return []byte(e.EventName + "\x00" + e.EventID) }

// Commit writes the batches — events, dead letters, shadows, counters and
// checkpoints — in one transaction: all of it is durable when Commit
// returns nil, and none of it when it returns an error.
func (s *Store) Commit(batches ...Batch) (CommitResult, error) {
	var res CommitResult
	now := s.now()
	err := s.db.Update(func(tx *bolt.Tx) error {
		res = CommitResult{}
		for _, b := range batches {
			for i := range b.Events {
				dup, err := enqueue(tx, &b.Events[i], now, 0)
				if err != nil {
					return fmt.Errorf("commit %s: %w", b.Source, err)
				}
				if dup {
					res.Duplicates++
				} else {
					res.Enqueued++
				}
			}
			for _, dl := range b.DeadLetters {
				if err := putDead(tx, dl, now); err != nil {
					return fmt.Errorf("commit %s: %w", b.Source, err)
				}
			}
			for _, sh := range b.Shadows {
				bk, err := sub(tx, bShadows, b.Source+"\x00"+sh.Table, true)
				if err != nil {
					return err
				}
				if sh.Value == nil {
					err = bk.Delete(sh.Key)
				} else {
					err = bk.Put(sh.Key, sh.Value)
				}
				if err != nil {
					return fmt.Errorf("commit %s: shadow %s: %w", b.Source, sh.Table, err)
				}
			}
			for name, delta := range b.Counters {
				if err := addCounter(tx, name, delta); err != nil {
					return err
				}
			}
			if b.Position != nil {
				if err := tx.Bucket(bCheckpoints).Put([]byte(b.Source), b.Position); err != nil {
					return fmt.Errorf("commit %s: checkpoint: %w", b.Source, err)
				}
				if err := tx.Bucket(bCheckpointTimes).Put([]byte(b.Source), u64(uint64(now.UnixNano()))); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return res, err
}

// enqueue adds one event to its destination's outbox unless the same
// (event_name, event_id) is queued or was delivered within SentTTL.
func enqueue(tx *bolt.Tx, e *Enqueue, now time.Time, attempts int) (dup bool, err error) {
	key := eventKey(&e.Event)
	ids, err := sub(tx, bOutboxIDs, e.Destination, true)
	if err != nil {
		return false, err
	}
	if ids.Get(key) != nil {
		return true, nil
	}
	if sent, _ := sub(tx, bSent, e.Destination, false); sent != nil {
		if t := sent.Get(key); t != nil && now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(t)))) < SentTTL {
			return true, nil
		}
	}
	raw, err := json.Marshal(e.Event)
	if err != nil {
		return false, fmt.Errorf("encode event %s/%s: %w", e.Event.EventName, e.Event.EventID, err)
	}
	rec, err := json.Marshal(record{Rule: e.Rule, Enqueued: now.UnixNano(), Attempts: attempts, Event: raw})
	if err != nil {
		return false, err
	}
	ob, err := sub(tx, bOutbox, e.Destination, true)
	if err != nil {
		return false, err
	}
	seq, err := ob.NextSequence()
	if err != nil {
		return false, err
	}
	if err := ob.Put(u64(seq), rec); err != nil {
		return false, err
	}
	if err := ids.Put(key, u64(seq)); err != nil {
		return false, err
	}
	return false, addCounter(tx, depthCounter(e.Destination), 1)
}

func depthCounter(dest string) string { return "outbox_depth/" + dest }
func deadCounter(dest string) string  { return "dead_letters/" + dest }

func addCounter(tx *bolt.Tx, name string, delta int64) error {
	b := tx.Bucket(bCounters)
	var v int64
	if raw := b.Get([]byte(name)); raw != nil {
		v = int64(binary.BigEndian.Uint64(raw))
	}
	return b.Put([]byte(name), u64(uint64(v+delta)))
}

// Checkpoint returns a source's last committed position (nil when none).
func (s *Store) Checkpoint(source string) (cdc.Position, error) {
	var pos cdc.Position
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bCheckpoints).Get([]byte(source)); v != nil {
			pos = append(cdc.Position(nil), v...)
		}
		return nil
	})
	return pos, err
}
