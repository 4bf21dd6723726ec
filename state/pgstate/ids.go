package pgstate

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/capisync/capisync/state"
)

// The id memory: the ids table holds, per commit and destination, the
// keys queued (a page), their hashes (keyHash, 4 bytes each) and a
// forgotten bitmap. The store looks keys up in a state.IDMemory per
// destination, built from the stored hashes by the first write after the
// store opens or takes the lease with a new epoch (another daemon may
// have written in between), and changed only after a transaction
// committed. A candidate counts once its page holds the same key, not
// forgotten, and still remembered (queued within SentTTL, or still
// queued): one read per commit that has candidates, none otherwise.

// idMemory is the store's id memory, every destination's.
type idMemory struct {
	mu     sync.Mutex
	loaded bool
	epoch  int64                      // the fence epoch it was loaded under
	dests  map[string]*state.IDMemory // by destination
	last   map[string]uint64          // the last sequence number per destination
	pruned map[string]time.Time       // when pruneIDs last ran, per destination
}

// idChange is a change to the memory that applies once its transaction
// committed.
type idChange struct {
	dest   string
	h      uint32
	seq    uint64
	forget bool
}

// apply brings the memory up to a committed transaction's changes.
func (m *idMemory) apply(changes []idChange, last map[string]uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.loaded {
		return // the next write loads what was committed
	}
	for _, c := range changes {
		d := m.dests[c.dest]
		if d == nil {
			d = state.NewIDMemory(0)
			m.dests[c.dest] = d
		}
		if c.forget {
			d.Remove(c.h, c.seq)
		} else {
			d.Add(c.h, c.seq)
		}
	}
	for dest, l := range last {
		m.last[dest] = max(m.last[dest], l)
	}
}

// lastSeq is dest's last sequence number, known when the memory was
// loaded under epoch: only the store that holds the lease gives numbers.
func (m *idMemory) lastSeq(epoch int64, dest string) (uint64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.loaded || m.epoch != epoch {
		return 0, false
	}
	return m.last[dest], true
}

// epoch is the lease epoch the store is fenced with (0: none).
func (s *Store) epoch() int64 {
	if f := s.fence.Load(); f != nil {
		return f.epoch
	}
	return 0
}

