package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/capisync/capisync/internal/capi"
	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/state"
)

// Commit writes the batches — events, dead letters, shadows, counters and
// checkpoints — in one transaction: all of it is durable when Commit
// returns nil, and none of it when it returns an error.
func (s *Store) Commit(batches ...state.Batch) (state.CommitResult, error) {
	var res state.CommitResult
	now := s.now()
	// Shadows go to the delta trees (see shadow.go), in (table, key) order,
	// one bucket lookup per table: bbolt puts sorted keys into the same few
	// pages. Sorted and tagged before the transaction, which holds the
	// store's only writer lock; stable, so of two writes of one key the
	// later still wins.
	sorted := make([][]cdc.Shadow, len(batches))
	nShadows := 0
	// While the merger is behind (the delta over deltaMax), shadows go
	// straight to the main trees, so that the delta stays small.
	direct := s.merger.pending.Load() >= s.merger.max
	for i, b := range batches {
		sorted[i] = slices.Clone(b.Shadows)
		slices.SortStableFunc(sorted[i], func(x, y cdc.Shadow) int {
			if c := strings.Compare(x.Table, y.Table); c != 0 {
				return c
			}
			return bytes.Compare(x.Key, y.Key)
		})
		size := 0
		for _, sh := range b.Shadows {
			size += 1 + len(sh.Value)
		}
		tagged := make([]byte, 0, size)
		for j, sh := range sorted[i] {
			start := len(tagged)
			if sh.Value == nil {
				tagged = append(tagged, deltaDel)
			} else {
				tagged = append(append(tagged, deltaPut), sh.Value...)
			}
			sorted[i][j].Value = tagged[start:len(tagged):len(tagged)]
		}
		nShadows += len(b.Shadows)
	}
	err := s.update(func(tx *bolt.Tx, ids *idTx) error {
		res = state.CommitResult{}
		depth := map[string]int64{}
		q := newEnqueuer(tx, ids, now)
		n := 0
		for _, b := range batches {
			n += len(b.Events)
		}
		q.queued = make([]state.Queued, 0, n) // most are queued: one allocation, not a doubling series
		for bi, b := range batches {
			for i := range b.Events {
				dup, err := q.add(&b.Events[i], 0)
				if !dup && err == nil {
					depth[b.Events[i].Destination]++
				}
				if err != nil {
					return fmt.Errorf("commit %s: %w", b.Source, err)
				}
				res.Tally(b.Events[i].Rule, dup)
			}
			for _, dl := range b.DeadLetters {
				if err := putDead(tx, dl, now); err != nil {
					return fmt.Errorf("commit %s: %w", b.Source, err)
				}
			}
			if err := putShadows(tx, b.Source, sorted[bi], direct); err != nil {
				return fmt.Errorf("commit %s: %w", b.Source, err)
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
		res.Queued = q.queued
		for rule, n := range res.Repeats {
			if err := addCounter(tx, state.RepeatCounter(rule), int64(n)); err != nil {
				return err
			}
		}
		for dest, n := range depth {
			if err := addCounter(tx, state.DepthCounter(dest), n); err != nil {
				return err
			}
		}
		return s.pruneWindows(tx, now)
	})
	if err == nil && !direct {
		s.merger.wrote(nShadows)
	}
	return res, err
}

// enqueuer adds events to outboxes within one write transaction, looking
// each destination's buckets up once and encoding into one scratch buffer.
//
// An event is skipped when the same (event_name, event_id) is still queued
// or was queued within state.SentTTL: the id memory (ids.go) serves both with one
// entry appended at enqueue. Delivering an event leaves its entry alone —
// settling touches only the outbox's oldest pages — and pruneIDs forgets
// it once it is out of the outbox and state.SentTTL old.
type enqueuer struct {
	tx      *bolt.Tx
	ids     *idTx
	now     time.Time
	buckets map[string][2]*bolt.Bucket // destination -> outbox, id log
	scratch bytes.Buffer
	queued  []state.Queued // the events queued from Encode'd records
}

func newEnqueuer(tx *bolt.Tx, ids *idTx, now time.Time) *enqueuer {
	return &enqueuer{tx: tx, ids: ids, now: now, buckets: map[string][2]*bolt.Bucket{}}
}

func (q *enqueuer) add(e *state.Enqueue, attempts int) (dup bool, err error) {
	bk, ok := q.buckets[e.Destination]
	if !ok {
		if bk[0], err = sub(q.tx, bOutbox, e.Destination, true); err != nil {
			return false, err
		}
		if bk[1], err = sub(q.tx, bIDLog, e.Destination, true); err != nil {
			return false, err
		}
		// Both are keyed by sequence numbers, which only grow: fill
		// pages instead of splitting them in half, which keeps the file
		// (and its mapped pages) small.
		bk[0].FillPercent, bk[1].FillPercent = 0.95, 0.95
		q.buckets[e.Destination] = bk
	}
	ob, log := bk[0], bk[1]
	key := e.Event.EventName + "\x00" + e.Event.EventID
	h := q.ids.x.hash(key)
	if seq, at, found := q.ids.find(e.Destination, ob, log, key, h); found {
		if isRemembered(ob, seq, at, q.now) {
			return true, nil // queued, or sent within Meta's de-duplication window
		}
		// Forgotten but not yet pruned: the new entry replaces it.
		if err := q.ids.forget(e.Destination, log, h, seq); err != nil {
			return false, err
		}
	}
	js := e.JSON
	if js == nil {
		q.scratch.Reset()
		if err := capi.AppendJSON(&q.scratch, &e.Event); err != nil {
			return false, fmt.Errorf("encode event %s/%s: %w", e.Event.EventName, e.Event.EventID, err)
		}
		js = q.scratch.Bytes()
	}
	r := record{Rule: e.Rule, Enqueued: q.now.UnixNano(), Attempts: uint32(attempts), EventTime: e.Event.EventTime,
		EventName: e.Event.EventName, EventID: e.Event.EventID, ActionSource: e.Event.ActionSource}
	// The record is built in the transaction's arena: bbolt keeps the
	// slice until the commit.
	rec := q.ids.alloc(r.headerLen() + len(js))
	copy(rec[len(r.appendTo(rec[:0])):], js)
	seq, err := ob.NextSequence()
	if err != nil {
		return false, err
	}
	k := q.ids.alloc(8)
	binary.BigEndian.PutUint64(k, seq)
	if err := ob.Put(k, rec); err != nil {
		return false, err
	}
	if e.JSON != nil {
		q.queued = append(q.queued, state.Queued{Seq: seq, Destination: e.Destination, Rule: e.Rule, EventName: e.Event.EventName,
			EventID: e.Event.EventID, EventTime: e.Event.EventTime, ActionSource: e.Event.ActionSource,
			JSON: e.JSON[:len(e.JSON):len(e.JSON)], Enqueued: q.now, Attempts: attempts})
	}
	return false, q.ids.put(e.Destination, log, key, h, seq, q.now)
}

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

// ForgetCheckpoint removes source's checkpoint and returns what it was
// (nil when there was none): the source then starts from its beginning,
// as a new one does. For an operator who accepts a gap, such as after
// a logical source's slot was dropped.
func (s *Store) ForgetCheckpoint(source string) (cdc.Position, error) {
	var pos cdc.Position
	err := s.db.Update(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bCheckpoints).Get([]byte(source)); v != nil {
			pos = append(cdc.Position(nil), v...)
		}
		if err := tx.Bucket(bCheckpoints).Delete([]byte(source)); err != nil {
			return err
		}
		return tx.Bucket(bCheckpointTimes).Delete([]byte(source))
	})
	return pos, err
}

func (s *Store) pruneWindows(tx *bolt.Tx, now time.Time) error {
	hour := now.Unix() / 3600
	if hour == s.prunedHour {
		return nil
	}
	s.prunedHour = hour
	oldest := (now.Add(-state.WindowRetention).Unix()) / 3600
	c := tx.Bucket(bCounters).Cursor()
	prefix := []byte("h/")
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); {
		rest := k[2:]
		i := bytes.IndexByte(rest, '/')
		if h, err := strconv.ParseInt(string(rest[:max(i, 0)]), 10, 64); i > 0 && err == nil && h < oldest {
			key := append([]byte(nil), k...)
			if err := c.Delete(); err != nil {
				return err
			}
			k, _ = c.Seek(key)
			continue
		}
		k, _ = c.Next()
	}
	return nil
}
