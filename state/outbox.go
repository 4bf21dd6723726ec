package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/capisync/capisync/internal/capi"
)

// Queued is an event waiting in an outbox.
type Queued struct {
	Seq      uint64
	Rule     string
	Event    capi.Event
	Enqueued time.Time
	Attempts int
}

// Pending returns up to max of the oldest events queued for dest, oldest
// first.
func (s *Store) Pending(dest string, max int) ([]Queued, error) {
	var out []Queued
	err := s.db.View(func(tx *bolt.Tx) error {
		ob, err := sub(tx, bOutbox, dest, false)
		if err != nil || ob == nil {
			return err
		}
		c := ob.Cursor()
		for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
			var rec record
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("outbox %s seq %d: %w", dest, binary.BigEndian.Uint64(k), err)
			}
			q := Queued{Seq: binary.BigEndian.Uint64(k), Rule: rec.Rule, Enqueued: time.Unix(0, rec.Enqueued), Attempts: rec.Attempts}
			if err := decodeEvent(rec.Event, &q.Event); err != nil {
				return fmt.Errorf("outbox %s seq %d: %w", dest, q.Seq, err)
			}
			out = append(out, q)
		}
		return nil
	})
	return out, err
}

// OutcomeStatus is what became of a queued event.
type OutcomeStatus int

// What became of a queued event.
const (
	Delivered OutcomeStatus = iota + 1
	DeadLettered
	Deferred
)

// Outcome is what became of one queued event.
type Outcome struct {
	Seq       uint64
	Status    OutcomeStatus
	Reason    string
	Code      int
	Subcode   int
	Message   string
	FBTraceID string
	Attempts  int // requests that carried it this time
}

// Settle records outcomes for dest in one transaction: delivered events
// leave the outbox (and are remembered for SentTTL), dead-lettered ones
// move to the dead letters, deferred ones stay with their attempts counted.
func (s *Store) Settle(dest string, outcomes []Outcome) error {
	now := s.now()
	return s.db.Update(func(tx *bolt.Tx) error {
		ob, err := sub(tx, bOutbox, dest, true)
		if err != nil {
			return err
		}
		ids, _ := sub(tx, bOutboxIDs, dest, true)
		sent, _ := sub(tx, bSent, dest, true)
		byTime, _ := sub(tx, bSentByTime, dest, true)
		for _, o := range outcomes {
			k := u64(o.Seq)
			v := ob.Get(k)
			if v == nil {
				continue // settled before (a repeated report)
			}
			var rec record
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("settle %s seq %d: %w", dest, o.Seq, err)
			}
			var ev capi.Event
			if err := decodeEvent(rec.Event, &ev); err != nil {
				return fmt.Errorf("settle %s seq %d: %w", dest, o.Seq, err)
			}
			if o.Attempts > 0 {
				rec.Attempts += o.Attempts
				if rec.First == 0 {
					rec.First = now.UnixNano()
				}
				rec.Last = now.UnixNano()
			}
			key := eventKey(&ev)
			switch o.Status {
			case Deferred:
				if o.Attempts > 0 {
					nv, err := json.Marshal(rec)
					if err != nil {
						return err
					}
					if err := ob.Put(k, nv); err != nil {
						return err
					}
				}
				continue
			case Delivered:
				ts := u64(uint64(now.UnixNano()))
				if err := sent.Put(key, ts); err != nil {
					return err
				}
				if err := byTime.Put(append(ts, k...), key); err != nil {
					return err
				}
			case DeadLettered:
				dl := DeadLetter{Destination: dest, Rule: rec.Rule, Event: &ev, Reason: o.Reason,
					Code: o.Code, Subcode: o.Subcode, Message: o.Message, FBTraceID: o.FBTraceID,
					Attempts: rec.Attempts, Enqueued: time.Unix(0, rec.Enqueued).UTC()}
				if rec.First != 0 {
					dl.FirstAttempt, dl.LastAttempt = time.Unix(0, rec.First).UTC(), time.Unix(0, rec.Last).UTC()
				}
				if err := putDead(tx, dl, now); err != nil {
					return err
				}
			default:
				return fmt.Errorf("settle %s seq %d: unknown status %d", dest, o.Seq, o.Status)
			}
			if err := ob.Delete(k); err != nil {
				return err
			}
			if seq := ids.Get(key); seq != nil && bytes.Equal(seq, k) {
				if err := ids.Delete(key); err != nil {
					return err
				}
			}
			if err := addCounter(tx, depthCounter(dest), -1); err != nil {
				return err
			}
		}
		return pruneSent(sent, byTime, now, 1000)
	})
}

// pruneSent forgets at most limit delivered ids older than SentTTL.
func pruneSent(sent, byTime *bolt.Bucket, now time.Time, limit int) error {
	cutoff := u64(uint64(now.Add(-SentTTL).UnixNano()))
	c := byTime.Cursor()
	for k, v := c.First(); k != nil && limit > 0 && bytes.Compare(k[:8], cutoff) < 0; k, v = c.First() {
		if t := sent.Get(v); t != nil && bytes.Equal(t, k[:8]) {
			if err := sent.Delete(v); err != nil {
				return err
			}
		}
		if err := c.Delete(); err != nil {
			return err
		}
		limit--
	}
	return nil
}

// decodeEvent reads a stored event keeping numbers as json.Number, so that
// money queued as 1234.50 is sent as 1234.50, digit for digit.
func decodeEvent(raw []byte, e *capi.Event) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(e)
}
