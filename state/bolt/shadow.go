package bolt

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/capisync/capisync/internal/cdc"
)

// Shadows live in two trees per table: shadows/<source>\x00<table>, the
// main tree, and shadow_delta/<source>\x00<table>, where Commit writes.
//
// A commit's shadows are usually scattered over a big table's keys (the
// rows that changed since the last poll). Written into the main tree, each
// would rewrite a page of its own: 16 KiB, and the page's every entry
// decoded and encoded again, for a shadow of some 60 bytes. The delta tree
// stays small, so a commit rewrites few pages. The store merges the delta
// into the main tree in the background (merger), in key order and in
// chunks, once commits pause or the delta has grown past deltaMax; a chunk
// of sorted keys falls on neighbouring pages, so each main page is
// rewritten once for many shadows.
//
// A delta value is a tag byte, then the value: deltaPut followed by the
// shadow, or deltaDel alone for a deleted row whose main entry the merge
// will remove.
const (
	deltaPut byte = 'v'
	deltaDel byte = 'd'
)

// putShadows writes a commit's shadows of source, sorted by table and key
// and tagged, to the delta trees, or with direct set to the main trees
// (dropping any older delta entry of the key, which reads would see first).
func putShadows(tx *bolt.Tx, source string, shadows []cdc.Shadow, direct bool) error {
	var delta, main *bolt.Bucket
	var err error
	for i, sh := range shadows {
		if i == 0 || sh.Table != shadows[i-1].Table {
			name := source + "\x00" + sh.Table
			if delta, err = sub(tx, bShadowDelta, name, !direct); err != nil {
				return err
			}
			if direct {
				if main, err = sub(tx, bShadows, name, true); err != nil {
					return err
				}
			}
		}
		switch {
		case !direct:
			err = delta.Put(sh.Key, sh.Value)
		case delta != nil:
			err = delta.Delete(sh.Key)
		}
		if err == nil && direct {
			if sh.Value[0] == deltaPut {
				err = main.Put(sh.Key, sh.Value[1:])
			} else {
				err = main.Delete(sh.Key)
			}
		}
		if err != nil {
			return fmt.Errorf("shadow %s: %w", sh.Table, err)
		}
	}
	return nil
}

// shadowTrees returns source's table's main and delta trees, nil where the
// table has none yet.
func shadowTrees(tx *bolt.Tx, source, table string) (main, delta *bolt.Bucket, err error) {
	name := source + "\x00" + table
	if main, err = sub(tx, bShadows, name, false); err != nil {
		return nil, nil, err
	}
	delta, err = sub(tx, bShadowDelta, name, false)
	return main, delta, err
}

// Shadows returns the stored shadows of keys in source's table (nil where
// none is stored), read in one transaction.
func (s *Store) Shadows(source, table string, keys [][]byte) ([][]byte, error) {
	out := make([][]byte, len(keys))
	err := s.db.View(func(tx *bolt.Tx) error {
		main, delta, err := shadowTrees(tx, source, table)
		if err != nil {
			return err
		}
		if main == nil && delta == nil {
			return nil
		}
		// In key order, through one cursor per tree: neighbouring lookups
		// walk the same pages, which stay in the CPU's cache.
		order := make([]int, len(keys))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return bytes.Compare(keys[a], keys[b]) })
		var mc, dc *bolt.Cursor
		if main != nil {
			mc = main.Cursor()
		}
		if delta != nil {
			if dc = delta.Cursor(); !nonEmpty(dc) {
				dc = nil
			}
		}
		var arena []byte
		for _, i := range order {
			if dc != nil {
				if k, v := dc.Seek(keys[i]); v != nil && bytes.Equal(k, keys[i]) {
					if v[0] == deltaPut {
						out[i] = take(&arena, v[1:])
					}
					continue
				}
			}
			if mc != nil {
				if k, v := mc.Seek(keys[i]); v != nil && bytes.Equal(k, keys[i]) {
					out[i] = take(&arena, v)
				}
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
		main, delta, err := shadowTrees(tx, source, table)
		if err != nil {
			return err
		}
		var mk, mv, dk, dv []byte
		var mc, dc *bolt.Cursor
		if main != nil {
			mc = main.Cursor()
			mk, mv = mc.First()
		}
		if delta != nil {
			dc = delta.Cursor()
			dk, dv = dc.First()
		}
		// Both trees in step; where both hold a key, the delta's entry is
		// the newer.
		for mk != nil || dk != nil {
			c := -1
			switch {
			case mk == nil:
				c = 1
			case dk != nil:
				c = bytes.Compare(mk, dk)
			}
			if c < 0 {
				if err := fn(mk, mv); err != nil {
					return err
				}
				mk, mv = mc.Next()
				continue
			}
			if dv[0] == deltaPut {
				if err := fn(dk, dv[1:]); err != nil {
					return err
				}
			}
			if c == 0 {
				mk, mv = mc.Next()
			}
			dk, dv = dc.Next()
		}
		return nil
	})
}

