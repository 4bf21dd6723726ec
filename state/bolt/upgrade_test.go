package bolt

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/capisync/capisync/internal/cdc"
)

// TestUpgradeShadowKeys: a schema-3 store, whose shadow keys hold
// integers as varints, opens with every key rewritten as cdc.EncodeKey
// writes it now, in the main and the delta trees, and every shadow found
// under its new key; keys without integers stay as they were.
func TestUpgradeShadowKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "capisync.db")
	s, err := Open(path, Options{ShadowMergeIdle: -1})
	if err != nil {
		t.Fatal(err)
	}
	oldKey := func(vals ...any) []byte { // schema 3: integers as varints
		var b []byte
		for _, v := range vals {
			b = cdc.AppendValue(b, v)
		}
		return b
	}
	const n = 3000 // several pages of keys
	err = s.db.Update(func(tx *bolt.Tx) error {
		orders, err := sub(tx, bShadows, "shop\x00orders", true)
		if err != nil {
			return err
		}
		for id := int64(-5); id < n; id++ {
			if err := orders.Put(oldKey(id), []byte{byte(id)}); err != nil {
				return err
			}
		}
		leads, err := sub(tx, bShadows, "crm\x00leads", true)
		if err != nil {
			return err
		}
		if err := leads.Put(oldKey("lead-1"), []byte("text key")); err != nil {
			return err
		}
		delta, err := sub(tx, bShadowDelta, "shop\x00orders", true)
		if err != nil {
			return err
		}
		if err := delta.Put(oldKey(int64(7), "eu"), []byte{deltaPut, 'd'}); err != nil {
			return err
		}
		return tx.Bucket(bMeta).Put(kSchema, u64(3))
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	if s, err = Open(path, Options{ShadowMergeIdle: -1}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkSchemaCurrent(t, s)
	var keys [][]byte
	for id := int64(-5); id < n; id++ {
		keys = append(keys, cdc.EncodeKey([]any{id}))
	}
	got, err := s.Shadows("shop", "orders", keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if id := int64(i) - 5; len(v) != 1 || v[0] != byte(id) {
			t.Fatalf("shadow of id %d: %x, want %x", id, v, byte(id))
		}
	}
	if got, _ := s.Shadows("shop", "orders", [][]byte{cdc.EncodeKey([]any{int64(7), "eu"})}); string(got[0]) != "d" {
		t.Errorf("delta shadow of (7, eu): %q, want d", got[0])
	}
	if got, _ := s.Shadows("crm", "leads", [][]byte{oldKey("lead-1")}); string(got[0]) != "text key" {
		t.Errorf("shadow of a text key: %q", got[0])
	}
	// Nothing is left under the old keys, and the new ones are in order.
	var prev []byte
	count := 0
	err = s.ScanShadows("shop", "orders", func(k, v []byte) error {
		if prev != nil && string(prev) >= string(k) {
			t.Errorf("keys out of order: %x then %x", prev, k)
		}
		if _, changed, err := cdc.UpgradeKey(k); err != nil || changed {
			t.Errorf("key %x is not upgraded (%v)", k, err)
		}
		prev = append(prev[:0], k...)
		count++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count != n+5+1 {
		t.Errorf("%d shadows after the upgrade, want %d", count, n+5+1)
	}
}

// BenchmarkUpgradeShadowKeys: opening a schema-3 store of 1,000,000
// integer-keyed shadows (values of 45 bytes), which rewrites their keys.
func BenchmarkUpgradeShadowKeys(b *testing.B) {
	const rows = 1_000_000
	for range b.N {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "capisync.db")
		s, err := Open(path, Options{ShadowMergeIdle: -1})
		if err != nil {
			b.Fatal(err)
		}
		value := make([]byte, 45)
		for i := int64(0); i < rows; i += 50_000 {
			err := s.db.Update(func(tx *bolt.Tx) error {
				t, err := sub(tx, bShadows, "shop\x00orders", true)
				if err != nil {
					return err
				}
				for id := i; id < i+50_000; id++ {
					if err := t.Put(cdc.AppendValue(nil, id), value); err != nil {
						return err
					}
				}
				return tx.Bucket(bMeta).Put(kSchema, u64(3))
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		s.Close()
		b.StartTimer()
		if s, err = Open(path, Options{ShadowMergeIdle: -1}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		s.Close()
	}
}
