package bolt

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/capisync/capisync/internal/capi"
	"github.com/capisync/capisync/state"
)

// TestSchema1IDs: a store written by schema 1 (outbox_ids values as a bare
// sequence number while queued, 0xFF + delivery time once delivered) is
// upgraded to the current schema and its entries keep de-duplicating.
func TestSchema1IDs(t *testing.T) {
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "capisync.db")
	s, err := Open(path, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ev := func(id string) state.Enqueue {
		return state.Enqueue{Destination: "meta", Rule: "r", Event: capi.Event{EventName: "Lead", EventID: id, EventTime: now.Unix(),
			ActionSource: "system_generated", UserData: map[string]any{"external_id": id}}}
	}
	if _, err := s.Commit(state.Batch{Source: "src", Events: []state.Enqueue{ev("queued")}}); err != nil {
		t.Fatal(err)
	}
	marker := func(at time.Time) []byte {
		return binary.BigEndian.AppendUint64([]byte{0xFF}, uint64(at.UnixNano()))
	}
	// Rewrite the store as schema 1 left it.
	err = s.db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bOutboxIDs); err != nil {
			return err
		}
		ids, err := sub(tx, bOutboxIDs, "meta", true)
		if err != nil {
			return err
		}
		for k, v := range map[string][]byte{
			"Lead\x00queued":     u64(1), // seq 1 is in the outbox
			"Lead\x00recent":     marker(now.Add(-time.Hour)),
			"Lead\x00old":        marker(now.Add(-49 * time.Hour)),
			"Lead\x00deadletter": u64(99), // not in the outbox
		} {
			if err := ids.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return tx.Bucket(bMeta).Put(kSchema, u64(1))
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path, Options{Now: func() time.Time { return now }}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkSchemaCurrent(t, s)
	for _, c := range []struct {
		id     string
		queued bool
	}{{"queued", false}, {"recent", false}, {"old", true}, {"deadletter", true}, {"new", true}} {
		r, err := s.Commit(state.Batch{Source: "src", Events: []state.Enqueue{ev(c.id)}})
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Enqueued == 1; got != c.queued {
			t.Errorf("%s: queued %v, want %v", c.id, got, c.queued)
		}
	}
}

// checkSchemaCurrent checks that an opened store is at SchemaVersion.
func checkSchemaCurrent(t *testing.T, s *Store) {
	t.Helper()
	var schema uint64
	s.db.View(func(tx *bolt.Tx) error { schema = binary.BigEndian.Uint64(tx.Bucket(bMeta).Get(kSchema)); return nil })
	if schema != SchemaVersion {
		t.Errorf("schema %d after open, want %d", schema, SchemaVersion)
	}
}

func idEvent(id string) state.Enqueue {
	return state.Enqueue{Destination: "meta", Rule: "r", Event: capi.Event{EventName: "Lead", EventID: id, EventTime: time.Now().Unix(),
		ActionSource: "system_generated", UserData: map[string]any{"external_id": id}}}
}

func commitIDs(t *testing.T, s *Store, ids ...string) state.CommitResult {
	t.Helper()
	var ev []state.Enqueue
	for _, id := range ids {
		ev = append(ev, idEvent(id))
	}
	r, err := s.Commit(state.Batch{Source: "src", Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestIDHashCollision: two ids whose 32-bit hashes collide in memory are
// both remembered, and forgetting one keeps the other.
func TestIDHashCollision(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "capisync.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seen := map[uint32]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		id := fmt.Sprint("order-", i)
		h := s.ids.hash("Lead\x00" + id)
		if other, ok := seen[h]; ok {
			a, b = other, id
		}
		seen[h] = id
	}
	if r := commitIDs(t, s, a, b); r.Enqueued != 2 {
		t.Fatalf("two colliding ids: queued %d of 2", r.Enqueued)
	}
	if r := commitIDs(t, s, b, a); r.Duplicates != 2 {
		t.Fatalf("the two again: %+v, want both refused", r)
	}
	// a is dead-lettered, so forgotten; b stays remembered, and a is
	// queued again.
	p, _ := s.Pending("meta", 10)
	if err := s.Settle("meta", []state.Outcome{{Seq: p[0].Seq, Status: state.DeadLettered, Reason: "x"}}); err != nil {
		t.Fatal(err)
	}
	if r := commitIDs(t, s, a, b); r.Enqueued != 1 || r.Duplicates != 1 {
		t.Errorf("after forgetting %s: %+v, want it queued and %s refused", a, r, b)
	}
}

// TestIDSequenceBeyond32Bits: memory keeps the low 32 bits of sequence
// numbers; ids queued on both sides of 2^32 are still found.
func TestIDSequenceBeyond32Bits(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "capisync.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.db.Update(func(tx *bolt.Tx) error {
		ob, err := sub(tx, bOutbox, "meta", true)
		if err != nil {
			return err
		}
		return ob.SetSequence(1<<32 - 3)
	}); err != nil {
		t.Fatal(err)
	}
	commitIDs(t, s, "first")
	var ids []string
	for i := range 6 {
		ids = append(ids, fmt.Sprint("id-", i))
	}
	commitIDs(t, s, ids...)
	if r := commitIDs(t, s, append(ids, "first")...); r.Duplicates != 7 {
		t.Errorf("ids around 2^32 again: %+v, want all 7 refused", r)
	}
}

// TestIDMemorySurvivesReopen: the memory is rebuilt from the file.
func TestIDMemorySurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "capisync.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 3000 {
		ids = append(ids, fmt.Sprintf("%x", i*7919))
	}
	commitIDs(t, s, ids...)
	p, _ := s.Pending("meta", 1000)
	var out []state.Outcome
	for _, q := range p {
		out = append(out, state.Outcome{Seq: q.Seq, Status: state.Delivered})
	}
	if err := s.Settle("meta", out); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := s.ids.size("meta"); n != len(ids) {
		t.Errorf("memory holds %d ids after reopening, want %d", n, len(ids))
	}
	if r := commitIDs(t, s, append(ids, "new")...); r.Enqueued != 1 || r.Duplicates != len(ids) {
		t.Errorf("after reopening: %+v, want %d refused and 1 queued", r, len(ids))
	}
}
