package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/capisync/capisync/internal/capi"
	"github.com/capisync/capisync/state"
)

// Pending returns up to max of the oldest events queued for dest, oldest
// first.
func (s *Store) Pending(dest string, max int) ([]state.Queued, error) {
	return s.PendingAfter(dest, 0, max)
}

// LastSeq returns the sequence number of the last event ever queued for
// dest (0 when none): one read of the outbox bucket's sequence.
func (s *Store) LastSeq(dest string) (uint64, error) {
	var seq uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if ob, err := sub(tx, bOutbox, dest, false); err != nil || ob == nil {
			return err
		} else {
			seq = ob.Sequence()
		}
		return nil
	})
	return seq, err
}

// PendingAfter returns up to max of the oldest events queued for dest
// whose sequence number is above after, oldest first: a sender with
// batches in flight reads on from the last event it took.
func (s *Store) PendingAfter(dest string, after uint64, max int) ([]state.Queued, error) {
	out := make([]state.Queued, 0, min(max, 1024))
	var arena []byte // the events' JSON, copied out of the transaction in few allocations
	err := s.db.View(func(tx *bolt.Tx) error {
		ob, err := sub(tx, bOutbox, dest, false)
		if err != nil || ob == nil {
			return err
		}
		c := ob.Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
			rec, err := decodeRecord(v)
			if err != nil {
				return fmt.Errorf("outbox %s seq %d: %w", dest, binary.BigEndian.Uint64(k), err)
			}
			out = append(out, state.Queued{Seq: binary.BigEndian.Uint64(k), Rule: rec.Rule, EventName: rec.EventName, EventID: rec.EventID,
				EventTime: rec.EventTime, ActionSource: rec.ActionSource, JSON: take(&arena, rec.Event),
				Enqueued: time.Unix(0, rec.Enqueued), Attempts: int(rec.Attempts)})
		}
		return nil
	})
	return out, err
}

// take copies b into the free end of *arena, starting a new 256 KiB arena
// when it does not fit, and returns the copy (its capacity capped, so that
// appending to it never writes into the next copy).
func take(arena *[]byte, b []byte) []byte {
	if cap(*arena)-len(*arena) < len(b) {
		*arena = make([]byte, 0, max(256<<10, len(b)))
	}
	start := len(*arena)
	*arena = append(*arena, b...)
	return (*arena)[start:len(*arena):len(*arena)]
}

// Settle records outcomes for dest in one transaction: delivered events
// leave the outbox (their ids stay remembered for state.SentTTL, see enqueuer),
// dead-lettered ones move to the dead letters, deferred ones stay with their
// attempts counted. A delivered event is only deleted: its record is not
// read, and the id memory is not written.
func (s *Store) Settle(dest string, outcomes []state.Outcome) error {
	now := s.now()
	return s.update(func(tx *bolt.Tx, ids *idTx) error {
		ob, err := sub(tx, bOutbox, dest, true)
		if err != nil {
			return err
		}
		log, err := sub(tx, bIDLog, dest, true)
		if err != nil {
			return err
		}
		removed := int64(0)
		c := ob.Cursor() // one cursor: its search stack is reused
		for _, o := range outcomes {
			k := u64(o.Seq)
			if got, _ := c.Seek(k); !bytes.Equal(got, k) {
				continue // settled before (a repeated report)
			}
			if o.Status == state.Delivered {
				if err := c.Delete(); err != nil {
					return err
				}
				removed++
				continue
			}
			rec, err := decodeRecord(ob.Get(k))
			if err != nil {
				return fmt.Errorf("settle %s seq %d: %w", dest, o.Seq, err)
			}
			if o.Attempts > 0 {
				rec.Attempts += uint32(o.Attempts)
				if rec.First == 0 {
					rec.First = now.UnixNano()
				}
				rec.Last = now.UnixNano()
			}
			switch o.Status {
			case state.Deferred:
				if o.Attempts > 0 {
					if err := ob.Put(k, rec.encode()); err != nil {
						return err
					}
				}
				continue
			case state.DeadLettered:
				var ev capi.Event
				if err := state.DecodeEvent(rec.Event, &ev); err != nil {
					return fmt.Errorf("settle %s seq %d: %w", dest, o.Seq, err)
				}
				dl := state.DeadLetter{Destination: dest, Rule: rec.Rule, Event: &ev, Reason: o.Reason,
					Code: o.Code, Subcode: o.Subcode, Message: o.Message, FBTraceID: o.FBTraceID,
					Attempts: int(rec.Attempts), Enqueued: time.Unix(0, rec.Enqueued).UTC()}
				if rec.First != 0 {
					dl.FirstAttempt, dl.LastAttempt = time.Unix(0, rec.First).UTC(), time.Unix(0, rec.Last).UTC()
				}
				if err := putDead(tx, dl, now); err != nil {
					return err
				}
				// Forgotten, so that the same change read again (or a
				// retried dead letter) is queued again.
				key := rec.EventName + "\x00" + rec.EventID
				if err := ids.forget(dest, log, ids.x.hash(key), o.Seq); err != nil {
					return err
				}
			default:
				return fmt.Errorf("settle %s seq %d: unknown status %d", dest, o.Seq, o.Status)
			}
			if err := ob.Delete(k); err != nil {
				return err
			}
			removed++
		}
		if err := addCounter(tx, state.DepthCounter(dest), -removed); err != nil {
			return err
		}
		return s.pruneIDs(ids, dest, ob, log, now, 256)
	})
}
