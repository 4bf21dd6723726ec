package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/capisync/capisync/internal/gctune"
	"github.com/capisync/capisync/state"
)

// The id memory: which (event_name, event_id) pairs were queued for a
// destination in the last state.SentTTL, or are still queued.
//
// On disk it is a log in queueing order, id_log/<dest>: the event's
// outbox sequence number -> queued unix nanos (8 BE) + event_name 0x00
// event_id. A commit only appends to it, so its cost does not depend on
// what the ids look like (a hash scatters over an index in key order,
// "lead-1", "lead-2" do not) nor on how many are remembered; pruning
// deletes from its front.
//
// In memory, per destination, a state.IDMemory (hashes with a per-process
// seed): a match counts once the log entry at its sequence number holds
// the same key. It is built from the log when the store opens and changed
// only after a transaction committed (idTx), under the store's writer
// lock, so it never holds what the file does not.

// idIndex is the store's id memory, all destinations.
type idIndex struct {
	seed  maphash.Seed
	dests map[string]*state.IDMemory
}

func newIDIndex() *idIndex {
	return &idIndex{seed: maphash.MakeSeed(), dests: map[string]*state.IDMemory{}}
}

func (x *idIndex) hash(key string) uint32 { return uint32(maphash.String(x.seed, key)) }

func (x *idIndex) dest(name string) *state.IDMemory {
	m := x.dests[name]
	if m == nil {
		m = state.NewIDMemory(0)
		x.dests[name] = m
	}
	return m
}

// lookup finds the log entry that holds key (whose hash is h) in m: its
// sequence number and queued time. ob is the destination's outbox, for
// the current sequence number.
func lookup(m *state.IDMemory, ob, log *bolt.Bucket, key string, h uint32) (seq uint64, queued time.Time, ok bool) {
	var buf [4]uint64
	cands := m.Candidates(buf[:0], h, ob.Sequence())
	for i := len(cands) - 1; i >= 0; i-- { // the latest first
		if at, ok := entry(log, cands[i], key); ok {
			return cands[i], at, true
		}
	}
	return 0, time.Time{}, false
}

// size is how many ids dest's memory holds.
func (x *idIndex) size(dest string) int { return x.dests[dest].Len() }

// load builds the memory from the file's logs.
func (x *idIndex) load(tx *bolt.Tx) error {
	x.dests = map[string]*state.IDMemory{}
	return eachDest(tx, bIDLog, "", func(dest string, log *bolt.Bucket) error {
		// Sized for the sequence numbers the log spans (an upper bound:
		// some in between may be gone), so that it does not grow in steps.
		c := log.Cursor()
		first, _ := c.First()
		last, _ := c.Last()
		n := 0
		if first != nil {
			n = int(min(binary.BigEndian.Uint64(last)-binary.BigEndian.Uint64(first)+1, 1<<26))
		}
		m := state.NewIDMemory(n)
		x.dests[dest] = m
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 8 || len(v) < 8 {
				return fmt.Errorf("id log %s: malformed entry %x", dest, k)
			}
			m.Add(uint32(maphash.Bytes(x.seed, v[8:])), binary.BigEndian.Uint64(k))
		}
		return nil
	})
}

// idChange is an id added to or removed from a destination's memory.
type idChange struct {
	dest string
	h    uint32
	seq  uint64
	add  bool
}

// idTx is the id memory as one write transaction sees it: the committed
// memory, the transaction's file, and the changes it made, which apply
// runs once the transaction committed.
type idTx struct {
	x       *idIndex
	added   map[string]*state.IDMemory // per destination, the ids this transaction queued
	changes []idChange
	arena   []byte
}

func (x *idIndex) begin() *idTx { return &idTx{x: x} }

// find returns the log entry that remembers key (whose hash is h) for
// dest, if any: its sequence number and when it was queued. ob is dest's
// outbox, log its id log. An entry this transaction forgot is gone from
// the log it reads, so it is not found.
func (t *idTx) find(dest string, ob, log *bolt.Bucket, key string, h uint32) (seq uint64, queued time.Time, ok bool) {
	if seq, at, ok := lookup(t.added[dest], ob, log, key, h); ok {
		return seq, at, true
	}
	return lookup(t.x.dests[dest], ob, log, key, h)
}