// Merging the delta into the main tree.
const (
	// mergeChunk is how many delta entries one merge transaction moves:
	// few enough that it holds the writer lock briefly and its dirty pages
	// take little memory.
	mergeChunk = 5000
	// deltaMax is how many delta entries are merged without waiting for
	// commits to pause; past it, commits write to the main tree directly
	// until the merger has caught up, so that the delta stays small under a
	// steady load (a baseline of a big table, say).
	deltaMax = 50_000
)

// merger merges the delta in the background.
type merger struct {
	idle    time.Duration // how long commits must pause before a merge
	kick    chan struct{} // a commit wrote to the delta
	stop    chan struct{}
	done    chan struct{}
	max     int64        // deltaMax (tests lower it)
	pending atomic.Int64 // delta entries written and not yet merged (an upper bound)
	last    atomic.Int64 // unix nanos of the last commit that wrote shadows
	err     atomic.Pointer[error]
}

func (s *Store) startMerger(idle time.Duration) error {
	m := &merger{idle: idle, max: deltaMax, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bShadowDelta).ForEachBucket(func(name []byte) error {
			m.pending.Add(int64(tx.Bucket(bShadowDelta).Bucket(name).Stats().KeyN))
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("read shadow deltas: %w", err)
	}
	s.merger = m
	if idle < 0 {
		close(m.done) // merged only by FlushShadows
		return nil
	}
	go s.mergeLoop()
	if m.pending.Load() > 0 {
		m.kick <- struct{}{}
	}
	return nil
}

// wrote records that a commit wrote n delta entries.
func (m *merger) wrote(n int) {
	if n == 0 {
		return
	}
	m.pending.Add(int64(n))
	m.last.Store(time.Now().UnixNano())
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// mergeLoop merges after each kick until the delta is empty, a chunk at a
// time, each once commits have paused for m.idle (or at once while the
// delta is over deltaMax). A commit during a merge kicks again, so that
// what it wrote is merged too.
func (s *Store) mergeLoop() {
	m := s.merger
	defer close(m.done)
	for {
		select {
		case <-m.stop:
			return
		case <-m.kick:
		}
		for left := true; left; {
			if wait := time.Duration(m.last.Load() + int64(m.idle) - time.Now().UnixNano()); wait > 0 && m.pending.Load() < m.max {
				t := time.NewTimer(wait)
				select {
				case <-m.stop:
					t.Stop()
					return
				case <-t.C:
				}
				continue
			}
			var err error
			if left, err = s.mergeShadows(mergeChunk); err != nil {
				// Kept for Close to report; tried again at the next kick
				// (the next commit's) or in a while.
				m.err.Store(&err)
				select {
				case <-m.stop:
					return
				case <-m.kick:
				case <-time.After(10 * time.Second):
				}
				left = true
				continue
			}
			m.err.Store(nil)
			select {
			case <-m.stop:
				return
			default:
			}
		}
	}
}

// mergeShadows moves up to max delta entries, the first in key order of
// one table, into the main tree, in one transaction. left says whether
// delta entries remain.
func (s *Store) mergeShadows(max int) (left bool, err error) {
	moved := 0
	err = s.db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bShadowDelta)
		var name []byte
		var delta *bolt.Bucket
		err := root.ForEachBucket(func(n []byte) error {
			if b := root.Bucket(n); name == nil && nonEmpty(b.Cursor()) {
				name, delta = n, b
			}
			return nil
		})
		if err != nil || delta == nil {
			return err
		}
		main, err := sub(tx, bShadows, string(name), true)
		if err != nil {
			return err
		}
		// Copied out first: the delta's pages change as entries leave it.
		var keys, vals [][]byte
		var arena []byte
		c := delta.Cursor()
		for k, v := c.First(); k != nil && len(keys) < max; k, v = c.Next() {
			keys, vals = append(keys, take(&arena, k)), append(vals, take(&arena, v))
		}
		for i, k := range keys {
			if vals[i][0] == deltaPut {
				err = main.Put(k, vals[i][1:])
			} else {
				err = main.Delete(k)
			}
			if err == nil {
				err = delta.Delete(k)
			}
			if err != nil {
				return fmt.Errorf("merge shadows of %q: %w", name, err)
			}
		}
		moved = len(keys)
		return root.ForEachBucket(func(n []byte) error {
			left = left || nonEmpty(root.Bucket(n).Cursor())
			return nil
		})
	})
	if err != nil {
		return true, fmt.Errorf("merge shadow deltas: %w", err)
	}
	if left {
		s.merger.pending.Add(-int64(moved))
	} else {
		s.merger.pending.Store(0)
	}
	return left, nil
}