// loadIDs builds the memory in tx unless it was built under the epoch the
// store is fenced with (0: none).
func (s *Store) loadIDs(ctx context.Context, tx querier) error {
	epoch := s.epoch()
	s.ids.mu.Lock()
	fresh := s.ids.loaded && s.ids.epoch == epoch
	s.ids.mu.Unlock()
	if fresh {
		return nil
	}
	dests, last := map[string]*state.IDMemory{}, map[string]uint64{}
	rows, err := tx.Query(ctx, s.sql("SELECT dest, first_seq, n, hashes, forgotten FROM %s.ids ORDER BY dest, first_seq"))
	if err != nil {
		return fmt.Errorf("load the id memory: %w", err)
	}
	var dest string
	var first int64
	var n int32
	var hashes, forgotten []byte
	_, err = pgx.ForEachRow(rows, []any{&dest, &first, &n, &hashes, &forgotten}, func() error {
		if len(hashes) != 4*int(n) {
			return fmt.Errorf("ids page %s/%d: %d bytes of hashes for %d keys", dest, first, len(hashes), n)
		}
		m := dests[dest]
		if m == nil {
			m = state.NewIDMemory(0)
			dests[dest] = m
		}
		for i := range int(n) {
			if !bitmap(forgotten).has(i) {
				m.Add(binary.LittleEndian.Uint32(hashes[4*i:]), uint64(first)+uint64(i))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load the id memory: %w", err)
	}
	rows, err = tx.Query(ctx, s.sql("SELECT substr(name, 8), last FROM %s.sequences WHERE name LIKE 'outbox/%%'"))
	if err != nil {
		return fmt.Errorf("load the id memory: %w", err)
	}
	var l int64
	if _, err := pgx.ForEachRow(rows, []any{&dest, &l}, func() error { last[dest] = uint64(l); return nil }); err != nil {
		return fmt.Errorf("load the id memory: %w", err)
	}
	s.ids.mu.Lock()
	s.ids.loaded, s.ids.epoch, s.ids.dests, s.ids.last = true, epoch, dests, last
	s.ids.mu.Unlock()
	return nil
}

// idMatch is a stored entry of a key: its page, its place there, when it
// was queued, and the page's outbox done bitmap (nil: the outbox page is
// gone, every event of it settled).
type idMatch struct {
	first  int64
	i      int
	queued time.Time
	done   bitmap
}

// remembered says whether the entry stands for its event at now.
func (m idMatch) remembered(now time.Time) bool { return remembered(m.queued, now, m.done, m.i) }

// settled says whether the entry's event left the outbox.
func (m idMatch) settled() bool { return m.done == nil || m.done.has(m.i) }

// findIDs returns, for each of dest's keys (whose keyHash are hashes), its
// entries that are not forgotten (usually none or one).
func (s *Store) findIDs(ctx context.Context, tx querier, dest string, keys []string, hashes []uint32) ([][]idMatch, error) {
	found := make([][]idMatch, len(keys))
	s.ids.mu.Lock()
	m, last := s.ids.dests[dest], s.ids.last[dest]
	cands := make([][]uint64, len(keys))
	var seqs []int64
	for i := range keys {
		cands[i] = m.Candidates(nil, hashes[i], last)
		for _, c := range cands[i] {
			seqs = append(seqs, int64(c))
		}
	}
	s.ids.mu.Unlock()
	if len(seqs) == 0 {
		return found, nil
	}
	// The pages that hold the candidates, with their outbox pages' done
	// bitmaps.
	rows, err := tx.Query(ctx, s.sql(`SELECT i.first_seq, i.n, i.queued, i.keys, i.forgotten, o.done FROM %s.ids i
		LEFT JOIN %s.outbox o ON o.dest = i.dest AND o.first_seq = i.first_seq
		WHERE i.dest = $1 AND i.first_seq IN (SELECT (SELECT max(first_seq) FROM %s.ids WHERE dest = $1 AND first_seq <= c)
			FROM unnest($2::bigint[]) AS c)`), dest, seqs)
	if err != nil {
		return nil, fmt.Errorf("look up ids for %s: %w", dest, err)
	}
	type page struct {
		first     int64
		queued    time.Time
		keys      []string
		forgotten bitmap
		done      bitmap
	}
	var pages []page
	var p page
	var n int32
	var keyBlob, forgotten, done []byte
	if _, err := pgx.ForEachRow(rows, []any{&p.first, &n, &p.queued, &keyBlob, &forgotten, &done}, func() error {
		var err error
		if p.keys, err = pageKeys(keyBlob); err != nil || len(p.keys) != int(n) {
			return fmt.Errorf("ids page %s/%d: %d keys of %d (%v)", dest, p.first, len(p.keys), n, err)
		}
		p.forgotten, p.done = bytes.Clone(forgotten), nil
		if done != nil {
			p.done = bytes.Clone(done)
		}
		pages = append(pages, p)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("look up ids for %s: %w", dest, err)
	}
	for i, k := range keys {
		for _, c := range cands[i] {
			for _, p := range pages {
				j := int64(c) - p.first
				if j < 0 || j >= int64(len(p.keys)) || p.keys[j] != k || p.forgotten.has(int(j)) {
					continue
				}
				found[i] = append(found[i], idMatch{first: p.first, i: int(j), queued: p.queued, done: p.done})
			}
		}
	}
	return found, nil
}

// forget marks entries forgotten in their ids pages; the memory forgets
// them once w commits.
func (s *Store) forget(ctx context.Context, w *wtx, dest string, entries []idMatch, hashes []uint32) error {
	if len(entries) == 0 {
		return nil
	}
	firsts := make([]int64, 0, len(entries))
	for _, e := range entries {
		firsts = append(firsts, e.first)
	}
	rows, err := w.Query(ctx, s.sql("SELECT first_seq, forgotten FROM %s.ids WHERE dest = $1 AND first_seq = ANY($2) FOR UPDATE"), dest, firsts)
	if err != nil {
		return err
	}
	bits := map[int64]bitmap{}
	var first int64
	var b []byte
	if _, err := pgx.ForEachRow(rows, []any{&first, &b}, func() error { bits[first] = bytes.Clone(b); return nil }); err != nil {
		return err
	}
	for k, e := range entries {
		if bm, ok := bits[e.first]; ok {
			bm.set(e.i)
			w.changes = append(w.changes, idChange{dest: dest, h: hashes[k], seq: uint64(e.first) + uint64(e.i), forget: true})
		}
	}
	firsts, bms := firsts[:0], make([][]byte, 0, len(bits))
	for f, bm := range bits {
		firsts, bms = append(firsts, f), append(bms, bm)
	}
	_, err = w.Exec(ctx, s.sql(`UPDATE %s.ids i SET forgotten = u.b FROM unnest($2::bigint[], $3::bytea[]) AS u(f, b)
		WHERE i.dest = $1 AND i.first_seq = u.f`), dest, firsts, bms)
	return err
}
