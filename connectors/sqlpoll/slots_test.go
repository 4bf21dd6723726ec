package sqlpoll

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/internal/slots"
	"github.com/capisync/capisync/state/bolt"
)

// TestPartsTakeSlots: a page's shadow lookups and diff wait for a slot
// (Options.Slots), shared with the pipeline; its query does not.
func TestPartsTakeSlots(t *testing.T) {
	cfg := config.Source{Type: TypeSQLite, DSN: config.Secret(filepath.Join(t.TempDir(), "src.db")), Timezone: "UTC", Options: &Config{Schedule: "@every 1h", PageSize: 10},
		Tables: config.TableSet{Names: []string{"orders"}, Tables: map[string]*config.PollTable{"orders": {
			Key: []string{"id"}, Cursor: "updated_at", Track: []string{"status"}}}}}
	store, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cpu := slots.New(1)
	s, err := New("shop", cfg, store, Options{Slots: cpu})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, q := range []string{"CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT, updated_at TEXT NOT NULL)",
		"INSERT INTO orders VALUES (1, 'new', '2026-11-26 10:00:00'), (2, 'paid', '2026-11-26 10:00:01')"} {
		if _, err := s.db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
	d := &differ{s: s, t: s.tables[0], pollTime: time.Now(), overlaid: true}

	cpu.Take() // the pipeline is busy
	pages := s.pages(ctx, s.tables[0], nil, nil, d)
	select {
	case p := <-pages:
		t.Fatalf("a page was looked up and diffed while no slot was free: %d changes, %v", len(p.changes), p.err)
	case <-time.After(100 * time.Millisecond):
	}
	if cpu.Taken() != 1 {
		t.Fatalf("%d slots taken while the page waits, want 1 (the query takes none)", cpu.Taken())
	}
	cpu.Give()
	select {
	case p := <-pages:
		if p.err != nil || len(p.rows) != 2 || len(p.changes) != 2 {
			t.Fatalf("page: %d rows, %d changes, %v; want 2 inserts", len(p.rows), len(p.changes), p.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no page once the slot was free")
	}
	if cpu.Taken() != 0 {
		t.Errorf("%d slots still taken after the page", cpu.Taken())
	}
}
