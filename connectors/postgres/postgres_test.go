package postgres_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/capisync/capisync/connectors/postgres"
	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/state/bolt"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestInsertUpdateDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", "")
	e.exec("INSERT INTO leads_S (id, status, email, deal) VALUES (1, 'new', 'a@example.com', NULL), (2, 'contacted', 'b@example.com', NULL)")
	e.exec("INSERT INTO orders_S VALUES (100, 'paid', 'o@example.com', 0.10)")
	e.start()
	e.streaming()
	e.exec("UPDATE leads_S SET status = 'qualified' WHERE id = 2")
	e.exec("UPDATE leads_S SET email = 'a2@example.com' WHERE id = 1") // nothing
	e.exec("INSERT INTO orders_S VALUES (101, 'paid', 'p@example.com', 1234567890.12)")
	e.exec("DELETE FROM orders_S WHERE id = 100")
	// Relative to now: Meta refuses events older than 7 days, so a fixed
	// date would make this test fail a week after it was written.
	won := time.Now().Add(-90 * time.Minute).Truncate(time.Second).UTC()
	e.exec("UPDATE leads_S SET status = 'won', deal = 12500.50, updated_at = $1 WHERE id = 2", won)
	e.waitEvents("Lead lead-2", "Purchase order-101", "OrderDeleted deleted-100", "Purchase won-2")
	for _, ev := range e.fake.Events() {
		cd, _ := ev.Raw["custom_data"].(map[string]any)
		switch ev.ID {
		case "lead-2":
			if cd["previous"] != "contacted" {
				t.Errorf("old value with REPLICA IDENTITY FULL: %v", cd)
			}
		case "order-101":
			if cd["value"].(json.Number).String() != "1234567890.12" {
				t.Errorf("numeric not exact: %v", cd["value"])
			}
		case "won-2":
			if cd["value"].(json.Number).String() != "12500.50" || ev.Time != won.Unix() {
				t.Errorf("won: value %v time %d, want 12500.50 %d", cd["value"], ev.Time, won.Unix())
			}
		}
	}
}

// TestUnchangedToast: a 100 KB notes column updated only in status gives
// one event, and notes is not "changed".
func TestUnchangedToast(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", "")
	e.exec("INSERT INTO leads_S (id, status, email, score, notes) VALUES (1, 'new', 'a@example.com', 1, $1)", strings.Repeat("x", 100*1024))
	e.start()
	e.streaming()
	e.exec("UPDATE leads_S SET status = 'qualified' WHERE id = 1")
	e.waitEvents("Lead lead-1")
	e.exec("UPDATE leads_S SET notes = 'short now', score = 2 WHERE id = 1") // a real change of notes
	e.waitEvents("Lead lead-1", "NotesChanged notes-1-2")
}

// TestLargeTransaction: 50,000 rows in one transaction reach Meta, written
// to the outbox in chunks.
func TestLargeTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", "")
	e.start()
	e.streaming()
	e.exec("INSERT INTO orders_S SELECT g, 'paid', 'o' || g || '@example.com', g / 100.0 FROM generate_series(1, 50000) g")
	e.waitFor("50,000 events", func() bool { return e.fake.Stats().Accepted >= 50000 })
	time.Sleep(200 * time.Millisecond)
	if st := e.fake.Stats(); st.Accepted != 50000 || st.Duplicates != 0 {
		t.Errorf("fake = %+v", st)
	}
}

// TestConfirmedFlushWaitsForOutbox: the slot's confirmed_flush_lsn moves
// past a transaction only after its events are committed to the store.
func TestConfirmedFlushWaitsForOutbox(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", "")
	e.start()
	e.streaming()
	e.gate.close()
	e.exec("INSERT INTO orders_S VALUES (1, 'paid', 'o@example.com', 5)")
	after := e.lsn()
	time.Sleep(1500 * time.Millisecond) // many status updates (every 100 ms) while the commit is held
	if !e.confirmedBehind(after) {
		t.Fatalf("confirmed_flush_lsn moved past the transaction before its events were in the outbox (after=%s, source %+v)", after, e.src.Stats())
	}
	if n := e.fake.Stats().Accepted; n != 0 {
		t.Fatalf("%d events delivered before commit", n)
	}
	e.gate.release()
	e.waitFor("confirmed_flush_lsn to pass the transaction", func() bool { return !e.confirmedBehind(after) })
	e.waitEvents("Purchase order-1")
}

// TestIdleSlotAdvances: with nothing pending, the slot follows the
// server's WAL end even when other tables are busy.
func TestIdleSlotAdvances(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", "")
	e.exec("CREATE TABLE other_S (id int)")
	defer e.exec("DROP TABLE other_S")
	e.start()
	e.streaming()
	e.exec("INSERT INTO other_S SELECT generate_series(1, 1000)")
	after := e.lsn()
	e.waitFor("the idle slot to advance", func() bool { return !e.confirmedBehind(after) })
}

// TestReconnect: the walsender is killed mid-stream; the source reconnects
// and resumes with no loss and no duplicate.
func TestReconnect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", "")
	e.start()
	e.streaming()
	e.exec("INSERT INTO orders_S SELECT g, 'paid', 'a@example.com', 1 FROM generate_series(1, 100) g")
	e.waitFor("first events", func() bool { return e.fake.Stats().Accepted >= 100 })
	e.exec("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'slot_S'")
	e.exec("INSERT INTO orders_S SELECT g, 'paid', 'a@example.com', 1 FROM generate_series(101, 200) g")
	e.waitFor("events after the reconnect", func() bool { return e.fake.Stats().Accepted >= 200 })
	time.Sleep(300 * time.Millisecond)
	if st := e.fake.Stats(); st.Accepted != 200 || st.Duplicates != 0 {
		t.Errorf("fake = %+v", st)
	}
	if e.src.Stats().Reconnects == 0 {
		t.Error("no reconnect counted")
	}
}

