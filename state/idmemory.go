package state

// IDMemory is one destination's id memory as a store keeps it in memory:
// a map from a 32-bit hash of each remembered key (event_name 0x00
// event_id) to the low 32 bits of the sequence number it was queued under
// (about 10 to 20 bytes per id), and a second map for the few keys whose
// hash another key holds.
//
// It only says where to look: a store counts a match once the entry it
// keeps at that sequence number holds the same key, so a hash collision
// costs one read and never drops an event, and the memory needs no keys
// (a store can rebuild it from stored hashes). The store chooses the
// hash, and changes the memory only after the transaction that changed
// its entries committed, so the memory never holds what the store does
// not.
type IDMemory struct {
	byHash map[uint32]uint32   // hash -> low 32 bits of a sequence number
	more   map[uint32][]uint64 // hash -> further sequence numbers (collisions)
}

// NewIDMemory returns an empty memory sized for about n ids.
func NewIDMemory(n int) *IDMemory {
	return &IDMemory{byHash: make(map[uint32]uint32, n), more: map[uint32][]uint64{}}
}

// Add remembers the key whose hash is h at seq.
func (m *IDMemory) Add(h uint32, seq uint64) {
	if _, taken := m.byHash[h]; taken {
		m.more[h] = append(m.more[h], seq)
		return
	}
	m.byHash[h] = uint32(seq)
}

// Remove forgets the entry at seq of a key whose hash is h.
func (m *IDMemory) Remove(h uint32, seq uint64) {
	if low, ok := m.byHash[h]; ok && low == uint32(seq) {
		delete(m.byHash, h)
		return
	}
	seqs := m.more[h]
	for i, s := range seqs {
		if s == seq {
			seqs = append(seqs[:i], seqs[i+1:]...)
			break
		}
	}
	if len(seqs) == 0 {
		delete(m.more, h)
	} else {
		m.more[h] = seqs
	}
}

// Candidates appends to dst the sequence numbers whose entries may hold a
// key whose hash is h, latest added last. last is the destination's last
// sequence number: the hash map's entry is the number at or below it with
// those low 32 bits (an id is forgotten long before 2^32 later events are
// queued; a wrong guess only misses). m may be nil.
func (m *IDMemory) Candidates(dst []uint64, h uint32, last uint64) []uint64 {
	if m == nil {
		return dst
	}
	if low, ok := m.byHash[h]; ok {
		dst = append(dst, last-uint64(uint32(last)-low))
	}
	return append(dst, m.more[h]...)
}

// Len is how many ids the memory holds.
func (m *IDMemory) Len() int {
	if m == nil {
		return 0
	}
	n := len(m.byHash)
	for _, s := range m.more {
		n += len(s)
	}
	return n
}

// Cost is the memory's size in units of one hashed id (a collision's
// entry holds a slice and a map slot: about four).
func (m *IDMemory) Cost() int64 {
	if m == nil {
		return 0
	}
	return int64(len(m.byHash)) + 4*int64(m.Len()-len(m.byHash))
}
