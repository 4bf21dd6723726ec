package slots

import (
	"runtime"
	"testing"
	"time"
)

func TestSlots(t *testing.T) {
	if got, want := cap(New(0).c), max(1, runtime.GOMAXPROCS(0)-1); got != want {
		t.Errorf("New(0) has %d slots, want %d", got, want)
	}
	var none *Slots
	none.Take() // a nil Slots bounds nothing
	none.Give()
	if none.Taken() != 0 {
		t.Error("a nil Slots has slots")
	}

	s := New(2)
	s.Take()
	s.Take()
	if s.Taken() != 2 {
		t.Fatalf("%d taken, want 2", s.Taken())
	}
	third := make(chan struct{})
	go func() { s.Take(); close(third) }()
	select {
	case <-third:
		t.Fatal("a third step took one of two slots")
	case <-time.After(50 * time.Millisecond):
	}
	s.Give()
	select {
	case <-third:
	case <-time.After(10 * time.Second):
		t.Fatal("a slot given back was not taken")
	}
	if s.Taken() != 2 {
		t.Fatalf("%d taken, want 2", s.Taken())
	}
}
