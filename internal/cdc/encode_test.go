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