func nonEmpty(c *bolt.Cursor) bool {
	k, _ := c.First()
	return k != nil
}

// FlushShadows merges every shadow delta into the main trees now.
func (s *Store) FlushShadows() error {
	for {
		left, err := s.mergeShadows(mergeChunk)
		if err != nil || !left {
			return err
		}
	}
}

// upgradeShadowKeys rewrites the shadow keys of every table, in the main
// and delta trees, as cdc.EncodeKey writes them now.
func upgradeShadowKeys(tx *bolt.Tx) error {
	for _, top := range [][]byte{bShadows, bShadowDelta} {
		parent := tx.Bucket(top)
		if parent == nil {
			continue
		}
		var names [][]byte
		if err := parent.ForEach(func(k, v []byte) error {
			if v == nil { // a table's tree
				names = append(names, bytes.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, name := range names {
			if err := upgradeTreeKeys(parent, name); err != nil {
				return fmt.Errorf("shadows of %q: %w", strings.ReplaceAll(string(name), "\x00", "."), err)
			}
		}
	}
	return nil
}

// upgradeTreeKeys rebuilds one table's tree with upgraded keys, in their
// new order, when any key changes.
func upgradeTreeKeys(parent *bolt.Bucket, name []byte) error {
	tree := parent.Bucket(name)
	// First whether any key changes (a text-keyed table's do not), without
	// copying the tree.
	changed := false
	c := tree.Cursor()
	for k, _ := c.First(); k != nil && !changed; k, _ = c.Next() {
		var err error
		if _, changed, err = cdc.UpgradeKey(k); err != nil {
			return fmt.Errorf("key %x: %w", k, err)
		}
	}
	if !changed {
		return nil
	}
	type entry struct{ k, v []byte }
	var entries []entry
	err := tree.ForEach(func(k, v []byte) error {
		up, _, err := cdc.UpgradeKey(k)
		if err != nil {
			return fmt.Errorf("key %x: %w", k, err)
		}
		entries = append(entries, entry{bytes.Clone(up), bytes.Clone(v)})
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(entries, func(a, b entry) int { return bytes.Compare(a.k, b.k) })
	if err := parent.DeleteBucket(name); err != nil {
		return err
	}
	b, err := parent.CreateBucket(name)
	if err != nil {
		return err
	}
	b.FillPercent = 0.9 // written in order
	for _, e := range entries {
		if err := b.Put(e.k, e.v); err != nil {
			return err
		}
	}
	return nil
}

// rewriteChunk is how many shadows one transaction of RewriteShadows
// reads.
const rewriteChunk = 5000

// RewriteShadows passes each stored shadow of source's table to fn and
// stores what fn returns in its place when fn says so (ok). It works a
// chunk at a time, each in its own transaction, so that a big table does
// not hold the store's writer for long, and returns how many shadows it
// replaced. A source uses it when it starts, before it reads, to bring
// shadows written by an older capisync to the format it writes now (and
// so to drop column values it no longer keeps).
//
// format names that format: once a pass over the table has ended, the
// store remembers it, and later calls with the same format return at once
// instead of reading every shadow again at each start.
func (s *Store) RewriteShadows(source, table, format string, fn func(value []byte) (newValue []byte, ok bool)) (int, error) {
	marker := []byte("shadow_format/" + source + "\x00" + table)
	done := false
	if err := s.db.View(func(tx *bolt.Tx) error {
		done = string(tx.Bucket(bMeta).Get(marker)) == format
		return nil
	}); err != nil || done {
		return 0, err
	}
	if err := s.FlushShadows(); err != nil { // every shadow in the main tree
		return 0, fmt.Errorf("rewrite shadows of %s: %w", table, err)
	}
	replaced := 0
	var after []byte
	for {
		more := false
		err := s.db.Update(func(tx *bolt.Tx) error {
			main, _, err := shadowTrees(tx, source, table)
			if err != nil {
				return err
			}
			if main == nil { // no shadows yet: nothing to rewrite
				return tx.Bucket(bMeta).Put(marker, []byte(format))
			}
			c := main.Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			type put struct{ k, v []byte }
			var puts []put
			for n := 0; k != nil && n < rewriteChunk; n++ {
				if nv, ok := fn(v); ok {
					puts = append(puts, put{bytes.Clone(k), nv})
				}
				after = bytes.Clone(k)
				k, v = c.Next()
			}
			more = k != nil
			// Written after the scan: a cursor is not to be trusted across
			// changes to its tree.
			for _, p := range puts {
				if err := main.Put(p.k, p.v); err != nil {
					return err
				}
			}
			replaced += len(puts)
			if !more {
				return tx.Bucket(bMeta).Put(marker, []byte(format))
			}
			return nil
		})
		if err != nil {
			return replaced, fmt.Errorf("rewrite shadows of %s: %w", table, err)
		}
		if !more {
			return replaced, nil
		}
	}
}