// TestReconnectBackoffResets: a source that streamed again starts its
// backoff over, so the eighth disconnect of a process's life is retried
// as fast as the first (without the reset, the delays had grown to 30 s
// by the sixth).
func TestReconnectBackoffResets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", "")
	e.start()
	e.streaming()
	for i := 1; i <= 8; i++ {
		e.exec("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'slot_S'")
		for e.src.Stats().Reconnects < int64(i) {
			time.Sleep(10 * time.Millisecond)
		}
		start := time.Now()
		e.streaming()
		// The first delay is at most 1 s; a backoff that never reset
		// would wait 16-30 s here. 10 s leaves room for a slow machine.
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("disconnect %d: streaming again after %s", i, took.Round(time.Millisecond))
		}
	}
}

// TestReplicaIdentityDefault: rules reading old values on a DEFAULT table
// fail startup with the ALTER TABLE to run; old_values: shadow makes them
// work.
func TestReplicaIdentityDefault(t *testing.T) {
	t.Parallel()
	rules := `
  - name: order-paid
    source: crm
    table: public.orders_S
    when: changed_to("status", "paid")
    event: Purchase
    event_id: '"order-" + string(new.id)'
    user_data: {em: new.email}
    custom_data: {value: new.total, currency: '"EUR"', was: old.status}
  - name: paid-order-deleted
    source: crm
    table: public.orders_S
    when: op == "delete" && old.status == "paid"
    event: CancelledOrder
    event_id: '"order-" + string(old.id) + "-deleted"'
    user_data: {external_id: string(old.id)}
  - name: refunded
    source: crm
    table: public.orders_S
    when: changed_from("status", "paid") && new.status == "refunded"
    event: CancelledOrder
    event_id: '"order-" + string(new.id) + "-refunded"'
    user_data: {external_id: string(new.id)}
`
	e := newEnv(t, "", rules)
	e.start()
	err := <-e.done
	e.cancel = nil
	var se *postgres.SetupError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "REPLICA IDENTITY FULL") || !strings.Contains(err.Error(), "order-paid") {
		t.Fatalf("startup error = %v", err)
	}

	s := newEnv(t, "    old_values: shadow", rules)
	s.exec("INSERT INTO orders_S VALUES (1, 'new', 'a@example.com', 3)")
	s.start()
	s.streaming()
	s.exec("INSERT INTO orders_S VALUES (2, 'new', 'b@example.com', 4)")
	s.exec("UPDATE orders_S SET status = 'paid' WHERE id = 2")
	s.exec("UPDATE orders_S SET total = 5 WHERE id = 2") // still paid: nothing
	s.waitEvents("Purchase order-2")
	if cd := s.fake.Events()[0].Raw["custom_data"].(map[string]any); cd["was"] != "new" {
		t.Errorf("old value from the shadow: %v", cd)
	}
	// An update that changes the key: its old row is the old key, and the
	// old values are under the old key's shadow. A delete's old row is the
	// key, the other columns NULL: the tracked ones come from the shadow.
	s.exec("INSERT INTO orders_S VALUES (3, 'paid', 'c@example.com', 6)")
	s.exec("UPDATE orders_S SET id = 4, status = 'refunded' WHERE id = 2")
	s.exec("DELETE FROM orders_S WHERE id = 1") // no shadow (inserted before the start): nothing
	s.exec("DELETE FROM orders_S WHERE id = 3")
	s.waitEvents("Purchase order-2", "Purchase order-3", "CancelledOrder order-4-refunded", "CancelledOrder order-3-deleted")
	// The store keeps shadows of the live rows only: not of deleted rows,
	// nor of a key that changed.
	s.stop()
	store, err := bolt.Open(filepath.Join(s.dir, "state.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var keys []string
	if err := store.ScanShadows("crm", "public.orders_"+s.suffix, func(k, v []byte) error {
		vals, err := cdc.DecodeValues(k, 1)
		keys = append(keys, fmt.Sprint(vals, err))
		// Only the columns rules read as old values (status): the
		// email, read only as a new value, is not kept.
		if bytes.Contains(v, []byte("@example.com")) {
			t.Errorf("a shadow holds an email: %q", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(keys) != "[[4] <nil>]" {
		t.Errorf("shadows of orders: %v, want the key 4 only", keys)
	}
}

// TestSetupErrors explains what is wrong with the SQL to run.
func TestSetupErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "    create: false", "")
	e.start()
	err := <-e.done
	e.cancel = nil
	if err == nil || !strings.Contains(err.Error(), "CREATE PUBLICATION") {
		t.Errorf("create: false without a publication: %v", err)
	}

	o := newEnv(t, "", "")
	o.exec("SELECT pg_create_logical_replication_slot('slot_S', 'test_decoding')")
	o.start()
	err = <-o.done
	o.cancel = nil
	if err == nil || !strings.Contains(err.Error(), "plugin test_decoding") {
		t.Errorf("slot with another plugin: %v", err)
	}
}
