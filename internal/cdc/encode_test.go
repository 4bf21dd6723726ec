package cdc

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
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
			dst := make([]any, 4)
			ok := codec.DecodeInto(dst, tc.stored, curEnc, cur, idx)
			if ok != (tc.want != nil) || ok != decodes {
				t.Fatalf("ok = %v, Decode's ok = %v, want %v", ok, decodes, tc.want != nil)
			}
			for j, col := range []string{"email", "status", "total", "updated_at"} {
				if ok && !bytes.Equal(AppendValue(nil, dst[j]), AppendValue(nil, tc.want[j])) {
					t.Errorf("%s = %#v, want %#v", col, dst[j], tc.want[j])
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
		dst := make([]any, 4)
		if ok := codec.DecodeInto(dst, stored, codec.AppendOf(nil, cur, idx), cur, idx); ok != wantOK {
			t.Fatalf("ok = %v, Decode's %v", ok, wantOK)
		}
		for j, col := range []string{"a", "b", "c", "d"} {
			if wantOK && !bytes.Equal(AppendValue(nil, dst[j]), AppendValue(nil, want[j])) {
				t.Errorf("%s = %#v, Decode's %#v", col, dst[j], want[j])
			}
		}
	})
}

// TestKeyOrder: keys of integers sort as the integers do, so that rows
// read in key order are stored side by side; and a key still decodes.
func TestKeyOrder(t *testing.T) {
	ints := []int64{math.MinInt64, -1 << 40, -300, -1, 0, 1, 2, 63, 64, 127, 128, 255, 256, 1 << 40, math.MaxInt64}
	for i := 1; i < len(ints); i++ {
		a, b := EncodeKey([]any{ints[i-1]}), EncodeKey([]any{ints[i]})
		if bytes.Compare(a, b) >= 0 {
			t.Errorf("key %d (%x) does not sort before key %d (%x)", ints[i-1], a, ints[i], b)
		}
	}
	// A composite key: the first column decides, then the second.
	if a, b := EncodeKey([]any{int64(1), "b"}), EncodeKey([]any{int64(2), "a"}); bytes.Compare(a, b) >= 0 {
		t.Errorf("(1, b) does not sort before (2, a)")
	}
	for _, x := range ints {
		got, err := DecodeValues(EncodeKey([]any{x, "s"}), 2)
		if err != nil || got[0] != x || got[1] != "s" {
			t.Errorf("DecodeValues(EncodeKey(%d, s)) = %v, %v", x, got, err)
		}
	}
}

// TestUpgradeKey: keys written with varint integers become what EncodeKey
// writes now; keys without integers are left as they are.
func TestUpgradeKey(t *testing.T) {
	old := func(vals ...any) []byte { // how keys were written before tKeyInt
		var b []byte
		for _, v := range vals {
			b = AppendValue(b, v)
		}
		return b
	}
	for _, vals := range [][]any{
		{int64(42)},
		{int64(-7), "eu"},
		{"lead-1", int64(math.MaxInt64), true},
		{"only text"},
		{time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC), 1.5},
	} {
		got, changed, err := UpgradeKey(old(vals...))
		if err != nil {
			t.Fatalf("%v: %v", vals, err)
		}
		if want := EncodeKey(vals); !bytes.Equal(got, want) {
			t.Errorf("%v: upgraded to %x, want %x", vals, got, want)
		}
		if hasInt := slices.ContainsFunc(vals, func(v any) bool { _, ok := v.(int64); return ok }); changed != hasInt {
			t.Errorf("%v: changed = %v", vals, changed)
		}
		// An upgraded key is left alone.
		if again, changed, err := UpgradeKey(got); err != nil || changed || !bytes.Equal(again, got) {
			t.Errorf("%v: upgrading again: %x, %v, %v", vals, again, changed, err)
		}
	}
	if _, _, err := UpgradeKey([]byte{tString, 5, 'a'}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a damaged key: %v, want ErrCorrupt", err)
	}
}

func FuzzUpgradeKey(f *testing.F) {
	f.Add([]byte{tInt, 0x54})
	f.Add(AppendValue(AppendValue(nil, "x"), int64(-5)))
	f.Fuzz(func(t *testing.T, b []byte) {
		up, _, err := UpgradeKey(b)
		if err != nil {
			return
		}
		before, err := decodeAll(b)
		if err != nil {
			return // not values (UpgradeKey reads only the lengths of a key without integers)
		}
		// Compared as printed: NaN is not equal to itself.
		if after, err := decodeAll(up); err != nil || fmt.Sprintf("%#v", before) != fmt.Sprintf("%#v", after) {
			t.Errorf("%x decodes to %#v, its upgrade %x to %#v", b, before, up, after)
		}
	})
}

func decodeAll(b []byte) ([]any, error) {
	var out []any
	for len(b) > 0 {
		v, rest, err := readValue(b)
		if err != nil {
			return nil, err
		}
		out, b = append(out, v), rest
	}
	return out, nil
}
