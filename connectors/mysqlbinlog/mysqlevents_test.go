package mysqlbinlog

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/capisync/capisync/internal/cdc"
)

// TestCompressedTransactionPayload: MySQL with binlog_transaction_compression
// sends a transaction's events after its GTID inside one payload event,
// which the library decompresses into the events it holds. The reader reads
// them as the same events sent one by one: the same changes, positions and
// checkpoint. (MariaDB writes no payload events; the transaction here is
// MariaDB's, wrapped as MySQL wraps its own.)
func TestCompressedTransactionPayload(t *testing.T) {
	r := newRig(t, shopDDL)
	flavor := flavorOf(t, r.db)
	from := r.now()
	r.tx(fmt.Sprintf("INSERT INTO %s VALUES (1, 'new', 'a@example.com', 10.50), (2, 'new', NULL, NULL)", r.table),
		fmt.Sprintf("UPDATE %s SET status = 'qualified' WHERE id = 1", r.table),
		fmt.Sprintf("DELETE FROM %s WHERE id = 2", r.table))
	events := transactionEvents(t, r, flavor, from)

	start, err := parsePosition(from)
	if err != nil {
		t.Fatal(err)
	}
	plain := readEvents(t, r, start, events)
	payload := readEvents(t, r, start, []*replication.BinlogEvent{events[0], {
		Header: &replication.EventHeader{EventType: replication.TRANSACTION_PAYLOAD_EVENT},
		Event:  &replication.TransactionPayloadEvent{CompressionType: replication.ZSTD, Events: events[1:]},
	}})
	if len(plain) != 1 || len(plain[0].Changes) != 4 || plain[0].Position == nil {
		t.Fatalf("the transaction sent as it is: %v", plain)
	}
	if !reflect.DeepEqual(payload, plain) {
		t.Errorf("the transaction in a payload read as\n%v\nwant\n%v", payload, plain)
	}
}

// readEvents hands evs to a reader of r's source that starts at start,
// and returns the batches it hands over.
func readEvents(t *testing.T, r *rig, start position, evs []*replication.BinlogEvent) []cdc.Batch {
	t.Helper()
	cs, err := charsets(context.Background(), r.db)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan cdc.Batch, len(evs))
	sent := &start
	rd := reader{s: r.src, out: out, pos: start, shapes: map[uint64]*shape{}, sent: &sent, charsets: cs}
	for _, ev := range evs {
		if err := rd.handle(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	close(out)
	var got []cdc.Batch
	for b := range out {
		got = append(got, b)
	}
	return got
}

// transactionEvents reads the binlog from from and returns the events of
// the first transaction after it that changes r's table, its GTID event
// first and its commit last.
func transactionEvents(t *testing.T, r *rig, flavor string, from cdc.Position) []*replication.BinlogEvent {
	return transactions(t, r, flavor, from, 1)[0]
}

// transactions is the events of the first n transactions after from that
// change r's table (other tests write to the server meanwhile).
func transactions(t *testing.T, r *rig, flavor string, from cdc.Position, n int) [][]*replication.BinlogEvent {
	t.Helper()
	start, err := parsePosition(from)
	if err != nil {
		t.Fatal(err)
	}
	syncer := replication.NewBinlogSyncer(r.src.syncerConfig(server{flavor: flavor}))
	defer syncer.Close()
	streamer, err := syncer.StartSync(gomysql.Position{Name: start.File, Pos: start.Pos})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var txs [][]*replication.BinlogEvent
	var evs []*replication.BinlogEvent
	for len(txs) < n {
		ev, err := streamer.GetEvent(ctx)
		if err != nil {
			t.Fatalf("after %d transactions and %d events: %v", len(txs), len(evs), err)
		}
		switch ev.Event.(type) {
		case *replication.MariadbGTIDEvent, *replication.GTIDEvent:
			evs = []*replication.BinlogEvent{ev}
		case *replication.RotateEvent, *replication.FormatDescriptionEvent, *replication.HeartbeatEvent,
			*replication.MariadbGTIDListEvent, *replication.MariadbBinlogCheckPointEvent:
		case *replication.XIDEvent:
			if len(evs) > 0 && touches(evs, r.table) {
				txs = append(txs, append(evs, ev))
			}
			evs = nil
		default:
			if len(evs) > 0 {
				evs = append(evs, ev)
			}
		}
	}
	return txs
}

// TestAnonymousTransactions: a MySQL server with gtid_mode OFF (its
// default) starts each transaction with an anonymous GTID event, which
// names no GTID. Changes of two such transactions are still told apart
// (they were named alike, and the id memory would have refused the
// second's events as repeats), and reading them again names them the
// same. (MariaDB writes no anonymous events; its transactions here are
// given MySQL's anonymous GTID events instead of their own.)
func TestAnonymousTransactions(t *testing.T) {
	r := newRig(t, shopDDL)
	flavor := flavorOf(t, r.db)
	from := r.now()
	for i := range 2 {
		r.exec(r.insertSQL(i + 1))
	}
	var events []*replication.BinlogEvent
	for _, tx := range transactions(t, r, flavor, from, 2) {
		h := *tx[0].Header
		h.EventType = replication.ANONYMOUS_GTID_EVENT
		events = append(events, &replication.BinlogEvent{Header: &h, Event: &replication.GTIDEvent{SID: make([]byte, 16)}})
		events = append(events, tx[1:]...)
	}
	start, err := parsePosition(from)
	if err != nil {
		t.Fatal(err)
	}
	start.GTID = "" // a server without GTIDs: file and position
	read := func() []string {
		var names []string
		for _, b := range readEvents(t, r, start, events) {
			for _, c := range b.Changes {
				names = append(names, string(c.Position))
			}
		}
		return names
	}
	first := read()
	if len(first) != 2 || first[0] == first[1] {
		t.Fatalf("two anonymous transactions' changes named %q", first)
	}
	if again := read(); !reflect.DeepEqual(again, first) {
		t.Errorf("read again, named %q, first %q", again, first)
	}
}

// touches says whether events map table.
func touches(evs []*replication.BinlogEvent, table string) bool {
	for _, ev := range evs {
		if tm, ok := ev.Event.(*replication.TableMapEvent); ok && string(tm.Table) == table {
			return true
		}
	}
	return false
}
