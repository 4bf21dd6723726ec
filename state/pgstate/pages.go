package pgstate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"time"
	"unsafe"

	"github.com/klauspost/compress/s2"

	"github.com/capisync/capisync/state"
)

// A commit queues its events for a destination as one page: one outbox
// row holding every event (consecutive sequence numbers from first_seq)
// and one ids row holding their keys, instead of a row per event in each.
// The server then writes a few rows per commit whatever its size, which
// is what lets this store keep up with a logical source on the same
// server. What changes per event later is a bit: done (outbox: delivered
// or dead-lettered) and forgotten (ids: dead-lettered or retried).

// pageEvent is one event of an outbox page.
type pageEvent struct {
	rule, name, id, source string
	time                   int64
	json                   []byte
}

// appendPageEvent appends e to an outbox page's events.
func appendPageEvent(b []byte, e pageEvent) []byte {
	for _, s := range [...]string{e.rule, e.name, e.id, e.source} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendVarint(b, e.time)
	b = binary.AppendUvarint(b, uint64(len(e.json)))
	return append(b, e.json...)
}

var errBadPage = errors.New("malformed page")

// pageBufs are the buffers a commit builds its pages in, kept from one
// commit to the next: a commit's pages are a megabyte or more, and
// allocating them anew each time kept the collector busy.
type pageBufs struct {
	ev, key []byte // the raw pages being built
	arena   []byte // what the transaction sends: compressed pages, hashes
}

// take returns n bytes of the arena (length 0, capacity n). A slice taken
// before the arena grows keeps its old backing array, which stays valid.
func (b *pageBufs) take(n int) []byte {
	b.arena = slices.Grow(b.arena, n)
	start := len(b.arena)
	b.arena = b.arena[:start+n]
	return b.arena[start : start : start+n]
}

// compress compresses a page's events or keys into the arena (S2, a
// Snappy extension): a commit's rows are a third to a half smaller on the
// wire, in the WAL and in the tables, for about a millisecond of
// capisync's CPU per megabyte.
func (b *pageBufs) compress(page []byte) []byte {
	dst := b.take(s2.MaxEncodedLen(len(page)))
	out := s2.Encode(dst[:cap(dst)], page)
	b.arena = b.arena[:len(b.arena)-(cap(dst)-len(out))] // give back what it did not use
	return out[:len(out):len(out)]
}

// reset keeps the buffers for the next commit, emptied.
func (b *pageBufs) reset() { b.arena = b.arena[:0] }

// decodePage calls fn with each event of an outbox page's events, in
// order, until fn returns false. The strings and JSON are copies.
func decodePage(page []byte, fn func(i int, e pageEvent) bool) error {
	b, err := s2.Decode(nil, page)
	if err != nil {
		return fmt.Errorf("%w: %v", errBadPage, err)
	}
	field := func() ([]byte, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, false
		}
		v := b[k : k+int(n)]
		b = b[k+int(n):]
		return v, true
	}
	for i := 0; len(b) > 0; i++ {
		var f [4]string
		for j := range f {
			v, ok := field()
			if !ok {
				return errBadPage
			}
			f[j] = string(v)
		}
		t, k := binary.Varint(b)
		if k <= 0 {
			return errBadPage
		}
		b = b[k:]
		js, ok := field()
		if !ok {
			return errBadPage
		}
		if !fn(i, pageEvent{rule: f[0], name: f[1], id: f[2], source: f[3], time: t, json: append([]byte(nil), js...)}) {
			return nil
		}
	}
	return nil
}

// pageKeys splits an ids page's keys (each length-prefixed).
func pageKeys(page []byte) ([]string, error) {
	b, err := s2.Decode(nil, page)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadPage, err)
	}
	var keys []string
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, errBadPage
		}
		keys = append(keys, string(b[k:k+int(n)]))
		b = b[k+int(n):]
	}
	return keys, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// keyHash is the hash the id memory files a key under. It is stored with
// the key (an ids page's hashes), so it must not change between versions
// or processes: CRC-32C, which the CPU computes.
// The key's bytes are read in place (crc32 only reads them): no copy per
// key on the commit path.
func keyHash(key string) uint32 {
	return crc32.Checksum(unsafe.Slice(unsafe.StringData(key), len(key)), castagnoli)
}

// appendPageKey appends key to an ids page's keys.
func appendPageKey(b []byte, key string) []byte {
	b = binary.AppendUvarint(b, uint64(len(key)))
	return append(b, key...)
}

// idKey is the id memory's key of an event.
func idKey(name, id string) string { return name + "\x00" + id }

// bitmap is a page's per-event flags, bit i for the event at first_seq+i.
type bitmap []byte

func newBitmap(n int) bitmap    { return make(bitmap, (n+7)/8) }
func (b bitmap) has(i int) bool { return i/8 < len(b) && b[i/8]&(1<<(i%8)) != 0 }
func (b bitmap) set(i int)      { b[i/8] |= 1 << (i % 8) }

// all says whether the first n bits are set.
func (b bitmap) all(n int) bool {
	for i := range n {
		if !b.has(i) {
			return false
		}
	}
	return true
}

// remembered says whether an ids page entry stands for its event at now:
// queued within state.SentTTL, or still in the outbox (done is the
// outbox page's bitmap, nil when the page is gone: every event settled).
func remembered(queued, now time.Time, done bitmap, i int) bool {
	if now.Sub(queued) < state.SentTTL {
		return true
	}
	return done != nil && !done.has(i)
}
