package cdc

import (
	"bytes"
	"testing"
	"time"
)

// TestAppendOf: the index-picking appenders write what EncodeKey and
// ShadowCodec.Encode write for the picked values, after what b holds.
func TestAppendOf(t *testing.T) {
	row := []any{int64(42), "paid", nil, 12.5, time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), []byte{0, 1}, true, "b"}
	codec := NewShadowCodec([]string{"status", "total", "updated_at"})
	for _, idx := range [][]int{{0}, {1, 3, 4}, {7, 0}, {2, 5, 6}, {}} {
		picked := make([]any, len(idx))
		for i, j := range idx {
			picked[i] = row[j]
		}
		prefix := []byte("prefix")
		if got, want := AppendKeyOf(bytes.Clone(prefix), row, idx), append(bytes.Clone(prefix), EncodeKey(picked)...); !bytes.Equal(got, want) {
			t.Errorf("AppendKeyOf %v = %x, want %x", idx, got, want)
		}
		if got, want := codec.AppendOf(bytes.Clone(prefix), row, idx), append(bytes.Clone(prefix), codec.Encode(picked)...); !bytes.Equal(got, want) {
			t.Errorf("AppendOf %v = %x, want %x", idx, got, want)
		}
	}
}

// TestDecodeInto: DecodeInto gives the stored (old) values whatever the
// current row holds, and refuses what Decode refuses.
func TestDecodeInto(t *testing.T) {
	codec := NewShadowCodec([]string{"email", "status", "total", "updated_at"})
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	cur := []any{int64(7), "a@example.com", "paid", 42.5, at}
	idx := []int{1, 2, 3, 4}
	curEnc := codec.AppendOf(nil, cur, idx)
	for _, tc := range []struct {
		name   string
		stored []byte
		want   []any // nil: refused
	}{
		{"one column changed", codec.Encode([]any{"a@example.com", "new", 42.5, at}), []any{"a@example.com", "new", 42.5, at}},
		{"all changed", codec.Encode([]any{"b@example.com", nil, 1.0, at.Add(-time.Hour)}), []any{"b@example.com", nil, 1.0, at.Add(-time.Hour)}},
		{"none changed", curEnc, []any{"a@example.com", "paid", 42.5, at}},
		{"a longer value first", codec.Encode([]any{"a@example.com and more", "paid", 42.5, at}), []any{"a@example.com and more", "paid", 42.5, at}},
		{"other tracked columns", NewShadowCodec([]string{"status"}).Encode([]any{"paid"}), nil},
		{"too few values", codec.Encode([]any{"a@example.com", "paid", 42.5}), nil},
		{"too many values", codec.Encode([]any{"a@example.com", "paid", 42.5, at, "x"}), nil},
		{"truncated", curEnc[:len(curEnc)-2], nil},
		{"empty", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, decodes := codec.Decode(tc.stored)
			row := Row{}
			ok := codec.DecodeInto(row, tc.stored, curEnc, cur, idx)
			if ok != (tc.want != nil) || ok != decodes {
				t.Fatalf("ok = %v, Decode's ok = %v, want %v", ok, decodes, tc.want != nil)
			}
			for j, col := range []string{"email", "status", "total", "updated_at"} {
				if ok && !bytes.Equal(AppendValue(nil, row[col]), AppendValue(nil, tc.want[j])) {
					t.Errorf("%s = %#v, want %#v", col, row[col], tc.want[j])
				}
			}
		})
	}
}

// FuzzDecodeInto: for any stored bytes and current row, DecodeInto agrees
// with Decode, value for value.
func FuzzDecodeInto(f *testing.F) {
	codec := NewShadowCodec([]string{"a", "b", "c", "d"})
	f.Add(codec.Encode([]any{"x", int64(1), 2.5, true}), "x", int64(1), 2.5, true)
	f.Add(codec.Encode([]any{"x", int64(2), 2.5, nil}), "x", int64(1), 2.5, false)
	f.Add(codec.Encode([]any{[]byte("x"), time.Unix(5, 0), map[string]any{"k": 1.0}, "y"}), "y", int64(-1), 0.0, true)
	f.Fuzz(func(t *testing.T, stored []byte, s string, i int64, fl float64, b bool) {
		cur := []any{s, i, fl, b}
		if b {
			cur[3] = nil
		}
		idx := []int{0, 1, 2, 3}
		want, wantOK := codec.Decode(stored)
		row := Row{}
		if ok := codec.DecodeInto(row, stored, codec.AppendOf(nil, cur, idx), cur, idx); ok != wantOK {
			t.Fatalf("ok = %v, Decode's %v", ok, wantOK)
		}
		for j, col := range []string{"a", "b", "c", "d"} {
			if wantOK && !bytes.Equal(AppendValue(nil, row[col]), AppendValue(nil, want[j])) {
				t.Errorf("%s = %#v, Decode's %#v", col, row[col], want[j])
			}
		}
	})
}
