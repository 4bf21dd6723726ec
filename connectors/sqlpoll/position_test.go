package sqlpoll

import (
	"bytes"
	"testing"
	"time"
)

// TestCursorPosition: the one-allocation position of a changed row is byte
// for byte the one built from the cursor's native form (positions identify
// changes, so they must not change between versions).
func TestCursorPosition(t *testing.T) {
	for _, cursor := range []any{
		time.Date(2026, 11, 26, 13, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 26, 13, 0, 0, 123456000, time.UTC),
		time.Date(2026, 11, 26, 13, 0, 0, 5, time.FixedZone("", 3600)),
		int64(0), int64(-42), int64(1) << 62,
		"2026-11-26 13:00:00", []byte{0, 1, 2}, 3.25, uint64(7), true, int32(9),
	} {
		want, err := toNative(cursor)
		if err != nil {
			t.Fatal(err)
		}
		got, err := cursorPosition("orders", []byte{1, 2, 0, 3}, cursor)
		if err != nil {
			t.Fatalf("%T %v: %v", cursor, cursor, err)
		}
		if w := changePosition("orders", []byte{1, 2, 0, 3}, want); !bytes.Equal(got, w) {
			t.Errorf("%T %v: %q, want %q", cursor, cursor, got, w)
		}
	}
	if _, err := cursorPosition("orders", nil, struct{}{}); err == nil {
		t.Error("a struct cursor gave a position")
	}
}
