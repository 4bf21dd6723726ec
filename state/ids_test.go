package state

import (
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/capisync/capisync/internal/capi"
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
	ev := func(id string) Enqueue {
		return Enqueue{Destination: "meta", Rule: "r", Event: capi.Event{EventName: "Lead", EventID: id, EventTime: now.Unix(),
			ActionSource: "system_generated", UserData: map[string]any{"external_id": id}}}
	}
	if _, err := s.Commit(Batch{Source: "src", Events: []Enqueue{ev("queued")}}); err != nil {
		t.Fatal(err)
	}
	marker := func(at time.Time) []byte {
		return binary.BigEndian.AppendUint64([]byte{0xFF}, uint64(at.UnixNano()))
	}
	// Rewrite the store as schema 1 left it.
	err = s.db.Update(func(tx *bolt.Tx) error {
		ids, _ := sub(tx, bOutboxIDs, "meta", true)
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
		r, err := s.Commit(Batch{Source: "src", Events: []Enqueue{ev(c.id)}})
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