// entry reads the log entry at seq and says whether it holds key.
func entry(log *bolt.Bucket, seq uint64, key string) (time.Time, bool) {
	v := log.Get(u64(seq))
	if len(v) < 8 || string(v[8:]) != key {
		return time.Time{}, false
	}
	return queuedTime(v), true
}

// queuedTime reads an id log value's queued time (zero when unknown: a
// schema-1 store did not record it).
func queuedTime(v []byte) time.Time {
	if len(v) < 8 {
		return time.Time{}
	}
	if n := int64(binary.BigEndian.Uint64(v)); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// alloc returns n bytes of the transaction's arena: the keys and values
// put in a transaction must live until it commits, and one allocation
// per 64 KiB is kinder to the collector than two per event.
func (t *idTx) alloc(n int) []byte {
	if cap(t.arena)-len(t.arena) < n {
		t.arena = make([]byte, 0, max(64<<10, n))
	}
	start := len(t.arena)
	t.arena = t.arena[:start+n]
	return t.arena[start : start+n : start+n]
}

// put remembers key (whose hash is h) for dest at seq, queued at.
func (t *idTx) put(dest string, log *bolt.Bucket, key string, h uint32, seq uint64, at time.Time) error {
	k := t.alloc(8)
	binary.BigEndian.PutUint64(k, seq)
	v := appendIDLogValue(t.alloc(8 + len(key))[:0], at, key)
	if err := log.Put(k, v); err != nil {
		return fmt.Errorf("id log %s: %w", dest, err)
	}
	m := t.added[dest]
	if m == nil {
		if t.added == nil {
			t.added = map[string]*state.IDMemory{}
		}
		m = state.NewIDMemory(0)
		t.added[dest] = m
	}
	m.Add(h, seq)
	t.changes = append(t.changes, idChange{dest: dest, h: h, seq: seq, add: true})
	return nil
}

// forget removes the log entry at seq, which holds a key whose hash is h,
// for dest.
func (t *idTx) forget(dest string, log *bolt.Bucket, h uint32, seq uint64) error {
	if err := log.Delete(u64(seq)); err != nil {
		return fmt.Errorf("id log %s: %w", dest, err)
	}
	if m := t.added[dest]; m != nil {
		m.Remove(h, seq)
	}
	t.changes = append(t.changes, idChange{dest: dest, h: h, seq: seq})
	return nil
}

// apply brings the memory up to the committed transaction, in order.
func (t *idTx) apply() {
	for _, c := range t.changes {
		if c.add {
			t.x.dest(c.dest).Add(c.h, c.seq)
		} else if m := t.x.dests[c.dest]; m != nil {
			m.Remove(c.h, c.seq)
		}
	}
}

// idLogValue is an id log value.
func idLogValue(queued time.Time, key []byte) []byte {
	return appendIDLogValue(make([]byte, 0, 8+len(key)), queued, string(key))
}

// appendIDLogValue appends an id log value: the queued time (0 when
// unknown), then the key.
func appendIDLogValue(b []byte, queued time.Time, key string) []byte {
	n := int64(0)
	if !queued.IsZero() {
		n = queued.UnixNano()
	}
	return append(binary.BigEndian.AppendUint64(b, uint64(n)), key...)
}

// isRemembered says whether an id queued at (zero: unknown) under seq
// still stands for its event at now: queued within state.SentTTL, or still in
// the outbox ob.
func isRemembered(ob *bolt.Bucket, seq uint64, at, now time.Time) bool {
	if !at.IsZero() && now.Sub(at) < state.SentTTL {
		return true
	}
	return ob.Get(u64(seq)) != nil
}

// update runs fn in a write transaction with the id memory, and applies
// the id changes once the transaction committed. The writer lock spans
// both, so that the next transaction sees the memory as the file is.
func (s *Store) update(fn func(tx *bolt.Tx, ids *idTx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var ids *idTx
	err := s.db.Update(func(tx *bolt.Tx) error {
		ids = s.ids.begin() // afresh: bbolt may run fn again
		return fn(tx, ids)
	})
	if err == nil {
		ids.apply()
		s.reserveIDMemory()
	}
	return err
}

// idBytes is what one remembered id costs the heap, at most: a Go map of
// uint32 to uint32 holds 8 bytes and a control byte per slot, from 7/16
// to 7/8 full, so 10 to 21 bytes.
const idBytes = 24

// reserveIDMemory tells the collector's tuning how much heap the id
// memory holds (see gctune.Reserve), when it changed by a sixteenth.
func (s *Store) reserveIDMemory() {
	n := int64(0)
	for _, m := range s.ids.dests {
		n += m.Cost()
	}
	if d := n - s.idsReserved; d > s.idsReserved/16+4096 || -d > s.idsReserved/16+4096 {
		s.idsReserved = n
		gctune.Reserve("ids "+s.path, n*idBytes)
	}
}

// pruneIDs forgets id log entries that no longer stand for an event (see
// isRemembered), looking at no more than limit entries per call from the
// log's front, where the oldest are. It stops at the first entry queued
// within state.SentTTL (all later ones are younger); entries still queued are
// stepped over, and the next call resumes after them.
func (s *Store) pruneIDs(ids *idTx, dest string, ob, log *bolt.Bucket, now time.Time, limit int) error {
	c := log.Cursor()
	var k, v []byte
	if from := s.prunePos[dest]; from != nil {
		k, v = c.Seek(from)
	} else {
		k, v = c.First()
	}
	for ; limit > 0; limit-- {
		if k == nil {
			s.prunePos[dest] = nil
			return nil
		}
		at := queuedTime(v)
		if !at.IsZero() && now.Sub(at) < state.SentTTL {
			s.prunePos[dest] = nil // the rest is younger: start at the front next time
			return nil
		}
		if ob.Get(k) == nil {
			seq, key := binary.BigEndian.Uint64(k), string(v[8:])
			if err := ids.forget(dest, log, ids.x.hash(key), seq); err != nil {
				return err
			}
			k, v = c.Seek(u64(seq + 1))
			continue
		}
		k, v = c.Next()
	}
	s.prunePos[dest] = bytes.Clone(k)
	return nil
}

// migrateIDLog (schema 4 -> 5) moves outbox_ids, an index in key order,
// to id_log in sequence order. An entry a schema-1 store wrote after
// delivery has no sequence number; it gets a fresh one from the outbox.
func migrateIDLog(tx *bolt.Tx) error {
	old := tx.Bucket(bOutboxIDs)
	if old == nil {
		return nil
	}
	if err := old.ForEachBucket(func(dest []byte) error {
		log, err := sub(tx, bIDLog, string(dest), true)
		if err != nil {
			return err
		}
		ob, err := sub(tx, bOutbox, string(dest), true)
		if err != nil {
			return err
		}
		return old.Bucket(dest).ForEach(func(k, v []byte) error {
			seq, at := parseID(v)
			if seq == 0 {
				if seq, err = ob.NextSequence(); err != nil {
					return err
				}
			}
			return log.Put(u64(seq), idLogValue(at, k))
		})
	}); err != nil {
		return err
	}
	return tx.DeleteBucket(bOutboxIDs)
}

// parseID reads a schema 1-4 outbox_ids value: the sequence number (0
// when unknown) and the time its state.SentTTL runs from (zero when unknown).
// Schema 1 wrote the bare sequence number while queued and 0xFF + the
// delivery time once delivered; later ones, sequence number + queued time.
func parseID(v []byte) (seq uint64, at time.Time) {
	switch {
	case len(v) == 16:
		return binary.BigEndian.Uint64(v), time.Unix(0, int64(binary.BigEndian.Uint64(v[8:])))
	case len(v) == 9 && v[0] == 0xFF:
		return 0, time.Unix(0, int64(binary.BigEndian.Uint64(v[1:])))
	case len(v) == 8:
		return binary.BigEndian.Uint64(v), time.Time{}
	}
	return 0, time.Time{}
}
