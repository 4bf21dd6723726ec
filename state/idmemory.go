package state

// IDMemory is one destination's id memory as a store keeps it in memory:
// a map from a 32-bit hash of each remembered key (event_name 0x00
// event_id) to the low 32 bits of the sequence number it was queued under
// (about 10 to 20 bytes per id), and an exact map for the few keys whose
// hash another key holds.
//
// It only says where to look: a store counts a match once the entry it
// keeps at that sequence number holds the same key, so a hash collision
// costs one read and never drops an event. The store chooses the hash,
// and changes the memory only after the transaction that changed its
// entries committed, so the memory never holds what the store does not.
type IDMemory struct {
	byHash map[uint32]uint32 // hash of key -> low 32 bits of its sequence number
	exact  map[string]uint64 // keys whose hash another key holds -> sequence number
}

// NewIDMemory returns an empty memory sized for about n ids.
func NewIDMemory(n int) *IDMemory {
	return &IDMemory{byHash: make(map[uint32]uint32, n), exact: map[string]uint64{}}
}

// Add remembers key (whose hash is h) at seq.
func (m *IDMemory) Add(key string, h uint32, seq uint64) {
	if _, taken := m.byHash[h]; taken {
		m.exact[key] = seq
		return
	}
	m.byHash[h] = uint32(seq)
}

// Remove forgets key (whose hash is h) at seq; a later entry of the same
// key stays.
func (m *IDMemory) Remove(key string, h uint32, seq uint64) {
	if s, ok := m.exact[key]; ok && s == seq {
		delete(m.exact, key)
		return
	}
	if low, ok := m.byHash[h]; ok && low == uint32(seq) {
		delete(m.byHash, h)
	}
}

// Candidates returns the sequence numbers whose entries may hold key
// (whose hash is h), to be checked in that order: the exact map's, then
// the hash's (0: none). last is the destination's last sequence number:
// the hash's entry is the number at or below it with those low 32 bits
// (an id is forgotten long before 2^32 later events are queued; a wrong
// guess only misses). m may be nil.
func (m *IDMemory) Candidates(key string, h uint32, last uint64) (exact, hashed uint64) {
	if m == nil {
		return 0, 0
	}
	exact = m.exact[key]
	if low, ok := m.byHash[h]; ok {
		hashed = last - uint64(uint32(last)-low)
	}
	return exact, hashed
}

// Len is how many ids the memory holds.
func (m *IDMemory) Len() int {
	if m == nil {
		return 0
	}
	return len(m.byHash) + len(m.exact)
}

// Cost is the memory's size in units of one hashed id (an exact entry
// holds a string and a map slot: about four).
func (m *IDMemory) Cost() int64 {
	if m == nil {
		return 0
	}
	return int64(len(m.byHash)) + 4*int64(len(m.exact))
}
