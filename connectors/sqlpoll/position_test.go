package sqlpoll

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/capisync/capisync/internal/cdc"
)

// TestCursorPosition: the position of a changed row, cut from an arena, is
// byte for byte the one built from the cursor's native form (positions
// identify changes, so they must not change between versions), and cutting
// the next one leaves it as it was.
func TestCursorPosition(t *testing.T) {
	var got, want []cdc.Position
	arena := make([]byte, 0, 64) // runs short after the first position
	for _, cursor := range []any{
		time.Date(2026, 11, 26, 13, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 26, 13, 0, 0, 123456000, time.UTC),
		time.Date(2026, 11, 26, 13, 0, 0, 5, time.FixedZone("", 3600)),
		int64(0), int64(-42), int64(1) << 62,
		"2026-11-26 13:00:00", []byte{0, 1, 2}, 3.25, uint64(7), true, int32(9),
		strings.Repeat("a long text cursor ", 20),
	} {
		n, err := toNative(cursor)
		if err != nil {
			t.Fatal(err)
		}
		p, next, err := cursorPosition(arena, "orders", []byte{1, 2, 0, 3}, cursor)
		if err != nil {
			t.Fatalf("%T %v: %v", cursor, cursor, err)
		}
		arena = next
		got, want = append(got, p), append(want, changePosition("orders", []byte{1, 2, 0, 3}, n))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("position %d: %q, want %q", i, got[i], want[i])
		}
	}
	if _, _, err := cursorPosition(nil, "orders", nil, struct{}{}); err == nil {
		t.Error("a struct cursor gave a position")
	}
}
