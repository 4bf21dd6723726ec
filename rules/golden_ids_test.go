package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/capisync/capisync/internal/cdc"
)

// goldenChanges are changes whose default event ids are pinned in
// TestDefaultEventIDsDoNotChange: a store that remembers ids from an
// earlier capisync must see the same change read again as the same id.
func goldenChanges() []cdc.Change {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return []cdc.Change{
		{Table: "public.leads", Op: cdc.Update, Key: cdc.RowOf(map[string]any{"id": int64(42)}), Position: cdc.Position("0/16B3748")},
		{Table: "public.leads", Op: cdc.Update, Key: cdc.RowOf(map[string]any{"id": int32(-7), "region": "eu"}), Position: cdc.Position{0, 1, 2, 0xff}},
		{Table: "shop.orders", Op: cdc.Insert, Key: cdc.RowOf(map[string]any{"uuid": []byte{0xde, 0xad}, "ok": true, "n": 3}), Position: cdc.Position("p")},
		{Table: "shop.orders", Op: cdc.Update, Key: cdc.RowOf(map[string]any{"at": at, "amount": cdc.Decimal("12.50"), "f": 1.5e21, "nil": nil, "u": uint64(9)}), Position: cdc.Position("x")},
		{Table: "t", Op: cdc.Delete, Old: cdc.RowOf(map[string]any{"id": int64(1), "s": "a=b;c"}), New: cdc.RowOf(map[string]any{"id": int64(1)}), CommitTime: at},
	}
}

func TestDefaultEventIDsDoNotChange(t *testing.T) {
	want := []string{
		"fda47352dfab74616d9a83ea3e54166cf99058e3ee5102fab0dbfc3bf8c684f4",
		"d29593f95691fa49f4f6610dcc9928567f56ab69f2e704b9ae3e01ac9bece434",
		"c2a0aa7732042d605eb4a09a75bd6c65cb48b9d32448987b468bd38973555124",
		"1791ce4a49df525f91ba47b6a7efe060b383342ad92fcb2c7d95aead72234f3c",
		"d9203691a4a99089f1ab45be550a5bfb9a257136a201da5e5dd7a2c104ce96b8",
	}
	for i, c := range goldenChanges() {
		if got := DefaultEventID("qualified", &c); got != want[i] {
			t.Errorf("change %d: default event_id %s, want %s (ids remembered by a running store would no longer match)", i, got, want[i])
		}
	}
}

func BenchmarkDefaultEventID(b *testing.B) {
	c := goldenChanges()[0]
	b.ReportAllocs()
	for b.Loop() {
		DefaultEventID("qualified", &c)
	}
}

// referenceEventID is DefaultEventID as first written, with fmt: the ids
// the fast one must keep giving.
func referenceEventID(rule string, c *cdc.Change) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", rule, c.Table)
	writeRow := func(row cdc.Row) {
		keys := slices.Sorted(maps.Keys(row.Map()))
		for _, k := range keys {
			fmt.Fprintf(h, "%s=%s;", k, canonical(row.Value(k)))
		}
	}
	if c.Key.Len() > 0 || len(c.Position) > 0 {
		writeRow(c.Key)
		h.Write([]byte{0})
		h.Write(c.Position)
	} else {
		fmt.Fprintf(h, "%s\x00", c.Op)
		writeRow(c.Old)
		h.Write([]byte{0})
		writeRow(c.New)
		fmt.Fprintf(h, "\x00%d", c.CommitTime.UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil))
}

func FuzzDefaultEventID(f *testing.F) {
	f.Add("qualified", "public.leads", "id", int64(42), "eu", []byte("0/16B3748"), int32(3))
	f.Add("", "", "", int64(-1), "", []byte{}, int32(0))
	f.Fuzz(func(t *testing.T, rule, table, col string, n int64, s string, pos []byte, m int32) {
		keys := []cdc.Row{
			cdc.RowOf(map[string]any{col: n}),
			cdc.RowOf(map[string]any{col: s, col + "2": m, col + "3": int(n)}),
			{},
		}
		for _, key := range keys {
			for _, p := range []cdc.Position{pos, nil} {
				c := cdc.Change{Table: table, Op: cdc.Update, Key: key, Position: p,
					Old: cdc.RowOf(map[string]any{col: s}), New: cdc.RowOf(map[string]any{col: n}), CommitTime: time.Unix(0, n)}
				if got, want := DefaultEventID(rule, &c), referenceEventID(rule, &c); got != want {
					t.Fatalf("%+v: %s, want %s", c, got, want)
				}
			}
		}
	})
}
